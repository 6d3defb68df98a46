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

export interface LambdaContextLike {
  functionName?: string;
  awsRequestId?: string;
}

export interface LambdaGuardOptions {
  /** A narrower policy for every invocation of this handler (see withPolicy): it can only remove permissions. */
  policy?: PolicyDocument;
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

  const guarded = lookLike(
    function (this: unknown, ...args: unknown[]) {
      const streaming =
        (guarded as any)[HANDLER_STREAMING] === 'response' || (handler as any)[HANDLER_STREAMING] === 'response';
      const context = contextOf(args, streaming);
      if (!streaming && typeof args[2] === 'function')
        args[2] = flushingCallback(args[2] as (...r: unknown[]) => unknown);
      return invokeScoped(context?.functionName, context?.awsRequestId, policy, () =>
        Reflect.apply(handler, this, args),
      );
    } as unknown as H,
    handler,
  );

  for (const mark of [HANDLER_STREAMING, HANDLER_HIGHWATERMARK]) {
    if ((handler as any)[mark] !== undefined) (guarded as any)[mark] = (handler as any)[mark];
  }
  return guarded;
}
