/**
 * The file system: every path-taking function of `fs` (callback and Sync forms) and of `fs.promises` (the same
 * object as `fs/promises`). Each wrapper turns the path argument (string, Buffer/Uint8Array, file: URL) into a
 * string once, asks guard.checkFs, and passes that same string on, so an argument that changes between two
 * reads (a Buffer mutated later, a URL-like object with changing getters, a Proxy) cannot show the guard one
 * path and the kernel another. Functions that take a file descriptor or a FileHandle were judged when it was
 * opened. Streams open through `fs.open` and are judged there.
 */
import { types } from 'node:util';
import type { CapturedStack } from '../attribution.js';
import { checkFs, checkFsOpened, failClosed, fsCallersForLater, lastJudgedFsPath } from '../guard.js';
import {
  absolutePath,
  type FsAccess,
  isStandardDevice,
  namespaceChangeEnds,
  namespaceChangeStarts,
} from '../policy/fs.js';
import {
  ArrayIncludes,
  ArrayIsArray,
  ArraySlice,
  fileURLToPath,
  fsExistsSync,
  fsLstatSync,
  fsReadlinkSync,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  PromisePrototypeThen,
  PromiseReject,
  pathDirname,
  processNextTick,
  ReflectApply,
  StringCharCodeAt,
  StringEndsWith,
  StringIncludes,
  StringIndexOf,
  StringLastIndexOf,
  StringSlice,
} from '../pristine.js';
import { guardProperty } from './patch.js';

// Captured when this module loads, before `fs` is patched: walking a tree to check it must not be checked itself.
const pristineReaddirSync = require('node:fs').readdirSync as (path: string) => string[];
const isUint8Array = types.isUint8Array;
const isProxy = types.isProxy;
const utf8 = new TextDecoder('utf-8', { fatal: true });
const decodeUtf8 = TextDecoder.prototype.decode;

/**
 * How an argument is used:
 * r/w: read/write what the path leads to; rw: both; rl/wl: read/write the directory entry itself (the last
 * component is not followed: lstat, unlink, rename, mkdir…); open: flags in the next argument decide;
 * readfile/writefile: like r/w, but an options.flag can add the other; target: a symlink's target, judged as
 * a read relative to the link's directory; tmp: an mkdtemp prefix; copy: the source of a recursive copy.
 */
type Use = 'r' | 'w' | 'rw' | 'rl' | 'wl' | 'open' | 'readfile' | 'writefile' | 'target' | 'tmp' | 'copy';
type Style = 'callback' | 'sync' | 'promise' | 'iterator' | 'exists' | 'existsSync';
type Spec = ReadonlyArray<readonly [index: number, use: Use]>;

/** Base name → path arguments; the callback, Sync and promises forms share it. */
const PATH_FUNCTIONS: Record<string, Spec> = {
  access: [[0, 'r']],
  appendFile: [[0, 'writefile']],
  chmod: [[0, 'w']],
  chown: [[0, 'w']],
  copyFile: [
    [0, 'r'],
    [1, 'w'],
  ],
  cp: [
    [0, 'copy'],
    [1, 'w'],
  ],
  exists: [[0, 'r']],
  lchmod: [[0, 'wl']],
  lchown: [[0, 'wl']],
  link: [
    [0, 'rw'],
    [1, 'wl'],
  ],
  lstat: [[0, 'rl']],
  lutimes: [[0, 'wl']],
  mkdir: [[0, 'wl']],
  mkdtemp: [[0, 'tmp']],
  mkdtempDisposable: [[0, 'tmp']],
  open: [[0, 'open']],
  opendir: [[0, 'r']],
  readdir: [[0, 'r']],
  readFile: [[0, 'readfile']],
  readlink: [[0, 'rl']],
  realpath: [[0, 'r']],
  rename: [
    [0, 'wl'],
    [1, 'wl'],
  ],
  rm: [[0, 'wl']],
  rmdir: [[0, 'wl']],
  stat: [[0, 'r']],
  statfs: [[0, 'r']],
  symlink: [
    [1, 'wl'],
    [0, 'target'],
  ],
  truncate: [[0, 'w']],
  unlink: [[0, 'wl']],
  utimes: [[0, 'w']],
  watch: [[0, 'r']],
  watchFile: [[0, 'r']],
  writeFile: [[0, 'writefile']],
  openAsBlob: [[0, 'r']],
  glob: [],
};

/** Functions of `fs` that return their result (or a promise: openAsBlob) instead of taking a callback. */
const RETURNING: Record<string, Style> = { watch: 'sync', watchFile: 'sync', openAsBlob: 'promise' };

const { O_CREAT = 64, O_TRUNC = 512, O_APPEND = 1024 } = require('node:fs').constants as Record<string, number>;

const STRING_FLAGS: Record<string, readonly FsAccess[]> = { __proto__: null } as any;
for (const f of ['r', 'rs', 'sr']) STRING_FLAGS[f] = ['read'];
for (const f of ['r+', 'rs+', 'sr+', 'w+', 'wx+', 'xw+', 'a+', 'ax+', 'xa+', 'as+', 'sa+']) {
  STRING_FLAGS[f] = ['read', 'write'];
}
for (const f of ['w', 'wx', 'xw', 'a', 'ax', 'xa', 'as', 'sa']) STRING_FLAGS[f] = ['write'];
const READ: readonly FsAccess[] = ['read'];
const WRITE: readonly FsAccess[] = ['write'];
const BOTH: readonly FsAccess[] = ['read', 'write'];

/** What opening with these flags allows: O_WRONLY/O_RDWR, and O_CREAT/O_TRUNC/O_APPEND even with O_RDONLY, write. */
export function accessForFlags(flags: unknown, fallback: readonly FsAccess[]): readonly FsAccess[] {
  // open(path, callback): no flags, the default applies.
  if (flags === undefined || flags === null || typeof flags === 'function') return fallback;
  if (typeof flags === 'number') {
    const mode = flags & 3;
    const write = mode !== 0 || (flags & (O_CREAT | O_TRUNC | O_APPEND)) !== 0;
    const read = mode === 0 || mode === 2;
    return read && write ? BOTH : write ? WRITE : READ;
  }
  if (typeof flags === 'string') return STRING_FLAGS[flags] ?? BOTH;
  return BOTH;
}

class PathArgumentError extends TypeError {
  code = 'ERR_INVALID_ARG_TYPE';
}

/**
 * The path an argument names, as the string Node would use, or undefined when it is not a path (a file
 * descriptor, a FileHandle): those are left alone. Throws, as Node would, for a URL that is not file:.
 */
export function pathOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value === null || typeof value !== 'object') return undefined;
  if (isUint8Array(value)) {
    try {
      return ReflectApply(decodeUtf8, utf8, [value]) as string;
    } catch {
      throw new PathArgumentError('Perimeter: a Buffer path that is not valid UTF-8 cannot be judged, so it is denied');
    }
  }
  if (isProxy(value)) throw new PathArgumentError('Perimeter: a Proxy cannot be used as a path');
  const candidate = value as { href?: unknown; protocol?: unknown; auth?: unknown; path?: unknown };
  // Node's own test for a URL: read each property once here, and hand Node the resulting string only.
  const href = candidate.href;
  const protocol = candidate.protocol;
  if (href && protocol && candidate.auth === undefined && candidate.path === undefined) {
    const snapshot = { href, protocol, hostname: (value as URL).hostname, pathname: (value as URL).pathname };
    return fileURLToPath(snapshot as unknown as URL);
  }
  if ('href' in candidate || 'protocol' in candidate) {
    throw new PathArgumentError('Perimeter: an object that only sometimes looks like a URL cannot be used as a path');
  }
  return undefined;
}

function judge(access: readonly FsAccess[], path: string, follow: boolean): Error | null {
  for (let i = 0; i < access.length; i++) {
    const denied = checkFs(access[i]!, path, follow);
    if (denied) return denied;
  }
  return null;
}

/** Reads `options.flag` once and gives Node a copy, so the flag judged is the flag used. */
function flagOf(args: unknown[], index: number, keys: readonly string[]): unknown {
  const options = args[index];
  if (options === null || typeof options !== 'object') return undefined;
  const copy: Record<string, unknown> = {};
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const v = (options as Record<string, unknown>)[key];
    if (v !== undefined) copy[key] = v;
  }
  args[index] = copy;
  return copy.flag;
}
const READ_FILE_OPTIONS = ['encoding', 'flag', 'signal'];
const WRITE_FILE_OPTIONS = ['encoding', 'mode', 'flag', 'flush', 'signal'];

/**
 * Judges every path argument, replacing each with the string that was judged. `asynchronous`: the call runs
 * later on the thread pool, so a relative path is handed on in absolute form; otherwise a `process.chdir()`
 * right after the call would make the kernel resolve it somewhere the guard never judged. (A symlink target and
 * an mkdtemp prefix keep their form: the first is the link's content, the second is echoed in the result.)
 */
function check(spec: Spec, args: unknown[], asynchronous: boolean): Error | null {
  // Indexed loops and no destructuring: both would go through Array.prototype[Symbol.iterator], which a
  // dependency can replace.
  for (let i = 0; i < spec.length; i++) {
    const index = spec[i]![0];
    const use = spec[i]![1];
    const path = pathOf(args[index]);
    if (path === undefined) continue;
    args[index] = asynchronous && path !== '' && use !== 'target' && use !== 'tmp' ? absolutePath(path) : path;
    // Node refuses these itself; the kernel never sees them.
    if (StringIncludes(path, '\u0000')) continue;
    let denied: Error | null;
    switch (use) {
      case 'r':
        denied = judge(READ, path, true);
        break;
      case 'copy':
        denied = judge(READ, path, true);
        if (denied === null && copyDereferences(args, index + 2)) denied = judgeLinksInside(path);
        break;
      case 'w':
        denied = judge(WRITE, path, true);
        break;
      case 'rw':
        denied = judge(BOTH, path, true);
        break;
      case 'rl':
        denied = judge(READ, path, false);
        break;
      case 'wl':
        denied = judge(WRITE, path, false);
        break;
      case 'open': {
        const access = accessForFlags(args[index + 1], READ);
        denied = judge(access, path, true);
        if (denied === null && asynchronous && ArrayIncludes(access, 'read')) opening = openingFor(access, undefined);
        break;
      }
      case 'readfile': {
        const flag = typeof args[index + 1] === 'string' ? undefined : flagOf(args, index + 1, READ_FILE_OPTIONS);
        const access = accessForFlags(flag, READ);
        denied = judge(access, path, true);
        // Only a read-only readFile opens through the check below; one that may also write keeps its own open.
        if (denied === null && asynchronous && access.length === 1 && access[0] === 'read') {
          opening = openingFor(access, flag);
        }
        break;
      }
      case 'writefile': {
        const flag = typeof args[index + 2] === 'string' ? undefined : flagOf(args, index + 2, WRITE_FILE_OPTIONS);
        const access = accessForFlags(flag, WRITE);
        denied = judge(ArrayIncludes(access, 'write') ? access : BOTH, path, true);
        break;
      }
      case 'target': {
        // The link's own path (the next argument) was turned into a string first: see the spec order.
        const link = args[index + 1];
        const base = typeof link === 'string' ? pathDirname(link) : '.';
        denied = judge(READ, StringCharCodeAt(path, 0) === 47 ? path : `${base}/${path}`, true);
        break;
      }
      case 'tmp':
        denied = judge(WRITE, `${path}XXXXXX`, false);
        break;
    }
    if (denied) return denied;
  }
  return null;
}

/**
 * The functions that can put a symlink where a name was (or remove or replace one on the way there): while one
 * runs, reads of writable paths are not remembered (policy/fs.ts, "The hot path"). Creating a file through
 * `open`/`writeFile` is not among them: it can only add a regular file under a name that did not exist, which
 * no remembered path runs through. `cp` and `copyFile` are (cp copies symlinks; libuv unlinks a failed
 * copyFile's destination), and so are mkdir and mkdtemp, which cost nothing to include.
 */
const CHANGES_NAMESPACE: Record<string, true> = { __proto__: null } as any;
for (const base of ['symlink', 'link', 'rename', 'unlink', 'rm', 'rmdir', 'mkdir', 'mkdtemp', 'cp', 'copyFile']) {
  CHANGES_NAMESPACE[base] = true;
  CHANGES_NAMESPACE[`${base}Sync`] = true;
}
CHANGES_NAMESPACE.mkdtempDisposable = true;
CHANGES_NAMESPACE.mkdtempDisposableSync = true;

/**
 * Runs a namespace-changing call with the writable-path memory forgotten before it starts and again when it
 * ends. An end that is never seen (no callback to wrap, a promise whose reactions a dependency broke) leaves
 * the count up, which only turns remembering off: the failure is on the safe side.
 */
function changeNamespace(original: Function, self: unknown, args: unknown[], style: Style): unknown {
  namespaceChangeStarts();
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    namespaceChangeEnds();
  };
  if (style === 'sync') {
    try {
      return ReflectApply(original, self, args);
    } finally {
      end();
    }
  }
  if (style === 'callback') {
    const last = args.length - 1;
    const callback = args[last];
    if (typeof callback === 'function') {
      args[last] = function (this: unknown, ...results: unknown[]) {
        end();
        return ReflectApply(callback, this, results);
      };
    }
    try {
      return ReflectApply(original, self, args);
    } catch (error) {
      // Node validates before it dispatches: nothing runs after a synchronous throw.
      end();
      throw error;
    }
  }
  let result: unknown;
  try {
    result = ReflectApply(original, self, args);
  } catch (error) {
    end();
    throw error;
  }
  try {
    PromisePrototypeThen(result, end, end);
  } catch {
    // Not a promise we can follow: the count stays up.
  }
  return result;
}

function wrapperFor(name: string, spec: Spec, style: Style) {
  const changes = CHANGES_NAMESPACE[name] === true;
  const opens =
    name === 'open'
      ? style === 'callback'
        ? openThenVerify
        : style === 'promise'
          ? openHandleThenVerify
          : null
      : name === 'readFile'
        ? style === 'callback'
          ? readFileThroughFd
          : style === 'promise'
            ? readFileThroughHandle
            : null
        : null;
  return (original: Function): Function => {
    const wrapped = {
      [name](this: unknown, ...args: unknown[]) {
        let denied: Error | null;
        let pending: Opening | null = null;
        opening = null;
        try {
          denied = check(spec, args, style === 'callback' || style === 'promise' || style === 'iterator');
          pending = opening;
          opening = null;
        } catch (error) {
          opening = null;
          // A path Node would refuse (bad URL scheme, Proxy…): fail the way Node fails for it.
          denied = error as Error;
          if (style === 'callback' || style === 'sync' || style === 'existsSync' || style === 'exists') {
            if (style === 'existsSync') return false;
            if (style === 'exists') {
              const callback = args[args.length - 1];
              if (typeof callback === 'function') processNextTick(callback, false);
              return undefined;
            }
            throw denied;
          }
        }
        if (denied === null) {
          if (pending !== null && opens !== null) return opens(original, this, args, pending);
          return changes ? changeNamespace(original, this, args, style) : ReflectApply(original, this, args);
        }
        switch (style) {
          case 'sync':
            throw denied;
          case 'promise':
            return PromiseReject(denied);
          case 'iterator':
            return rejectingIterator(denied);
          case 'existsSync':
            return false;
          case 'exists': {
            const callback = args[args.length - 1];
            if (typeof callback === 'function') processNextTick(callback, false);
            return undefined;
          }
          case 'callback': {
            const callback = args[args.length - 1];
            if (typeof callback !== 'function') throw denied;
            processNextTick(callback, denied);
            return undefined;
          }
        }
      },
    }[name]!;
    return wrapped;
  };
}

/** What `fs.promises.watch` / `glob` return when denied: an async iterable whose first step rejects. */
function rejectingIterator(error: Error): AsyncIterableIterator<never> {
  const iterator: AsyncIterableIterator<never> = {
    next: () => PromiseReject(error),
    return: () => Promise.resolve({ done: true, value: undefined as never }),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

let patched = false;

/** The callback and Sync forms. `fs.promises` is a separate object, patched by patchFsPromises when first handed out. */
export function patchFs(fs: Record<string, any>): void {
  if (patched) return;
  patched = true;
  for (const [base, spec] of Object.entries(PATH_FUNCTIONS)) {
    if (base === 'exists') {
      guardProperty(fs, 'exists', wrapperFor('exists', spec, 'exists'));
      guardProperty(fs, 'existsSync', wrapperFor('existsSync', spec, 'existsSync'));
      continue;
    }
    if (base === 'glob') {
      if (typeof fs.glob === 'function') guardProperty(fs, 'glob', globWrapper('glob', 'callback'));
      if (typeof fs.globSync === 'function') guardProperty(fs, 'globSync', globWrapper('globSync', 'sync'));
      continue;
    }
    const callbackStyle: Style = Object.hasOwn(RETURNING, base) ? RETURNING[base]! : 'callback';
    if (typeof fs[base] === 'function') guardProperty(fs, base, wrapperFor(base, spec, callbackStyle));
    if (typeof fs[`${base}Sync`] === 'function') {
      guardProperty(fs, `${base}Sync`, wrapperFor(`${base}Sync`, spec, 'sync'));
    }
  }
  // realpath's native variants hang off the functions themselves; the wrappers carry copies of them.
  const realpathSpec = PATH_FUNCTIONS.realpath!;
  for (const [name, style] of [
    ['realpathSync', 'sync'],
    ['realpath', 'callback'],
  ] as const) {
    const holder = fs[name];
    if (holder && typeof holder.native === 'function') {
      guardProperty(holder, 'native', wrapperFor('native', realpathSpec, style));
    }
  }
}

let promisesPatched = false;

/** `fs.promises`, the same object as `fs/promises`. */
export function patchFsPromises(promises: Record<string, any>): void {
  if (promisesPatched) return;
  promisesPatched = true;
  for (const [base, spec] of Object.entries(PATH_FUNCTIONS)) {
    if (typeof promises[base] !== 'function') continue;
    if (base === 'glob') guardProperty(promises, 'glob', globWrapper('glob', 'iterator'));
    else guardProperty(promises, base, wrapperFor(base, spec, base === 'watch' ? 'iterator' : 'promise'));
  }
}

function firstGlobCharacter(pattern: string): number {
  for (let i = 0; i < pattern.length; i++) {
    const c = StringCharCodeAt(pattern, i);
    if (c === 42 || c === 63 || c === 91 || c === 123) return i; // * ? [ {
  }
  return -1;
}

/**
 * fs.glob lists directories by pattern. The directory it starts from (the `cwd` option, or the literal part of
 * an absolute pattern) must be readable.
 */
function globWrapper(name: string, style: Style) {
  return (original: Function): Function =>
    ({
      [name](this: unknown, ...args: unknown[]) {
        let denied: Error | null = null;
        try {
          const patterns =
            typeof args[0] === 'string' ? [args[0]] : ArrayIsArray(args[0]) ? ArraySlice(args[0] as unknown[]) : [];
          if (ArrayIsArray(args[0])) args[0] = patterns;
          const options = args[1] !== null && typeof args[1] === 'object' ? (args[1] as { cwd?: unknown }) : {};
          const cwd = options.cwd === undefined ? '.' : pathOf(options.cwd);
          if (cwd !== undefined) {
            if (args[1] !== null && typeof args[1] === 'object') args[1] = { ...(args[1] as object), cwd };
            denied = judge(READ, cwd, true);
          }
          for (let i = 0; i < patterns.length && !denied; i++) {
            const pattern = patterns[i];
            if (typeof pattern !== 'string') continue;
            const star = firstGlobCharacter(pattern);
            const literal =
              star === -1 ? pattern : StringSlice(pattern, 0, StringLastIndexOf(pattern, '/', star) + 1) || '.';
            const start = StringCharCodeAt(literal, 0) === 47 ? literal : `${cwd ?? '.'}/${literal}`;
            denied = judge(READ, start, true);
          }
        } catch (error) {
          denied = error as Error;
        }
        if (denied === null) return ReflectApply(original, this, args);
        if (style === 'sync') throw denied;
        if (style === 'iterator') return rejectingIterator(denied);
        const callback = args[args.length - 1];
        if (typeof callback !== 'function') throw denied;
        processNextTick(callback, denied);
        return undefined;
      },
    })[name]!;
}

/**
 * `cp(src, dest, { recursive: true, dereference: true })` copies what the symlinks inside `src` point to, and
 * on newer Node `cpSync` walks the tree in C++ where no wrapper sees it. With `dereference` the tree is walked
 * first (with the functions captured before any patch) and every symlink in it is judged as a read.
 */
function judgeLinksInside(root: string): Error | null {
  const pending = [root];
  let seen = 0;
  while (pending.length > 0) {
    const dir = pending[pending.length - 1]!;
    pending.length--;
    let names: string[];
    try {
      names = pristineReaddirSync(dir);
    } catch {
      continue;
    }
    for (let i = 0; i < names.length; i++) {
      if (++seen > MAX_COPY_ENTRIES) return tooManyEntries(root);
      const child = `${dir}/${names[i]}`;
      let mode: number;
      try {
        mode = fsLstatSync(child).mode;
      } catch {
        continue;
      }
      // Mode bits, not Dirent/Stats methods a dependency could replace.
      if ((mode & 0o170000) === 0o120000) {
        const denied = judge(READ, child, true);
        if (denied) return denied;
      } else if ((mode & 0o170000) === 0o040000) {
        pending[pending.length] = child;
      }
    }
  }
  return null;
}

const MAX_COPY_ENTRIES = 100_000;

function tooManyEntries(root: string): Error {
  return new RangeError(`Perimeter: ${root} has too many entries to check before a dereferencing copy`);
}

/** cp's options, read once: Node gets a copy, so the `dereference` judged is the one used. */
function copyDereferences(args: unknown[], index: number): boolean {
  const options = args[index];
  if (options === null || typeof options !== 'object') return false;
  const copy = { ...(options as Record<string, unknown>) };
  args[index] = copy;
  return Boolean(copy.dereference) && Boolean(copy.recursive);
}

// ---------------------------------------------------------------------------------------------------------------
// What an asynchronous open really opened.

/**
 * A callback or promise call is judged when it is made, but Node opens the file later, on the thread pool: a
 * symlink renamed over the path in between would be opened unjudged. So on Linux the reads that open a file
 * (`fs.open`, `fs.promises.open`, `fs.readFile`, `fs.promises.readFile`, and the streams, which open through
 * `fs.open`) are judged a second time once the descriptor exists and before any byte reaches the caller: the
 * kernel's own name for the opened file (`/proc/self/fd/<fd>`, read with the captured readlink) is judged as the
 * same read. When it is the real path already judged (the usual case) nothing more is asked.
 */
const VERIFY_OPENED = process.platform === 'linux' && procFdReadable();

function procFdReadable(): boolean {
  try {
    return fsExistsSync('/proc/self/fd');
  } catch {
    return false;
  }
}

interface Opening {
  access: readonly FsAccess[];
  /** The real path judged when the call was made. */
  real: string;
  callers: CapturedStack | null;
  /** readFile's flag (already judged), for the open made on its behalf. */
  flag: unknown;
}

/** Set by check for the call being judged, read (and cleared) by its wrapper. */
let opening: Opening | null = null;

function openingFor(access: readonly FsAccess[], flag: unknown): Opening | null {
  if (!VERIFY_OPENED) return null;
  const real = lastJudgedFsPath();
  // Nothing judged (no policy, mode allow), or a standard device, allowed by its name wherever it leads.
  if (real === null || isStandardDevice(real)) return null;
  return { access, real, callers: fsCallersForLater(), flag };
}

const DELETED = ' (deleted)';

/** The error an opened descriptor must fail with, or null when what it opened may be read. */
function openedDenial(fd: unknown, pending: Opening): Error | null {
  if (typeof fd !== 'number') return null;
  let link: string;
  try {
    link = fsReadlinkSync(`/proc/self/fd/${fd}`, 'utf8') as string;
  } catch (cause) {
    return failClosed('fs', cause);
  }
  // pipe:[…], socket:[…], anon_inode:…: not a file a path could lead to.
  if (StringCharCodeAt(link, 0) !== 47) return null;
  // Removed since it was opened: the kernel appends this to the name it had.
  if (StringEndsWith(link, DELETED)) link = StringSlice(link, 0, link.length - DELETED.length);
  if (link === pending.real) return null;
  const access = pending.access;
  for (let i = 0; i < access.length; i++) {
    const denied = checkFsOpened(access[i]!, link, pending.callers);
    if (denied) return denied;
  }
  return null;
}

const fsModule = require('node:fs') as Record<string, Function>;
const pristineOpen = fsModule.open as (...args: unknown[]) => void;
const pristineOpenSync = fsModule.openSync as (...args: unknown[]) => number;
const pristineClose = fsModule.close as (fd: number, callback: (error?: unknown) => void) => void;
const pristineCloseSync = fsModule.closeSync as (fd: number) => void;
const PromiseCtor = Promise;

/**
 * The descriptor readFile opened for its check, closed on the spot: a read-only descriptor closes at once, and
 * one more trip through the thread pool would cost more than the close itself. Its errors are the guard's own.
 */
function closeQuietly(fd: number): void {
  try {
    pristineCloseSync(fd);
  } catch {
    // Already closed: nothing of the caller's depends on it.
  }
}
const BufferIsEncoding = Buffer.isEncoding;

/** fs.open(path[, flags[, mode]], callback): the descriptor is handed over only once what it opened is judged. */
function openThenVerify(original: Function, self: unknown, args: unknown[], pending: Opening): unknown {
  const last = args.length - 1;
  const callback = args[last];
  if (typeof callback === 'function') {
    args[last] = function (this: unknown, ...results: unknown[]) {
      if (results[0] === null || results[0] === undefined) {
        const fd = results[1] as number;
        const denied = openedDenial(fd, pending);
        if (denied) {
          ReflectApply(pristineClose, undefined, [fd, () => ReflectApply(callback, undefined, [denied])]);
          return undefined;
        }
      }
      return ReflectApply(callback, this, results);
    };
  }
  return ReflectApply(original, self, args);
}

/** Whether readFile's options are ones Node accepts: anything else goes to Node, which refuses it at once. */
function readFileOptionsValid(options: unknown): boolean {
  if (options === undefined || options === null) return true;
  let encoding: unknown;
  if (typeof options === 'string') encoding = options;
  else if (typeof options === 'object') encoding = (options as { encoding?: unknown }).encoding;
  else return false;
  return !encoding || encoding === 'buffer' || (typeof encoding === 'string' && BufferIsEncoding(encoding));
}

const {
  O_NOFOLLOW = 0o400000,
  O_RDONLY = 0,
  O_NONBLOCK = 0o4000,
  O_NOCTTY = 0o400,
} = fsModule.constants as unknown as Record<string, number>;
const READ_NOW = O_RDONLY | O_NONBLOCK | O_NOCTTY;

/** A numeric flag's O_NOFOLLOW was applied by the first open; /proc/self/fd/<fd> is a link it would refuse. */
function reopenOptions(options: unknown): unknown {
  if (options === null || typeof options !== 'object') return options;
  const flag = (options as { flag?: unknown }).flag;
  if (typeof flag === 'number') (options as { flag?: unknown }).flag = flag & ~O_NOFOLLOW;
  return options;
}

/** An error about the reopened name, told about the caller's path, as Node would have told it. */
function asIfFrom(error: unknown, reopened: string, path: unknown): unknown {
  if (error === null || typeof error !== 'object' || typeof path !== 'string') return error;
  const e = error as { path?: unknown; message?: unknown };
  if (e.path !== reopened) return error;
  e.path = path;
  const quoted = `'${reopened}'`;
  const message = e.message;
  if (typeof message === 'string') {
    const at = StringIndexOf(message, quoted);
    if (at !== -1) e.message = `${StringSlice(message, 0, at)}'${path}'${StringSlice(message, at + quoted.length)}`;
  }
  return error;
}

/**
 * fs.readFile(path[, options], callback): opened here with the judged flag, judged on what was opened, then read
 * by Node's own readFile through the descriptor and closed, as Node's readFile closes its own.
 */
function readFileThroughFd(original: Function, self: unknown, args: unknown[], pending: Opening): unknown {
  // As Node reads them: `callback ||= options`, and options that are a function are no options.
  const callback = args[2] || args[1];
  const options = typeof args[1] === 'function' ? undefined : args[1];
  if (typeof callback !== 'function' || !readFileOptionsValid(options)) return ReflectApply(original, self, args);
  const flag = pending.flag === undefined || pending.flag === null ? 'r' : pending.flag;
  openForCheck(args[0], flag, (openError, fd) => {
    if (openError) return ReflectApply(callback, undefined, [openError]);
    readOpened(original, self, args, pending, fd, options, callback as Function);
    return undefined;
  });
  return undefined;
}

/**
 * Opens a file that readFile will read, for the check of what was opened. The plain read (`r`) opens here and now,
 * non-blocking, so a FIFO or a terminal cannot hold the event loop (Node's readFile then opens the file again,
 * blocking on the thread pool as it always does): one trip through the thread pool fewer, and nothing can run
 * between the open and its check. Other flags open through the thread pool. Errors arrive asynchronously either
 * way, as an open's do.
 */
function openForCheck(path: unknown, flag: unknown, opened: (error: unknown, fd: number) => unknown): void {
  if (flag !== 'r') {
    ReflectApply(pristineOpen, undefined, [path, flag, 0o666, opened]);
    return;
  }
  let fd: number;
  try {
    fd = ReflectApply(pristineOpenSync, undefined, [path, READ_NOW, 0o666]) as number;
  } catch (openError) {
    processNextTick(opened, openError, -1);
    return;
  }
  opened(null, fd);
}

/** Judges what `fd` opened, then lets Node's readFile read it under the kernel's name for it. */
function readOpened(
  original: Function,
  self: unknown,
  args: unknown[],
  pending: Opening,
  fd: number,
  options: unknown,
  callback: Function,
): void {
  const denied = openedDenial(fd, pending);
  if (denied) {
    closeQuietly(fd);
    ReflectApply(callback, undefined, [denied]);
    return;
  }
  // Node's readFile of a descriptor drops read errors (EISDIR, an abort): it reads the kernel's name of the
  // opened file instead, which reopens the same file whatever has been renamed over the path since.
  const reopened = `/proc/self/fd/${fd}`;
  const done = (...results: unknown[]) => {
    if (results[0]) results[0] = asIfFrom(results[0], reopened, args[0]);
    closeQuietly(fd);
    ReflectApply(callback, undefined, results);
  };
  try {
    ReflectApply(original, self, options === undefined ? [reopened, done] : [reopened, reopenOptions(options), done]);
  } catch (error) {
    closeQuietly(fd);
    ReflectApply(callback, undefined, [error]);
  }
}

/**
 * FileHandle's `fd` getter, taken from the first handle the guard itself receives (no handle reaches a
 * dependency before one has come through here). `close` is each handle's own property, set by its constructor.
 */
let handleFd: ((this: unknown) => number) | undefined;

function handleCloser(handle: unknown): (() => Promise<void>) | undefined {
  const close =
    handle !== null && typeof handle === 'object' ? ObjectGetOwnPropertyDescriptor(handle, 'close') : undefined;
  return typeof close?.value === 'function' ? close.value : undefined;
}

/** The error a FileHandle must fail with (after being closed), or null. */
function handleDenial(handle: unknown, pending: Opening): Error | null {
  if (handleFd === undefined) {
    const proto = handle !== null && typeof handle === 'object' ? ObjectGetPrototypeOf(handle) : null;
    const fd = proto ? ObjectGetOwnPropertyDescriptor(proto, 'fd')?.get : undefined;
    if (typeof fd !== 'function') return failClosed('fs', new Error('Perimeter: a FileHandle without its fd'));
    handleFd = fd as (this: unknown) => number;
  }
  if (handleCloser(handle) === undefined) return failClosed('fs', new Error('Perimeter: a FileHandle without close'));
  return openedDenial(ReflectApply(handleFd, handle, []), pending);
}

function closeHandle(handle: unknown): Promise<unknown> {
  const close = handleCloser(handle);
  return close === undefined ? Promise.resolve() : (ReflectApply(close, handle, []) as Promise<unknown>);
}

function closeThenReject(handle: unknown, error: Error): Promise<never> {
  const reject = () => PromiseReject(error);
  return PromisePrototypeThen(closeHandle(handle), reject, reject) as Promise<never>;
}

/** fs.promises.open(path[, flags[, mode]]): the FileHandle is handed over only once what it opened is judged. */
function openHandleThenVerify(original: Function, self: unknown, args: unknown[], pending: Opening): unknown {
  return PromisePrototypeThen(
    ReflectApply(original, self, args),
    (handle) => {
      const denied = handleDenial(handle, pending);
      return denied ? closeThenReject(handle, denied) : handle;
    },
    (error) => PromiseReject(error),
  );
}

/** fs.promises.readFile(path[, options]): opened here, judged on what was opened, read through the handle, closed. */
function readFileThroughHandle(original: Function, self: unknown, args: unknown[], pending: Opening): unknown {
  const options = args[1];
  if (!readFileOptionsValid(options)) return ReflectApply(original, self, args);
  const flag = pending.flag === undefined || pending.flag === null ? 'r' : pending.flag;
  const path = args[0];
  return new PromiseCtor((resolve, reject) => {
    const opened = (openError: unknown, fd: number) => {
      if (openError) return reject(openError);
      const denied = openedDenial(fd, pending);
      if (denied) {
        closeQuietly(fd);
        return reject(denied);
      }
      // Read through the kernel's name of the opened file, as readFile above.
      const reopened = `/proc/self/fd/${fd}`;
      let reading: unknown;
      try {
        reading = ReflectApply(original, self, options === undefined ? [reopened] : [reopened, reopenOptions(options)]);
      } catch (error) {
        closeQuietly(fd);
        return reject(asIfFrom(error, reopened, path));
      }
      PromisePrototypeThen(
        reading,
        (data) => {
          closeQuietly(fd);
          resolve(data);
        },
        (error) => {
          closeQuietly(fd);
          reject(asIfFrom(error, reopened, path));
        },
      );
      return undefined;
    };
    openForCheck(path, flag, opened);
  });
}
