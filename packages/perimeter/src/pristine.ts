/**
 * References to built-ins captured when the guard module is first evaluated, before any dependency runs.
 * The guard never calls a built-in through a path a dependency can replace (`Function.prototype.call`,
 * `Array.prototype.push`, a module export): a hostile package that swaps them must not change our decisions.
 */
import fs from 'node:fs';
import type NodeModule from 'node:module';
import path from 'node:path';
import url from 'node:url';

export const ReflectApply = Reflect.apply;
export const ReflectDeleteProperty = Reflect.deleteProperty;
export const ReflectConstruct = Reflect.construct;
export const ObjectDefineProperty = Object.defineProperty;
export const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
export const ObjectGetOwnPropertyDescriptors = Object.getOwnPropertyDescriptors;
export const ObjectGetPrototypeOf = Object.getPrototypeOf;
export const ObjectSetPrototypeOf = Object.setPrototypeOf;
export const ObjectFreeze = Object.freeze;
export const ObjectHasOwn = Object.hasOwn;
export const ReflectOwnKeys = Reflect.ownKeys;
export const JSONStringify = JSON.stringify;
export const JSONParse = JSON.parse;
export const ErrorCaptureStackTrace = Error.captureStackTrace;
export const SafeMap = Map;
export const SafeSet = Set;
export const SafeWeakSet = WeakSet;
export const SafeWeakMap = WeakMap;
export const URLCtor = URL;
export const DateNow = Date.now;
export const processNextTick = process.nextTick;
export const setImmediatePristine = setImmediate;
export const queueMicrotaskPristine = queueMicrotask;
export const PromiseReject = Promise.reject.bind(Promise);

export const fsWrite = fs.write;
export const fsWriteSync = fs.writeSync;
export const fsOpenSync = fs.openSync;
export const fsReadFileSync = fs.readFileSync;
export const fsExistsSync = fs.existsSync;
export const fsRealpathSync = fs.realpathSync;
export const fsRealpathSyncNative = fs.realpathSync.native;
export const fsLstatSync = fs.lstatSync;
export const fsReadlinkSync = fs.readlinkSync;
export const processCwd = process.cwd.bind(process);
export const pathResolve = path.resolve;
export const pathDirname = path.dirname;
export const pathJoin = path.join;
export const pathSep = path.sep;
export const urlDomainToASCII = url.domainToASCII;
export const fileURLToPath = url.fileURLToPath;
/** Set by the bundle (scripts/bundle-runtime.mjs) to its own CommonJS module object, outside every bundled module. */
declare const PERIMETER_NODE_MODULE: { constructor?: unknown } | undefined;

/**
 * Node's CommonJS `Module` class, which is what `node:module` exports. Taken from the bundle's own module object
 * when it has one: requiring `node:module` loads the public module and the source-map support it re-exports (0.1–0.4
 * ms of every cold start) only to hand back this same class, which already carries createRequire, registerHooks,
 * syncBuiltinESMExports and _load. In the preload nothing else has run yet, so the class is as pristine either way.
 */
export const ModuleClass: typeof NodeModule = nodeModuleClass();

function nodeModuleClass(): typeof NodeModule {
  const own =
    typeof PERIMETER_NODE_MODULE === 'object' && PERIMETER_NODE_MODULE !== null
      ? (PERIMETER_NODE_MODULE.constructor as any)
      : undefined;
  if (
    typeof own === 'function' &&
    typeof own.createRequire === 'function' &&
    typeof own.syncBuiltinESMExports === 'function' &&
    typeof own._load === 'function'
  ) {
    return own;
  }
  return require('node:module');
}

export const syncBuiltinESMExports = ModuleClass.syncBuiltinESMExports;

/** Loads a built-in without going through the (hooked) public module loader. */
export const getBuiltinModule: (id: string) => any =
  typeof (process as any).getBuiltinModule === 'function'
    ? (process as any).getBuiltinModule.bind(process)
    : // Node < 20.16: module.createRequire still reaches the built-in; our load hook ignores the guard's own loads.
      ModuleClass.createRequire(__filename);

/** The folder the guard's compiled code lives in (dist/): workers get `dist/register.js` from here. */
export const ownDirectory = __dirname;

/**
 * `uncurryThis(String.prototype.startsWith)(s, x)` calls the original method even after a dependency replaces
 * `String.prototype.startsWith` or `Function.prototype.call`: the bound `call` was captured here, first.
 */
const FunctionCall = Function.prototype.call;
const FunctionBind = Function.prototype.bind;
const uncurryThis: <T extends (...args: any[]) => any>(
  fn: T,
) => (self: ThisParameterType<T> | unknown, ...args: Parameters<T>) => ReturnType<T> = ReflectApply(
  FunctionBind,
  FunctionBind,
  [FunctionCall],
) as any;

export const PromisePrototypeThen = uncurryThis(Promise.prototype.then) as (
  promise: unknown,
  onFulfilled: (value: unknown) => unknown,
  onRejected: (reason: unknown) => unknown,
) => Promise<unknown>;
export const StringStartsWith = uncurryThis(String.prototype.startsWith) as (
  s: string,
  search: string,
  at?: number,
) => boolean;
export const StringEndsWith = uncurryThis(String.prototype.endsWith) as (s: string, search: string) => boolean;
export const StringIncludes = uncurryThis(String.prototype.includes) as (s: string, search: string) => boolean;
export const StringIndexOf = uncurryThis(String.prototype.indexOf) as (
  s: string,
  search: string,
  at?: number,
) => number;
export const StringLastIndexOf = uncurryThis(String.prototype.lastIndexOf) as (
  s: string,
  search: string,
  at?: number,
) => number;
export const StringSlice = uncurryThis(String.prototype.slice) as (s: string, start?: number, end?: number) => string;
export const StringToUpperCase = uncurryThis(String.prototype.toUpperCase) as (s: string) => string;
export const StringToLowerCase = uncurryThis(String.prototype.toLowerCase) as (s: string) => string;
export const StringCharCodeAt = uncurryThis(String.prototype.charCodeAt) as (s: string, at: number) => number;
export const ArrayIsArray = Array.isArray;
export const ArrayIncludes = uncurryThis(Array.prototype.includes) as <T>(a: readonly T[], v: T) => boolean;
export const ArraySlice = uncurryThis(Array.prototype.slice) as <T>(a: readonly T[], start?: number) => T[];
export const ArrayPush = uncurryThis(Array.prototype.push) as <T>(a: T[], ...v: T[]) => number;
export const ArrayJoin = uncurryThis(Array.prototype.join) as (a: readonly unknown[], separator: string) => string;
export const MapGet = uncurryThis(Map.prototype.get) as <K, V>(m: ReadonlyMap<K, V>, k: K) => V | undefined;
export const MapSet = uncurryThis(Map.prototype.set) as <K, V>(m: Map<K, V>, k: K, v: V) => Map<K, V>;
export const MapHas = uncurryThis(Map.prototype.has) as <K>(m: ReadonlyMap<K, unknown>, k: K) => boolean;
export const MapClear = uncurryThis(Map.prototype.clear) as (m: Map<unknown, unknown>) => void;
export const MapSize = uncurryThis(ObjectGetOwnPropertyDescriptor(Map.prototype, 'size')!.get!) as (
  m: ReadonlyMap<unknown, unknown>,
) => number;
export const SetHas = uncurryThis(Set.prototype.has) as <T>(s: ReadonlySet<T>, v: T) => boolean;
export const SetDelete = uncurryThis(Set.prototype.delete) as <T>(s: Set<T>, v: T) => boolean;
export const SetAdd = uncurryThis(Set.prototype.add) as <T>(s: Set<T>, v: T) => Set<T>;
export const WeakSetHas = uncurryThis(WeakSet.prototype.has) as <T extends object>(s: WeakSet<T>, v: T) => boolean;
export const WeakSetAdd = uncurryThis(WeakSet.prototype.add) as <T extends object>(s: WeakSet<T>, v: T) => WeakSet<T>;
/**
 * A Set filled by index with the captured `add`: no iterator protocol, nothing a dependency can have replaced. For
 * tables built after dependencies ran (the process-guard chunk loads at the first use of child_process).
 */
export function safeSetOf<T>(values: readonly T[]): Set<T> {
  const set = new SafeSet<T>();
  for (let i = 0; i < values.length; i++) SetAdd(set, values[i]!);
  return set;
}
/**
 * `s.split(separator)` for a string separator, without `String.prototype.split`, which consults
 * `separator[Symbol.split]` on the (replaceable) String prototype on some Node versions.
 */
export function splitString(s: string, separator: string): string[] {
  const parts: string[] = [];
  if (separator === '') return [s];
  let from = 0;
  for (;;) {
    const at = StringIndexOf(s, separator, from);
    if (at === -1) break;
    parts[parts.length] = StringSlice(s, from, at);
    from = at + separator.length;
  }
  parts[parts.length] = StringSlice(s, from);
  return parts;
}
// `RegExp.prototype.test` looks up `exec` on the regex at call time; the captured `exec` runs the built-in matcher.
export const RegExpExec = uncurryThis(RegExp.prototype.exec) as (r: RegExp, s: string) => RegExpExecArray | null;
export const StringTrim = uncurryThis(String.prototype.trim) as (s: string) => string;

/**
 * The process's own env object, captured before the env guard replaces `process.env` with a filtering proxy.
 * Only for the guard's own reads (NODE_OPTIONS as the process started); never handed to user code.
 */
export const processEnvRaw: Record<string, string | undefined> = process.env;
