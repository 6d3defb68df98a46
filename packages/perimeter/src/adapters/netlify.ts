/**
 * `perimeter/netlify`: wraps a Netlify Function, either shape:
 *
 * - v2 (`export default async (req: Request, context: Context) => Response`): the request id is `context.requestId`
 *   (or the `x-nf-request-id` header);
 * - v1 (`export const handler = async (event, context) => ({ statusCode, body })`, Lambda-compatible, also used by
 *   scheduled and background functions): the request id is `context.awsRequestId` (or the `x-nf-request-id` header),
 *   the function name `context.functionName`.
 *
 * Which one is decided per call from the first argument (a `Request` or an event object), so one wrapper serves both.
 * Netlify sets no environment variables from netlify.toml at run time, so the guard is started when `guard()` is
 * first called: from the preload if it ran, else from `options.functionPolicy` (an object, e.g. an imported JSON file,
 * or a path), else as the preload would (PERIMETER_POLICY, perimeter.json beside the entry or in LAMBDA_TASK_ROOT).
 */
import type { PolicyDocument } from '../index.js';
import { ensureGuardStarted, flushingCallback, invokeScoped, lookLike, prepareNarrower } from './common.js';
import {
  type AdapterInspectOptions,
  afterScreening,
  prepareScreen,
  type SchemaOption,
  screenLambdaStyle,
} from './inspect.js';

export interface NetlifyGuardOptions {
  /** The function policy, used only when the guard is not running yet (no preload). */
  functionPolicy?: PolicyDocument | string;
  /** A narrower policy for every invocation of this function (see withPolicy): it can only remove permissions. */
  policy?: PolicyDocument;
  /** The function name events carry (v2 contexts do not say it). */
  name?: string;
  /** Inspect each request or event for attacks before the function sees it (docs/inspector.md). */
  inspect?: AdapterInspectOptions;
  /** Validate the JSON body (HTTP) or the event against a Standard Schema or a validator function. */
  schema?: SchemaOption;
}

/** The parts of a v2 Context the wrapper reads (structural: no dependency on @netlify/functions). */
export interface NetlifyContextLike {
  requestId?: string;
}

/** The parts of a v1 (Lambda-compatible) event and context the wrapper reads. */
export interface NetlifyEventLike {
  headers?: Record<string, string | undefined>;
}
export interface NetlifyLambdaContextLike {
  awsRequestId?: string;
  functionName?: string;
}

const REQUEST_ID_HEADER = 'x-nf-request-id';

function isRequest(value: unknown): value is Request {
  if (typeof value !== 'object' || value === null) return false;
  const headers = (value as Request).headers;
  return (
    typeof (value as Request).url === 'string' &&
    typeof (value as Request).method === 'string' &&
    typeof headers === 'object' &&
    headers !== null &&
    typeof headers.get === 'function'
  );
}

/**
 * A v2 Request as the API Gateway v2 event the inspector reads. The body is read from a clone, so the function can
 * still read the request's own.
 */
async function eventOfRequest(request: Request): Promise<Record<string, unknown>> {
  const url = new URL(request.url);
  const headers: Record<string, string> = {};
  request.headers.forEach((value, key) => {
    headers[key] = value;
  });
  const query: Record<string, string> = {};
  for (const [key, value] of url.searchParams) query[key] = value;
  const body = request.body === null ? undefined : await request.clone().text();
  return {
    version: '2.0',
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    queryStringParameters: query,
    body,
    requestContext: { http: { method: request.method, path: url.pathname } },
  };
}

function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/**
 * Wraps a Netlify Function (v2 default export or v1 `handler`). Returns a function of the same shape; the platform
 * treats it as it would the original.
 */
export function guard<H extends (...args: any[]) => any>(fn: H, options: NetlifyGuardOptions = {}): H {
  if (typeof fn !== 'function') throw new TypeError('perimeter/netlify guard(fn): fn must be a function');
  ensureGuardStarted(options.functionPolicy);
  const policy = prepareNarrower(options.policy);
  const name = options.name;
  const screen = prepareScreen(options);

  return lookLike(
    function (this: unknown, ...args: unknown[]) {
      const [first, context] = args as [unknown, Record<string, unknown> | undefined];
      let functionName = name;
      let invocation: string | undefined;
      const call = () => Reflect.apply(fn, this, args);
      if (isRequest(first)) {
        invocation = stringOrUndefined(context?.requestId) ?? stringOrUndefined(first.headers.get(REQUEST_ID_HEADER));
        if (screen)
          return invokeScoped(functionName, invocation, policy, () =>
            eventOfRequest(first).then((event) =>
              afterScreening(screen(event, 'apigateway-v2'), (screened) => {
                if (screened.kind === 'pass') return call();
                const response =
                  screened.kind === 'respond' && 'statusCode' in screened.response
                    ? screened.response
                    : { statusCode: 400, headers: {}, body: 'request rejected' };
                return new Response(response.body, { status: response.statusCode, headers: response.headers });
              }),
            ),
          );
      } else {
        const headers = (first as NetlifyEventLike | undefined)?.headers;
        invocation = stringOrUndefined(context?.awsRequestId) ?? stringOrUndefined(headers?.[REQUEST_ID_HEADER]);
        functionName ??= stringOrUndefined(context?.functionName);
        if (typeof args[2] === 'function') args[2] = flushingCallback(args[2] as (...r: unknown[]) => unknown);
        if (screen)
          return invokeScoped(functionName, invocation, policy, () =>
            screenLambdaStyle(screen, args, typeof args[2] === 'function' ? 2 : undefined, call),
          );
      }
      return invokeScoped(functionName, invocation, policy, call);
    } as unknown as H,
    fn,
  );
}
