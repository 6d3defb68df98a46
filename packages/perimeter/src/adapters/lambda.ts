/**
 * `perimeter/lambda`: wraps an AWS Lambda handler so that every event names the function and the request id, an
 * optional narrower policy applies to each invocation, and events are written out before the handler's result
 * goes back (Lambda freezes the process right after the response; anything still queued would wait for the next
 * invocation, or be lost with the sandbox).
 *
 * Importing this module starts the guard from the environment when the preload has not (fail closed: a missing
 * or invalid policy throws here, at init, and Lambda reports the init error instead of running unguarded).
 *
 * Adapters import only the public API (../index.js): the build points that at the one bundled runtime, so an
 * adapter never carries a second copy of it.
 */
import type { PolicyDocument } from '../index.js';
import { ensureGuardStarted, flushingCallback, invokeScoped, lookLike, prepareNarrower } from './common.js';
import {
  type AdapterInspectOptions,
  prepareScreen,
  type SchemaOption,
  type Screen,
  type Screened,
  screenLambdaStyle,
} from './inspect.js';

export interface LambdaContextLike {
  functionName?: string;
  awsRequestId?: string;
}

export interface LambdaGuardOptions {
  /** A narrower policy for every invocation of this handler (see withPolicy): it can only remove permissions. */
  policy?: PolicyDocument;
  /** Inspect each event for attacks before the handler sees it (see docs/inspector.md, "Using it in a function"). */
  inspect?: AdapterInspectOptions;
  /** Validate the JSON body (HTTP triggers) or the event against a Standard Schema or a validator function. */
  schema?: SchemaOption;
}

/** What `awslambda.streamifyResponse` marks a handler with; the runtime then passes (event, responseStream, context). */
const HANDLER_STREAMING = Symbol.for('aws.lambda.runtime.handler.streaming');
const HANDLER_HIGHWATERMARK = Symbol.for('aws.lambda.runtime.handler.streaming.highWaterMark');

ensureGuardStarted();

function looksLikeContext(value: unknown): value is LambdaContextLike {
  return typeof value === 'object' && value !== null && typeof (value as LambdaContextLike).awsRequestId === 'string';
}

/**
 * The invocation's context: the second argument, or the third for response-streaming handlers
 * (`awslambda.streamifyResponse(guard(async (event, responseStream, context) => …))`).
 */
function contextOf(args: readonly unknown[], streaming: boolean): LambdaContextLike | undefined {
  const first = streaming ? args[2] : args[1];
  if (looksLikeContext(first)) return first;
  const other = streaming ? args[1] : args[2];
  return looksLikeContext(other) ? other : undefined;
}

/**
 * Wraps a Lambda handler: async (`(event, context) => Promise`), callback-style (`(event, context, callback)`,
 * Node 20/22 runtimes) or response-streaming (`(event, responseStream, context)`, inside or outside
 * `awslambda.streamifyResponse`). The wrapper keeps the handler's arity, name and streaming marks, so the runtime
 * treats it exactly as it would the handler.
 */
export function guard<H extends (...args: any[]) => any>(handler: H, options: LambdaGuardOptions = {}): H {
  if (typeof handler !== 'function') throw new TypeError('perimeter/lambda guard(handler): handler must be a function');
  const policy = prepareNarrower(options.policy);
  const screen = prepareScreen(options);
  // A streaming handler answers through its stream, not a result object: a rejected event fails the invocation.
  const streamingScreen: Screen | undefined =
    screen &&
    ((event) => {
      const toError = (screened: Screened): Screened =>
        screened.kind === 'respond'
          ? { kind: 'fail', error: Object.assign(new Error('request rejected'), { code: 'ERR_PERIMETER_INSPECTION' }) }
          : screened;
      const screened = screen(event);
      return 'kind' in screened ? toError(screened) : Promise.resolve(screened).then(toError);
    });

  const guarded = lookLike(
    function (this: unknown, ...args: unknown[]) {
      const streaming =
        (guarded as any)[HANDLER_STREAMING] === 'response' || (handler as any)[HANDLER_STREAMING] === 'response';
      const context = contextOf(args, streaming);
      if (!streaming && typeof args[2] === 'function')
        args[2] = flushingCallback(args[2] as (...r: unknown[]) => unknown);
      const call = () => Reflect.apply(handler, this, args);
      if (!screen) return invokeScoped(context?.functionName, context?.awsRequestId, policy, call);
      return invokeScoped(context?.functionName, context?.awsRequestId, policy, () =>
        streaming
          ? screenLambdaStyle(streamingScreen!, args, undefined, call)
          : screenLambdaStyle(screen, args, typeof args[2] === 'function' ? 2 : undefined, call),
      );
    } as unknown as H,
    handler,
  );

  for (const mark of [HANDLER_STREAMING, HANDLER_HIGHWATERMARK]) {
    if ((handler as any)[mark] !== undefined) (guarded as any)[mark] = (handler as any)[mark];
  }
  return guarded;
}
