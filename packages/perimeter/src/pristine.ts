/**
 * References to built-ins captured when the guard module is first evaluated, before any dependency runs.
 * The guard never calls a built-in through a path a dependency can replace (`Function.prototype.call`,
 * `Array.prototype.push`, a module export): a hostile package that swaps them must not change our decisions.
 */
import fs from 'node:fs';
import module from 'node:module';
import path from 'node:path';
import url from 'node:url';

export const ReflectApply = Reflect.apply;
export const ReflectConstruct = Reflect.construct;
export const ObjectDefineProperty = Object.defineProperty;
export const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
export const ObjectGetOwnPropertyDescriptors = Object.getOwnPropertyDescriptors;
export const ObjectGetPrototypeOf = Object.getPrototypeOf;
export const ObjectSetPrototypeOf = Object.setPrototypeOf;
export const ObjectFreeze = Object.freeze;
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
export const pathResolve = path.resolve;
export const pathDirname = path.dirname;
export const pathJoin = path.join;
export const pathSep = path.sep;
export const urlDomainToASCII = url.domainToASCII;
export const fileURLToPath = url.fileURLToPath;
export const syncBuiltinESMExports = module.syncBuiltinESMExports;

/** Loads a built-in without going through the (hooked) public module loader. */
export const getBuiltinModule: (id: string) => any =
  typeof (process as any).getBuiltinModule === 'function'
    ? (process as any).getBuiltinModule.bind(process)
    : // Node < 20.16: module.createRequire still reaches the built-in; our load hook ignores the guard's own loads.
      module.createRequire(__filename);
