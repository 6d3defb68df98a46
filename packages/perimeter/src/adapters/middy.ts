/**
 * `perimeter/middy`: a middy middleware for teams that already compose their Lambda handlers with middy (and
 * Powertools). Structural types only: nothing here depends on @middy/core.
 *
 * A middleware sees the moments before and after the handler, not the handler's call itself, so it cannot open an
 * async-context scope around it (middy awaits `before` and then calls the handler from its own async function). It
 * enters the invocation process-wide instead (`enterInvocation`), which is exact on Lambda, where a process serves
 * one invocation at a time, and leaves it in `after` / `onError`, writing pending events out before middy returns
 * to the runtime (which freezes the process right after). For functions that serve several invocations at once,
 * wrap the middy handler with `perimeter/lambda`'s `guard()` instead: it follows async context.
 */
import { enterInvocation, flushEvents, type PolicyDocument } from '../index.js';
import { ensureGuardStarted, prepareNarrower } from './common.js';
import {
  type AdapterInspectOptions,
  afterScreening,
  prepareScreen,
  type SchemaOption,
  withBatchFailures,
} from './inspect.js';

export interface MiddyRequestLike {
  event: unknown;
  context: { functionName?: string; awsRequestId?: string };
  response?: unknown;
  error?: unknown;
  internal?: Record<string, unknown>;
}

export interface MiddyMiddlewareLike {
  /** Returns the early response (middy's convention) when the event is rejected. */
  before: (request: MiddyRequestLike) => unknown;
  after: (request: MiddyRequestLike) => void;
  onError: (request: MiddyRequestLike) => void;
}

export interface MiddyGuardOptions {
  /** A narrower policy for every invocation (see withPolicy): it can only remove permissions. */
  policy?: PolicyDocument;
  /** Inspect each event for attacks before the handler sees it (docs/inspector.md). */
  inspect?: AdapterInspectOptions;
  /** Validate the JSON body (HTTP triggers) or the event against a Standard Schema or a validator function. */
  schema?: SchemaOption;
}

ensureGuardStarted();

/**
 * The middleware. Use it first (`middy(handler).use(perimeter())`): its `before` then runs before every other
 * middleware's, and its `after` / `onError` after theirs, so the whole chain is inside the invocation.
 */
export function perimeter(options: MiddyGuardOptions = {}): MiddyMiddlewareLike {
  const policy = prepareNarrower(options.policy);
  const screen = prepareScreen(options);
  // Records removed from a batch, per request, to report in `after` next to the handler's own failures.
  const removedFrom = new WeakMap<object, string[]>();
  // Per request object, so that a request that never reaches `after` (middy stops on an early response only after
  // running the remaining `after`s) cannot leave another request's invocation open.
  const leaveFor = new WeakMap<object, () => void>();
  const leave = (request: MiddyRequestLike) => {
    const leaveInvocation = leaveFor.get(request);
    leaveFor.delete(request);
    flushEvents();
    leaveInvocation?.();
  };
  return {
    before(request) {
      const context = request.context ?? {};
      leaveFor.set(
        request,
        enterInvocation({ function: context.functionName, invocation: context.awsRequestId, policy }),
      );
      if (!screen) return undefined;
      return afterScreening(screen(request.event), (screened) => {
        if (screened.kind === 'fail') throw screened.error;
        if (screened.kind === 'respond') {
          // An early response skips this middleware's `after`: leave the invocation here.
          leave(request);
          return screened.response;
        }
        request.event = screened.event;
        if (screened.failedIds.length > 0) removedFrom.set(request, screened.failedIds);
        return undefined;
      });
    },
    after(request) {
      const removed = removedFrom.get(request);
      if (removed) request.response = withBatchFailures(request.response, removed);
      leave(request);
    },
    onError: leave,
  };
}
