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
 * registered) is not on the stack at that point.
 */
import { ErrorCaptureStackTrace, SafeMap } from './pristine.js';

export const APP = 'app';
/** Attribution could not be read (the stack machinery was tampered with): treated as an untrusted package. */
export const UNKNOWN = '<unknown>';

const ownDir = __dirname;
const packageOfFile = new SafeMap<string, string | null>();
const STACK_DEPTH = 64;

/** Maps a file path (or file: URL) to its npm package, `null` for the guard or Node itself, `app` otherwise. */
export function packageOf(fileName: string): string | null {
  const cached = packageOfFile.get(fileName);
  if (cached !== undefined) return cached;
  const result = computePackageOf(fileName);
  if (packageOfFile.size > 5000) packageOfFile.clear();
  packageOfFile.set(fileName, result);
  return result;
}

function computePackageOf(fileName: string): string | null {
  if (fileName.startsWith('node:') || !fileName.includes('/')) return null;
  let path = fileName;
  if (path.startsWith('file://')) {
    try {
      path = decodeURIComponent(new URL(path).pathname);
    } catch {
      return APP;
    }
  }
  if (path.startsWith(ownDir)) return null;
  const marker = path.lastIndexOf('/node_modules/');
  if (marker === -1) return APP;
  const rest = path.slice(marker + '/node_modules/'.length);
  const parts = rest.split('/');
  if (parts[0]!.startsWith('@') && parts.length > 1) return `${parts[0]}/${parts[1]}`;
  return parts[0] || APP;
}

interface CallSiteLike {
  getFileName(): string | null | undefined;
}

function structuredStack(_: Error, sites: CallSiteLike[]): CallSiteLike[] {
  return sites;
}

/**
 * The distinct packages on the current stack, outermost caller first (`app` excluded). Returns `[UNKNOWN]` when
 * the stack cannot be read, so that a dependency that breaks stack capture gains nothing.
 */
export function callerPackages(): string[] {
  const holder: { stack?: unknown } = {};
  const E = Error as any;
  const previousPrepare = E.prepareStackTrace;
  const previousLimit = E.stackTraceLimit;
  let sites: CallSiteLike[] | undefined;
  try {
    E.prepareStackTrace = structuredStack;
    E.stackTraceLimit = STACK_DEPTH;
    ErrorCaptureStackTrace(holder, callerPackages);
    sites = holder.stack as CallSiteLike[];
  } catch {
    sites = undefined;
  } finally {
    try {
      E.prepareStackTrace = previousPrepare;
      E.stackTraceLimit = previousLimit;
    } catch {
      // A non-writable Error property is itself a sign of tampering; the result below already fails closed.
    }
  }
  if (!Array.isArray(sites)) return [UNKNOWN];
  const found: string[] = [];
  for (let i = sites.length - 1; i >= 0; i--) {
    const file = sites[i]?.getFileName?.();
    if (!file) continue;
    const pkg = packageOf(file);
    if (pkg !== null && pkg !== APP && !found.includes(pkg)) found.push(pkg);
  }
  return found;
}
