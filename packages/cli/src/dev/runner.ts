/**
 * The function's side of `perimeter dev`: the entry point of each function's own Node process, started by host.ts
 * as `node --import <perimeter/register> runner.js` (what to run comes over IPC), so the guard and the function's policy are in force
 * before this file (and then the handler and its dependencies) load.
 *
 * It imports the handler, works out its format (here, in the function's process: the host never runs function
 * code), tells the host it is ready, and answers invocations over the IPC channel, each inside the runtime's
 * invocation scope so that every event names the function and the request id.
 *
 * Everything this process sends is untrusted by the host: a dependency can call `process.send` too.
 */
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

import {
  type Format,
  type HostMessage,
  MAX_RESULT_BYTES,
  type RunnerMessage,
  type RunnerSpec,
  type SerialisedResponse,
} from './protocol.js';

// Kept before any function code runs: a dependency replacing process.send later does not change where results go.
const send = process.send?.bind(process);
const requireHere = createRequire(import.meta.url);

function post(message: RunnerMessage): void {
  if (!send) return;
  try {
    send(message);
  } catch {
    // Unserialisable values were turned into errors before this point; a closed channel means the host is gone.
  }
}

function errorOf(error: unknown): { type: string; message: string; stack?: string } {
  if (error instanceof Error) {
    return { type: error.name || 'Error', message: error.message, ...(error.stack ? { stack: error.stack } : {}) };
  }
  return { type: 'Error', message: typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error)) };
}

function pick(module: Record<string, any>, name: string): unknown {
  const own = module[name];
  if (own !== undefined) return own;
  // A CommonJS handler imported from ESM: `module.exports.handler` may only be on the default export.
  const fallback = module.default;
  return typeof fallback === 'object' || typeof fallback === 'function' ? fallback?.[name] : undefined;
}

function resolveHandler(
  spec: RunnerSpec,
  module: Record<string, any>,
): { format: Format; exportName: string; fn: Function } {
  const lambdaLike: Format = spec.netlify ? 'netlify-v1' : 'lambda';
  if (spec.export !== undefined || spec.format !== undefined) {
    const exportName = spec.export ?? (spec.format === 'netlify-v2' ? 'default' : 'handler');
    const fn = exportName === 'default' ? module.default : pick(module, exportName);
    const format = spec.format ?? (exportName === 'default' ? 'netlify-v2' : lambdaLike);
    if (typeof fn !== 'function')
      throw new Error(`export \`${exportName}\` is ${fn === undefined ? 'missing' : `not a function (${typeof fn})`}`);
    return { format, exportName, fn };
  }
  const handler = pick(module, 'handler');
  if (typeof handler === 'function') return { format: lambdaLike, exportName: 'handler', fn: handler };
  if (typeof module.default === 'function') return { format: 'netlify-v2', exportName: 'default', fn: module.default };
  const names = Object.keys(module).filter((key) => key !== '__esModule');
  throw new Error(
    `exports no handler: expected \`export const handler = async (event, context) => …\` (Lambda, Netlify v1) or \`export default async (request, context) => …\` (Netlify v2); found ${names.length ? names.map((key) => `\`${key}\``).join(', ') : 'no exports'}`,
  );
}

function lambdaContext(name: string, id: string, deadline: number, netlify: boolean): Record<string, unknown> {
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: name,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${name}`,
    memoryLimitInMB: '1024',
    awsRequestId: id,
    logGroupName: `/aws/lambda/${name}`,
    logStreamName: 'perimeter-dev',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    ...(netlify ? { clientContext: {} } : {}),
  };
}

function cookieJar(request: Request, setCookies: string[]) {
  const parsed = new Map<string, string>();
  for (const part of (request.headers.get('cookie') ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0) parsed.set(part.slice(0, at).trim(), decodeURIComponent(part.slice(at + 1).trim()));
  }
  return {
    get: (name: string) => parsed.get(name),
    set: (
      input:
        | string
        | {
            name: string;
            value: string;
            path?: string;
            maxAge?: number;
            httpOnly?: boolean;
            secure?: boolean;
            sameSite?: string;
          },
      value?: string,
    ) => {
      const cookie = typeof input === 'string' ? { name: input, value: value ?? '' } : input;
      const attributes = [
        `${cookie.name}=${encodeURIComponent(cookie.value)}`,
        ...('path' in cookie && cookie.path ? [`Path=${cookie.path}`] : []),
        ...('maxAge' in cookie && cookie.maxAge !== undefined ? [`Max-Age=${cookie.maxAge}`] : []),
        ...('httpOnly' in cookie && cookie.httpOnly ? ['HttpOnly'] : []),
        ...('secure' in cookie && cookie.secure ? ['Secure'] : []),
        ...('sameSite' in cookie && cookie.sameSite ? [`SameSite=${cookie.sameSite}`] : []),
      ];
      setCookies.push(attributes.join('; '));
    },
    delete: (name: string) => setCookies.push(`${name}=; Max-Age=0`),
  };
}

async function serialiseResponse(response: unknown, setCookies: string[]): Promise<SerialisedResponse> {
  if (response === undefined) return { status: 204, headers: setCookies.map((c) => ['set-cookie', c]), body: '' };
  if (!(response instanceof Response)) {
    throw new TypeError(
      `a Netlify v2 function must return a Response (or nothing), not ${response === null ? 'null' : typeof response}`,
    );
  }
  const headers: Array<[string, string]> = [];
  response.headers.forEach((value, key) => {
    if (key !== 'set-cookie') headers.push([key, value]);
  });
  for (const cookie of [...response.headers.getSetCookie(), ...setCookies]) headers.push(['set-cookie', cookie]);
  const body = Buffer.from(await response.arrayBuffer());
  if (body.length > MAX_RESULT_BYTES)
    throw new RangeError(`the response body is ${body.length} bytes; the limit is ${MAX_RESULT_BYTES}`);
  return { status: response.status, headers, body: body.toString('base64') };
}

/** Calls a Lambda-style handler: async, or callback-style (three parameters), whichever answers first. */
function callLambda(fn: Function, event: unknown, context: Record<string, unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const callback = (error: unknown, value?: unknown) => {
      if (settled) return;
      settled = true;
      if (error !== null && error !== undefined) reject(error);
      else resolve(value);
    };
    Object.assign(context, {
      done: callback,
      succeed: (value: unknown) => callback(null, value),
      fail: (error: unknown) => callback(error ?? new Error('failed')),
    });
    const returned = fn(event, context, callback);
    if (fn.length < 3 || (returned && typeof returned.then === 'function')) {
      Promise.resolve(returned).then(
        (value) => callback(null, value),
        (error) => callback(error ?? new Error('the handler rejected with no reason')),
      );
    }
  });
}

async function main(): Promise<void> {
  if (!send) {
    process.stderr.write('perimeter runner: start it through `perimeter dev`\n');
    process.exit(2);
  }
  // The spec and a one-time token come over IPC before any function code loads: the token is in no argument or
  // variable a dependency could read, so only this runner can say `ready` (a forged `ready` could claim routes).
  const init = await new Promise<Extract<HostMessage, { type: 'init' }>>((resolve) => {
    const onMessage = (message: HostMessage) => {
      if (message?.type !== 'init') return;
      process.off('message', onMessage);
      resolve(message);
    };
    process.on('message', onMessage);
  });
  const { spec, token } = init;
  // The same runtime instance the preload started (register.js puts it in require.cache).
  const runtime = requireHere('perimeter') as {
    withInvocation<T>(options: { function?: string; invocation?: string }, fn: () => T): T;
    flushEvents(): void;
  };

  let module: Record<string, any>;
  let resolved: ReturnType<typeof resolveHandler>;
  try {
    if (/\.[mc]?ts$/.test(spec.handler) && !(process.features as { typescript?: unknown }).typescript) {
      throw new Error(
        `${spec.handler} is TypeScript, and Node ${process.version} does not strip types. ` +
          'Run the functions on Node 22.18 or newer (perimeter dev --node <binary>), or point the config at the built .mjs.',
      );
    }
    module = (await import(pathToFileURL(spec.handler).href)) as Record<string, any>;
    resolved = resolveHandler(spec, module);
  } catch (error) {
    runtime.flushEvents();
    const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
    post({ type: 'load-error', token, message: detail });
    process.exitCode = 1;
    process.disconnect?.();
    return;
  }
  const { format, exportName, fn } = resolved;
  const ready: RunnerMessage = { type: 'ready', token, format, export: exportName };
  if (format === 'netlify-v2') {
    // Netlify v2 routes: `export const config = { path: '/api/x' | [...], method: 'POST' | [...] }`.
    const config = module.config;
    const list = (value: unknown) =>
      (typeof value === 'string' ? [value] : Array.isArray(value) ? value : []).filter(
        (v): v is string => typeof v === 'string',
      );
    if (config && typeof config === 'object') {
      const paths = list(config.path);
      const methods = list(config.method).map((method) => method.toUpperCase());
      if (paths.length) ready.paths = paths;
      if (methods.length) ready.methods = methods;
    }
  }

  // The host is gone (killed, crashed): nothing will ever ask this process anything again.
  process.on('disconnect', () => {
    runtime.flushEvents();
    process.exit(0);
  });
  process.on('message', (raw: unknown) => {
    const message = raw as HostMessage;
    if (message?.type === 'stop') {
      runtime.flushEvents();
      process.exit(0);
    }
    if (message?.type !== 'invoke' || typeof message.id !== 'string') return;
    const { id, deadline } = message;
    const run = async (): Promise<unknown> => {
      if ('request' in message) {
        const { method, url, headers, body, ip } = message.request;
        const request = new Request(url, {
          method,
          headers,
          ...(body !== null && method !== 'GET' && method !== 'HEAD'
            ? { body: Buffer.from(body, 'base64'), duplex: 'half' }
            : {}),
        } as RequestInit);
        const setCookies: string[] = [];
        const context = {
          requestId: id,
          ip,
          params: message.params ?? {},
          cookies: cookieJar(request, setCookies),
          geo: { city: 'localhost', country: { code: 'XX', name: 'Local' } },
          site: { id: 'perimeter-dev', name: 'perimeter-dev', url: new URL(url).origin },
          deploy: { context: 'dev', id: 'perimeter-dev', published: false },
          account: { id: 'perimeter-dev' },
          server: { region: 'local' },
          url: new URL(url),
          json: (value: unknown, init?: ResponseInit) => Response.json(value, init),
          waitUntil: (promise: Promise<unknown>) => void Promise.resolve(promise).catch(() => {}),
          getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
        };
        const response = await fn(request, context);
        return serialiseResponse(response, setCookies);
      }
      return callLambda(fn, message.event, lambdaContext(spec.name, id, deadline, format === 'netlify-v1'));
    };
    runtime
      .withInvocation({ function: spec.name, invocation: id }, run)
      .then(
        (value) => {
          let text: string | undefined;
          try {
            text = JSON.stringify(value);
          } catch (error) {
            return {
              type: 'result',
              id,
              ok: false,
              error: errorOf(new TypeError(`the result is not JSON-serialisable: ${(error as Error).message}`)),
            } as const;
          }
          if (text !== undefined && text.length > MAX_RESULT_BYTES) {
            return {
              type: 'result',
              id,
              ok: false,
              error: {
                type: 'RangeError',
                message: `the result is ${text.length} bytes of JSON; the limit is ${MAX_RESULT_BYTES}`,
              },
            } as const;
          }
          return { type: 'result', id, ok: true, value: text === undefined ? null : JSON.parse(text) } as const;
        },
        (error: unknown) => ({ type: 'result', id, ok: false, error: errorOf(error) }) as const,
      )
      .then((result: RunnerMessage) => {
        // Events first: the host records the invocation when the result arrives.
        runtime.flushEvents();
        post(result);
      });
  });
  post(ready);
}

void main();
