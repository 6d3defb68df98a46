/**
 * What every platform adapter does around one invocation: enter an invocation scope (function name, request id,
 * optional narrower policy), call the handler, and write pending events out when it settles. Shared by the adapter
 * entry points; it uses the runtime only through the public API (../index.js), like them.
 */
import {
  flushEvents,
  type PolicyDocument,
  type PreparedPolicy,
  preparePolicy,
  guard as startGuard,
  withInvocation,
} from '../index.js';

const GUARD_KEY = Symbol.for('perimeter.guard');

/**
 * Starts the guard unless something (the preload, another adapter) already did: from `functionPolicy` when given
 * (an object or a file path), else from the environment as the preload would. Throws for a missing or invalid
 * policy: an adapter fails its function's init rather than run it unguarded.
 */
export function ensureGuardStarted(functionPolicy?: PolicyDocument | string): void {
  if (!(globalThis as any)[GUARD_KEY]) startGuard(functionPolicy);
}

/** Validated and compiled at wrap time (module init), so an invalid policy fails the init, not an invocation. */
export function prepareNarrower(policy: PolicyDocument | undefined): PreparedPolicy | undefined {
  return policy === undefined ? undefined : preparePolicy(policy);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

/**
 * Calls `call` in an invocation scope and flushes events when it settles: synchronously for a plain value or a
 * throw, and for a promise in a reaction registered before the platform's own await on that same promise, so the
 * flush runs first. The handler's own promise is returned (not a derived one), which spares the platform a
 * microtask hop per invocation.
 */
export function invokeScoped<T>(
  functionName: string | undefined,
  invocation: string | undefined,
  policy: PreparedPolicy | undefined,
  call: () => T,
): T {
  return withInvocation({ function: functionName, invocation, policy }, () => {
    let result: T;
    try {
      result = call();
    } catch (error) {
      flushEvents();
      throw error;
    }
    if (isThenable(result)) result.then(flushEvents, flushEvents);
    else flushEvents();
    return result;
  });
}

/** A callback that flushes events before handing the result on (callback-style handlers). */
export function flushingCallback(callback: (...results: unknown[]) => unknown): (...results: unknown[]) => unknown {
  return function flushThenCallBack(this: unknown, ...results: unknown[]) {
    flushEvents();
    return Reflect.apply(callback, this, results);
  };
}

/** Makes the wrapper look like the handler to the platform: same arity (runtimes read it) and name. */
export function lookLike<W extends (...args: any[]) => any>(wrapper: W, handler: (...args: any[]) => any): W {
  Object.defineProperty(wrapper, 'length', { value: handler.length });
  Object.defineProperty(wrapper, 'name', { value: handler.name || 'handler' });
  return wrapper;
}
