/**
 * Per-invocation scope. Adapters run each invocation inside `invocationScope` so that every event carries the
 * function name and request id, even when the operation happens after several awaits.
 */
import type { AsyncLocalStorage } from 'node:async_hooks';
import { getBuiltinModule } from './pristine.js';

export interface InvocationScope {
  function?: string;
  invocation?: string;
}

// Created on first use: AsyncLocalStorage costs ~0.3 ms to set up, and a function run without an adapter
// never needs it.
let storage: AsyncLocalStorage<InvocationScope> | null = null;

/** Runs `fn` with every event it causes carrying this function name and invocation id. */
export function runInInvocationScope<T>(scope: InvocationScope, fn: () => T): T {
  storage ??= new (getBuiltinModule('async_hooks').AsyncLocalStorage)();
  return storage!.run(scope, fn);
}

export function currentInvocationScope(): InvocationScope | undefined {
  return storage?.getStore();
}

/** The function name when no adapter says otherwise, from the platform's own environment. */
export function defaultFunctionName(env: Record<string, string | undefined>, main: string | undefined): string {
  return (
    env.PERIMETER_FUNCTION ||
    env.AWS_LAMBDA_FUNCTION_NAME ||
    env.K_SERVICE ||
    env.FUNCTION_TARGET ||
    env.FUNCTION_NAME ||
    (main
      ? main
          .split('/')
          .pop()!
          .replace(/\.[cm]?[jt]s$/, '')
      : 'unknown')
  );
}
