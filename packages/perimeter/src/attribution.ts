/**
 * Who is calling: the npm packages whose code is on the call stack when an operation starts.
 *
 * The stack is read as structured V8 call sites (no string parsing) and each file is mapped to a package by its
 * last `node_modules/` segment, which covers nested installs, scoped names, pnpm's `.pnpm/<id>/node_modules/<name>`
 * store, Yarn PnP zip paths and symlinked installs (Node reports the real path). Files outside any
 * `node_modules` are the function's own code (`app`). Node's internals and the guard itself are skipped.
 *
 * Limits, stated plainly: the stack only shows synchronous callers plus `await` continuations. A package that
 * hands a URL to the app's code and lets the app make the call later (a queued job, an event listener the app
 * registered) is not on the stack at that point. Packages that sit outside the function's outermost frame (the
 * code that invoked the handler: middy, a functions framework, a runtime client) are not counted, so a
 * dependency that gets the app's own code to make a call for it, synchronously, is not counted either.
 */
import { bundledPackageAt } from './bundle-map.js';
import { type CallSite, siteFileName, siteIsEval, structuredStack } from './callsite.js';
import { emit } from './events.js';
import {
  ArrayIncludes,
  ArrayIsArray,
  ErrorCaptureStackTrace,
  fileURLToPath,
  MapClear,
  MapGet,
  MapSet,
  MapSize,
  ObjectGetOwnPropertyDescriptor,
  SafeMap,
  StringIncludes,
  StringLastIndexOf,
  StringSlice,
  StringStartsWith,
  splitString,
} from './pristine.js';

export const APP = 'app';
/** Attribution could not be read (the stack machinery was tampered with): treated as an untrusted package. */
export const UNKNOWN = '<unknown>';

const ownDir = __dirname;
const packageOfFile = new SafeMap<string, string | null>();
const STACK_DEPTH = 64;

/** Maps a file path (or file: URL) to its npm package, `null` for the guard or Node itself, `app` otherwise. */
export function packageOf(fileName: string): string | null {
  const cached = MapGet(packageOfFile, fileName);
  if (cached !== undefined) return cached;
  const result = computePackageOf(fileName);
  if (MapSize(packageOfFile) > 5000) MapClear(packageOfFile);
  MapSet(packageOfFile, fileName, result);
  return result;
}

function computePackageOf(fileName: string): string | null {
  if (StringStartsWith(fileName, 'node:') || !StringIncludes(fileName, '/')) return null;
  let path = fileName;
  if (StringStartsWith(path, 'file://')) {
    try {
      path = fileURLToPath(path);
    } catch {
      return APP;
    }
  }
  if (StringStartsWith(path, ownDir)) return null;
  const marker = StringLastIndexOf(path, '/node_modules/');
  if (marker === -1) return APP;
  const rest = StringSlice(path, marker + '/node_modules/'.length);
  const parts = splitString(rest, '/');
  if (StringStartsWith(parts[0]!, '@') && parts.length > 1) return `${parts[0]}/${parts[1]}`;
  return parts[0] || APP;
}

// V8 only consults the prepareStackTrace of the realm's own Error, whatever the global `Error` is now.
const ErrorCtor = Error as any;

function isWritableData(key: string): boolean {
  const descriptor = ObjectGetOwnPropertyDescriptor(ErrorCtor, key);
  return descriptor === undefined || (descriptor.writable === true && descriptor.get === undefined);
}

let tamperReported = false;

function stackTampered(detail: string): string[] {
  if (!tamperReported) {
    tamperReported = true;
    emit({
      type: 'tamper',
      capability: 'attribution',
      action: 'observed',
      target: 'Error.prepareStackTrace',
      package: UNKNOWN,
      reason: 'stack-unreadable',
      detail: `${detail}; callers are treated as an untrusted package (packages["*"])`,
    });
  }
  return [UNKNOWN];
}

/**
 * The distinct packages on the current stack, outermost caller first (`app` excluded). Returns `[UNKNOWN]` when
 * the stack cannot be read, so that a dependency that breaks stack capture gains nothing: `<unknown>` is judged by
 * `packages["*"]`. Code compiled at run time (`eval`, `new Function`) has no file of its own and is `<unknown>` too,
 * so that a package cannot launder a call through a function it built from a string.
 */
export function callerPackages(): string[] {
  return readStack();
}

/** Frames captured now, read later: V8 formats a captured stack only when it is first read. */
export interface CapturedStack {
  readonly holder: { stack?: unknown };
  readonly ok: boolean;
}

/**
 * Captures the call stack without interpreting it (a few microseconds): for operations judged later, off the
 * caller's stack, such as a fetch redirect hop. `packagesOf` reads it when, and only if, it is needed.
 */
export function captureCallers(): CapturedStack {
  const holder: { stack?: unknown } = {};
  if (!isWritableData('prepareStackTrace') || !isWritableData('stackTraceLimit')) return { holder, ok: false };
  const previousLimit = ErrorCtor.stackTraceLimit;
  try {
    ErrorCtor.stackTraceLimit = STACK_DEPTH;
    ErrorCaptureStackTrace(holder, captureCallers);
    return { holder, ok: true };
  } catch {
    return { holder, ok: false };
  } finally {
    try {
      ErrorCtor.stackTraceLimit = previousLimit;
    } catch {
      // Tampering; packagesOf fails closed on this capture.
    }
  }
}

export function packagesOf(captured: CapturedStack): string[] {
  if (!captured.ok || !isWritableData('prepareStackTrace')) {
    return stackTampered('Error.prepareStackTrace or Error.stackTraceLimit was made an accessor or read-only');
  }
  const previousPrepare = ErrorCtor.prepareStackTrace;
  let sites: CallSite[] | undefined;
  try {
    ErrorCtor.prepareStackTrace = structuredStack;
    sites = captured.holder.stack as CallSite[];
  } catch {
    sites = undefined;
  } finally {
    try {
      ErrorCtor.prepareStackTrace = previousPrepare;
    } catch {
      // As above: the result fails closed.
    }
  }
  return interpret(sites);
}

function readStack(): string[] {
  const holder: { stack?: unknown } = {};
  // An accessor could answer our read-back with our own function and V8 with another; only plain data
  // properties are trusted.
  if (!isWritableData('prepareStackTrace') || !isWritableData('stackTraceLimit')) {
    return stackTampered('Error.prepareStackTrace or Error.stackTraceLimit was made an accessor or read-only');
  }
  const previousPrepare = ErrorCtor.prepareStackTrace;
  const previousLimit = ErrorCtor.stackTraceLimit;
  let sites: CallSite[] | undefined;
  try {
    ErrorCtor.prepareStackTrace = structuredStack;
    ErrorCtor.stackTraceLimit = STACK_DEPTH;
    ErrorCaptureStackTrace(holder, readStack);
    sites = holder.stack as CallSite[];
  } catch {
    sites = undefined;
  } finally {
    try {
      ErrorCtor.prepareStackTrace = previousPrepare;
      ErrorCtor.stackTraceLimit = previousLimit;
    } catch {
      // A non-writable Error property is itself a sign of tampering; the result below already fails closed.
    }
  }
  return interpret(sites);
}

function interpret(sites: CallSite[] | undefined): string[] {
  if (!ArrayIsArray(sites)) return stackTampered('the call stack could not be captured');
  const found: string[] = [];
  let sawApp = false;
  for (let i = sites.length - 1; i >= 0; i--) {
    const site = sites[i]!;
    const file = siteFileName(site);
    let pkg: string | null;
    if (!file) {
      if (!siteIsEval(site)) continue;
      pkg = UNKNOWN;
    } else {
      pkg = packageOf(file);
      // A bundle built with perimeter/esbuild: the table beside it says which package this line and column came from.
      if (pkg === APP) pkg = bundledPackageAt(file, site) ?? APP;
    }
    if (pkg === APP && !sawApp) {
      // Packages outside the function's outermost frame are its host: the middleware runner, the functions
      // framework, the runtime client that called the handler (V8's async stack traces keep them on every
      // stack). They did not start this operation, and their rules must not fence in the handler's own calls.
      sawApp = true;
      found.length = 0;
    }
    if (pkg !== null && pkg !== APP && !ArrayIncludes(found, pkg)) found[found.length] = pkg;
  }
  return found;
}
