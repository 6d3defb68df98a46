/**
 * The serverless platform's own code, as opposed to the function's and its dependencies'.
 *
 * On AWS Lambda the runtime interface client (RIC) lives under LAMBDA_RUNTIME_DIR (/var/runtime), outside any
 * node_modules, so attribution counts it with the app: it gets the Runtime API allowance (policy/evaluate.ts step 1)
 * and a dependency does not. This module also follows the Runtime API protocol so that, with the preload alone and
 * no wrapper, events still carry the request id of the invocation being served.
 */

import { onlyPlatformCode, PLATFORM_PACKAGES } from './policy/evaluate.js';
import {
  getBuiltinModule,
  queueMicrotaskPristine,
  ReflectApply,
  ReflectDeleteProperty,
  StringEndsWith,
  StringIncludes,
  StringLastIndexOf,
  StringSlice,
  StringStartsWith,
} from './pristine.js';
import type { InvocationScope } from './scope.js';
import { setPlatformInvocationSource } from './scope.js';

let runtimeDir: string | null = null;

/**
 * Whether loading the native addon `file` is the platform runtime loading its own (Lambda's `rapid-client.node`):
 * the file is the runtime's (under LAMBDA_RUNTIME_DIR, /var/runtime by default, outside node_modules; or inside the
 * `aws-lambda-ric` package of a container image) and no other package is on the stack. Only on Lambda (the runtime
 * folder is read once, when the guard starts, so a dependency changing the environment later moves nothing).
 */
export function isPlatformAddonLoad(file: string, packagesOnStack: readonly string[]): boolean {
  if (runtimeDir === null || !onlyPlatformCode(packagesOnStack)) return false;
  if (StringStartsWith(file, runtimeDir)) return !StringIncludes(file, '/node_modules/');
  const marker = StringLastIndexOf(file, '/node_modules/');
  if (marker === -1) return false;
  for (let i = 0; i < PLATFORM_PACKAGES.length; i++) {
    if (StringStartsWith(StringSlice(file, marker + 14), `${PLATFORM_PACKAGES[i]}/`)) return true;
  }
  return false;
}

/**
 * After the platform runtime has loaded its addon, drop it from the require cache: otherwise a dependency's
 * `require('/var/runtime/rapid-client.node')` would be handed the runtime's loaded client (and through it the Runtime
 * API, in native code the guard never sees) without process.dlopen, and so without any check. The runtime keeps its
 * own reference; a dependency's require now reaches process.dlopen and is judged like any addon load. The microtask
 * runs as soon as the runtime's synchronous require returns, before any handler code can run.
 */
export function forgetPlatformAddonAfterLoad(file: string): void {
  const cache = (getBuiltinModule('module') as { _cache?: Record<string, unknown> })._cache;
  if (cache) queueMicrotaskPristine(() => ReflectDeleteProperty(cache, file));
}

const NEXT_PATH = '/2018-06-01/runtime/invocation/next';
const REQUEST_ID_HEADER = 'lambda-runtime-aws-request-id';

interface ClientRequestLike {
  path?: string;
  method?: string;
  getHeader?(name: string): unknown;
}

interface IncomingMessageLike {
  statusCode?: number;
  headers?: Record<string, unknown>;
}

let watching = false;
let observed: InvocationScope | undefined;
let functionName: string | undefined;

/**
 * On Lambda (AWS_LAMBDA_RUNTIME_API set): records the runtime folder for isPlatformAddonLoad, and tells events which
 * invocation is running when no adapter scope does (the preload alone, no wrapper). Two sources, best first:
 *
 * - the runtime's own InvokeStore (`globalThis.awslambda.InvokeStore`, the RIC since 2025; AsyncLocalStorage-based
 *   when the function serves several invocations at once);
 * - the request id of the last `GET …/invocation/next` seen over http (diagnostics_channel: no patching, nothing on
 *   the request path), for runtime clients without an InvokeStore. Lambda serves one invocation at a time per
 *   process there, so the last `next` names the invocation running now.
 *
 * The `perimeter/lambda` wrapper reads the id from the handler's context instead and needs neither.
 */
export function startPlatformSupport(env: Record<string, string | undefined>): void {
  const api = env.AWS_LAMBDA_RUNTIME_API;
  if (watching || !api) return;
  watching = true;
  const dir = env.LAMBDA_RUNTIME_DIR || '/var/runtime';
  runtimeDir = StringEndsWith(dir, '/') ? dir : `${dir}/`;
  functionName = env.AWS_LAMBDA_FUNCTION_NAME || undefined;
  const channels = getBuiltinModule('diagnostics_channel') as typeof import('node:diagnostics_channel');
  channels.subscribe('http.client.response.finish', (message: unknown) => {
    const { request, response } = message as { request?: ClientRequestLike; response?: IncomingMessageLike };
    if (request?.path !== NEXT_PATH || request.getHeader?.('host') !== api) return;
    const id = response?.headers?.[REQUEST_ID_HEADER];
    observed =
      response?.statusCode === 200 && typeof id === 'string' ? { function: functionName, invocation: id } : undefined;
  });
  setPlatformInvocationSource(platformInvocation);
}

let invokeStore: object | null = null;
let getRequestId: ((this: object) => unknown) | null = null;
let reading = false;

function platformInvocation(): InvocationScope | undefined {
  const id = invokeStoreRequestId();
  return id === undefined ? observed : { function: functionName, invocation: id };
}

/**
 * The InvokeStore is the runtime's object, but it sits on a global a dependency can reach: it is read defensively
 * (once found, the same object and method are kept; a throw or a re-entrant call reads as "no id"). At worst a
 * dependency mislabels its own events; it decides nothing.
 */
function invokeStoreRequestId(): string | undefined {
  if (reading) return undefined;
  reading = true;
  try {
    if (invokeStore === null) {
      const store = (globalThis as any).awslambda?.InvokeStore;
      if (typeof store !== 'object' || store === null || typeof store.getRequestId !== 'function') return undefined;
      invokeStore = store;
      getRequestId = store.getRequestId;
    }
    const id = ReflectApply(getRequestId!, invokeStore, []);
    return typeof id === 'string' && id !== '-' && id !== '' ? id : undefined;
  } catch {
    return undefined;
  } finally {
    reading = false;
  }
}
