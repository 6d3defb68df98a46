/**
 * V8 call sites, read through methods captured when the guard loads. A dependency that obtains call sites
 * through its own prepareStackTrace could otherwise rewrite `getFileName` (or the line and column) on their
 * shared prototype and pass as the app, or as another package.
 */
import { ErrorCaptureStackTrace, ObjectGetPrototypeOf, ReflectApply } from './pristine.js';

export type CallSite = object;

/** A prepareStackTrace that hands back the structured call sites instead of a string. */
export function structuredStack(_: Error, sites: CallSite[]): CallSite[] {
  return sites;
}

const methods = (() => {
  // V8 only consults the prepareStackTrace of the realm's own Error, whatever the global `Error` is later.
  const ErrorCtor = Error as any;
  const holder: { stack?: unknown } = {};
  const previous = ErrorCtor.prepareStackTrace;
  ErrorCtor.prepareStackTrace = structuredStack;
  ErrorCaptureStackTrace(holder);
  // V8 formats the stack when it is first read: read it before putting the previous formatter back.
  const site = (holder.stack as CallSite[])[0]!;
  ErrorCtor.prepareStackTrace = previous;
  const proto = ObjectGetPrototypeOf(site);
  return {
    getFileName: proto.getFileName as Function,
    isEval: proto.isEval as Function,
    getLineNumber: proto.getLineNumber as Function,
    getColumnNumber: proto.getColumnNumber as Function,
  };
})();

export const siteFileName = (s: CallSite) => ReflectApply(methods.getFileName, s, []) as string | null | undefined;
export const siteIsEval = (s: CallSite) => ReflectApply(methods.isEval, s, []) as boolean;
export const siteLine = (s: CallSite) => ReflectApply(methods.getLineNumber, s, []) as number | null;
export const siteColumn = (s: CallSite) => ReflectApply(methods.getColumnNumber, s, []) as number | null;
