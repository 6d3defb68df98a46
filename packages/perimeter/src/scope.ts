/**
 * Per-invocation scope. Adapters run each invocation inside `invocationScope` so that every event carries the
 * function name and request id, even when the operation happens after several awaits.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface InvocationScope {
  function?: string;
  invocation?: string;
}

export const invocationScope = new AsyncLocalStorage<InvocationScope>();

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
