/**
 * Files reached past the `fs` module: Node APIs that open a path in C++ (or in a library it links) without going
 * through any fs function we wrap. Each is judged as the read or write (or addon load) it is, through
 * guard.checkFs / checkAddon, so its events and errors are those of the fs (addon) guard, and the path judged is
 * the string Node receives:
 * - `v8.writeHeapSnapshot(file)` writes `file` (default: a new file in the current directory);
 *   `v8.setHeapSnapshotNearHeapLimit()` arms snapshots written to the current directory later;
 * - `process.report.writeReport(file)` writes `directory/file` (report.directory is prepended even to an absolute
 *   name), `directory`/`filename` and the `reportOn*` switches decide where later automatic reports go;
 * - `module.enableCompileCache(dir)` reads and writes cache files under `dir`;
 * - `process.loadEnvFile(file)` reads `file` (default `.env`);
 * - `node:sqlite`: `new DatabaseSync(path)` reads and writes `path` (not `:memory:`; read only with `readOnly`),
 *   `backup(db, path)` writes `path`, `db.loadExtension(file)` loads native code (judged as an addon);
 * - `node:wasi`: every preopened host directory is read and written by the guest, so each must be allowed for
 *   both, with no always-denied area inside it.
 * A denial throws, as these functions do for a path they cannot use.
 */
import type { PerimeterError } from '../errors.js';
import { activePolicy, checkFs, failClosed, reportDenial } from '../guard.js';
import { absolutePath, type FsAccess } from '../policy/fs.js';
import {
  ArrayIsArray,
  fsRealpathSync,
  getBuiltinModule,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ReflectApply,
  ReflectConstruct,
  StringCharCodeAt,
  StringIncludes,
  StringStartsWith,
  StringToLowerCase,
} from '../pristine.js';
import { pathOf } from './fs.js';
import { callerPackagesOrUnknown, checkAddon } from './internals.js';

const RegExpTest = RegExp.prototype.test;

import { disguise, guardProperty } from './patch.js';

const ObjectKeys = Object.keys;

function judge(accesses: readonly FsAccess[], path: string): PerimeterError | null {
  for (let i = 0; i < accesses.length; i++) {
    const denied = checkFs(accesses[i]!, path, true);
    if (denied) return denied;
  }
  return null;
}

const WRITE: readonly FsAccess[] = ['write'];
const READ: readonly FsAccess[] = ['read'];
const BOTH: readonly FsAccess[] = ['read', 'write'];

/** A path argument as Node will use it (string, Buffer, file: URL), or undefined when absent. */
function pathArgument(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const path = pathOf(value);
  // Anything else Node refuses itself (it validates the type first); judged as its string so nothing slips by.
  return path === undefined ? `${value}` : path;
}

/** Where Node writes a file it names itself (a heap snapshot, a report): a representative name in `dir`. */
function generatedName(dir: string, prefix: string, suffix: string): string {
  return `${absolutePath(dir)}/${prefix}.${process.pid}${suffix}`;
}

// ---------------------------------------------------------------------------------------------------------------
// v8

/**
 * V8 flags that turn a running process into one whose memory script can corrupt: `%`-intrinsics
 * (`--allow-natives-syntax`) are V8's internal test surface. Set at run time they are denied in every mode, like
 * the same flags on a worker.
 */
function forbiddenV8Flags(flags: string): string[] {
  // V8 reads `_` as `-`, accepts one or two dashes and `=value`; any mention of the flag is refused (even
  // `--no-allow-natives-syntax`: failing closed costs nothing there).
  const lower = StringToLowerCase(flags);
  let normalized = '';
  for (let i = 0; i < lower.length; i++) normalized += lower[i] === '_' ? '-' : lower[i];
  return StringIncludes(normalized, 'natives-syntax') ? [flags] : [];
}

export function patchV8(v8: Record<string, any>): void {
  guardProperty(
    v8,
    'setFlagsFromString',
    (original) =>
      function setFlagsFromString(this: unknown, ...args: unknown[]) {
        if (activePolicy() !== null) {
          let denied: PerimeterError | null = null;
          try {
            const forbidden = forbiddenV8Flags(String(args[0]));
            if (forbidden.length > 0) {
              denied = reportDenial(
                'block',
                {
                  capability: 'internals',
                  target: `v8.setFlagsFromString(${forbidden.join(' ')})`,
                  reason: 'forbidden-flag',
                  key: 'v8',
                  suggestion: 'nothing: V8 intrinsics cannot be turned on in a guarded process',
                },
                callerPackagesOrUnknown(),
              );
            }
          } catch (cause) {
            denied = failClosed('internals', cause);
          }
          if (denied) throw denied;
        }
        return ReflectApply(original, this, args);
      },
  );
  guardProperty(
    v8,
    'writeHeapSnapshot',
    (original) =>
      function writeHeapSnapshot(this: unknown, ...args: unknown[]) {
        const file = pathArgument(args[0]);
        if (file !== undefined) args[0] = file;
        const denied = judge(WRITE, file ?? generatedName('.', 'Heap', '.heapsnapshot'));
        if (denied) throw denied;
        return ReflectApply(original, this, args);
      },
  );
  guardProperty(
    v8,
    'setHeapSnapshotNearHeapLimit',
    (original) =>
      function setHeapSnapshotNearHeapLimit(this: unknown, ...args: unknown[]) {
        const denied = judge(WRITE, generatedName('.', 'Heap', '.heapsnapshot'));
        if (denied) throw denied;
        return ReflectApply(original, this, args);
      },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// process.report, process.loadEnvFile, module.enableCompileCache

interface ReportLike {
  directory: string;
  filename: string;
}

/** The file a report named `file` goes to: report.directory is put in front of any name, even an absolute one. */
function reportTarget(report: ReportLike, file: string | undefined, directory = report.directory): string | null {
  const name = file === undefined || file === '' ? report.filename : file;
  if (name === 'stdout' || name === 'stderr') return null;
  const dir = directory === '' || directory === undefined ? undefined : `${directory}`;
  if (name === '' || name === undefined) return generatedName(dir ?? '.', 'report', '.json');
  return dir === undefined ? absolutePath(`${name}`) : `${absolutePath(dir)}/${name}`;
}

let reportPatched = false;

function patchReport(report: Record<string, any>): void {
  if (reportPatched || report === null || typeof report !== 'object') return;
  reportPatched = true;
  guardProperty(
    report,
    'writeReport',
    (original) =>
      function writeReport(this: unknown, ...args: unknown[]) {
        // writeReport([file][, err]): a first argument that is an Error is `err`.
        const file = typeof args[0] === 'string' ? args[0] : undefined;
        const target = reportTarget(report as ReportLike, file);
        const denied = target === null ? null : judge(WRITE, target);
        if (denied) throw denied;
        return ReflectApply(original, this, args);
      },
  );
  // Where automatic reports (fatal error, signal, uncaught exception) will go: judged when it is set, and when
  // they are switched on.
  const setters: Record<string, (value: unknown) => string | null> = {
    directory: (value) => reportTarget(report as ReportLike, undefined, `${value}`),
    filename: (value) => reportTarget(report as ReportLike, `${value}`),
    reportOnFatalError: (value) => (value ? reportTarget(report as ReportLike, undefined) : null),
    reportOnSignal: (value) => (value ? reportTarget(report as ReportLike, undefined) : null),
    reportOnUncaughtException: (value) => (value ? reportTarget(report as ReportLike, undefined) : null),
  };
  const keys = ObjectKeys(setters);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    const descriptor = ObjectGetOwnPropertyDescriptor(report, key);
    const set = descriptor?.set;
    if (!descriptor || !set) continue;
    const targetOf = setters[key]!;
    ObjectDefineProperty(report, key, {
      enumerable: descriptor.enumerable,
      configurable: false,
      get: descriptor.get,
      set: disguise(function (this: unknown, value: unknown) {
        const target = targetOf(value);
        const denied = target === null ? null : judge(WRITE, target);
        if (denied) throw denied;
        ReflectApply(set, this, [value]);
      }, set),
    });
  }
}

export function patchProcessFileAccess(proc: Record<string, any>, Module: Record<string, any>): void {
  // process.report is a getter that loads Node's report module: patched on first read, not at start.
  const descriptor = ObjectGetOwnPropertyDescriptor(proc, 'report');
  const get = descriptor?.get;
  if (descriptor && get && descriptor.configurable) {
    ObjectDefineProperty(proc, 'report', {
      enumerable: descriptor.enumerable,
      configurable: false,
      get: disguise(function report(this: unknown) {
        const value = ReflectApply(get, proc, []);
        patchReport(value);
        return value;
      }, get),
      set: descriptor.set,
    });
  }
  guardProperty(
    proc,
    'loadEnvFile',
    (original) =>
      function loadEnvFile(this: unknown, ...args: unknown[]) {
        const file = pathArgument(args[0]);
        if (file !== undefined) args[0] = file;
        const denied = judge(READ, file ?? '.env');
        if (denied) throw denied;
        return ReflectApply(original, this, args);
      },
  );
  guardProperty(
    Module,
    'enableCompileCache',
    (original) =>
      function enableCompileCache(this: unknown, ...args: unknown[]) {
        // enableCompileCache(dir) or ({ directory, portable }); the default is NODE_COMPILE_CACHE or <tmpdir>/node-compile-cache.
        const given = args[0];
        let dir: string | undefined;
        if (given !== null && typeof given === 'object' && !(pathOf(given) !== undefined)) {
          const copy = { ...(given as Record<string, unknown>) };
          dir = pathArgument(copy.directory);
          if (dir !== undefined) copy.directory = dir;
          args[0] = copy;
        } else {
          dir = pathArgument(given);
          if (dir !== undefined) args[0] = dir;
        }
        if (dir === undefined) {
          const os = getBuiltinModule('os') as typeof import('node:os');
          dir = process.env.NODE_COMPILE_CACHE || `${os.tmpdir()}/node-compile-cache`;
          if (args[0] !== null && typeof args[0] === 'object') (args[0] as Record<string, unknown>).directory = dir;
          else args[0] = dir;
        }
        const denied = judge(BOTH, dir);
        if (denied) throw denied;
        return ReflectApply(original, this, args);
      },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// node:sqlite

/** Replaces a class export by a constructor that judges first; `prototype.constructor` leads to it too. */
function guardClass(
  exports: Record<string, any>,
  key: string,
  check: (args: unknown[]) => PerimeterError | null,
): void {
  const original = exports[key];
  if (typeof original !== 'function') return;
  const Guarded = function (this: unknown, ...args: unknown[]) {
    // Without `new`, Node's class throws its own TypeError.
    if (new.target === undefined) return ReflectApply(original, this, args);
    const denied = check(args);
    if (denied) throw denied;
    return ReflectConstruct(original, args, new.target === Guarded ? original : new.target);
  };
  ObjectDefineProperty(Guarded, 'prototype', { value: original.prototype });
  const wrapped = disguise(Guarded, original);
  // `new (db.constructor)(path)` must not reach the original.
  ObjectDefineProperty(original.prototype, 'constructor', {
    value: wrapped,
    writable: false,
    enumerable: false,
    configurable: false,
  });
  guardProperty(exports, key, () => wrapped);
}

function databasePath(value: unknown): string | null {
  const path = pathArgument(value);
  if (path === undefined || path === ':memory:' || path === '') return null;
  // A file: URL string is a URI filename to SQLite (Node opens with SQLITE_OPEN_URI): its path part is the file.
  if (StringStartsWith(path, 'file:')) {
    const end = path.indexOf('?');
    const bare = end === -1 ? path : path.slice(0, end);
    if (bare === 'file::memory:') return null;
    try {
      return pathOf(new URL(bare)) ?? bare;
    } catch {
      return bare.slice(5);
    }
  }
  return path;
}

/**
 * `ATTACH 'file' AS x` and `VACUUM INTO 'file'` open and create database files named inside the SQL, which can be
 * built at run time or bound as a parameter, so the file cannot be judged from the text. Statements that could
 * contain either are denied (as an fs write, reason `sqlite-attach`) unless the fs capability is not checked. The
 * test is on words anywhere in the text: a quoted "attach" in a string or identifier is denied too (fails closed).
 */
const ATTACH = /\battach\b/i;
const VACUUM = /\bvacuum\b/i;
const INTO = /\binto\b/i;

function checkSql(sql: string): PerimeterError | null {
  const policy = activePolicy();
  if (policy === null || policy.fs.mode === 'allow') return null;
  try {
    const attach = ReflectApply(RegExpTest, ATTACH, [sql]) as boolean;
    const vacuumInto = !attach && ReflectApply(RegExpTest, VACUUM, [sql]) && ReflectApply(RegExpTest, INTO, [sql]);
    if (!attach && !vacuumInto) return null;
    return reportDenial(
      policy.fs.mode,
      {
        capability: 'fs',
        target: `write sqlite ${attach ? 'ATTACH' : 'VACUUM INTO'}`,
        reason: 'sqlite-attach',
        key: 'fs.mode',
        suggestion: 'allow',
      },
      callerPackagesOrUnknown(),
    );
  } catch (cause) {
    return failClosed('fs', cause);
  }
}

/** Wraps methods whose first argument is SQL text (`template`: a tagged template's strings). */
function guardSql(proto: Record<string, any>, names: readonly string[], template: boolean): void {
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (typeof proto[name] !== 'function') continue;
    guardProperty(
      proto,
      name,
      (original) =>
        ({
          [name](this: unknown, ...args: unknown[]) {
            let sql: string;
            if (template && args[0] !== null && typeof args[0] === 'object') {
              const strings = args[0] as ArrayLike<unknown>;
              // Read once: Node gets the copy, so strings a getter changes cannot show the check other text.
              const copy: string[] = [];
              sql = '';
              const length = strings.length;
              for (let j = 0; j < length; j++) {
                copy[j] = `${strings[j]}`;
                sql = j === 0 ? copy[j]! : `${sql} ? ${copy[j]}`;
              }
              args[0] = copy;
            } else {
              sql = `${args[0]}`;
              if (typeof args[0] !== 'string') args[0] = sql;
            }
            const denied = checkSql(sql);
            if (denied) throw denied;
            return ReflectApply(original, this, args);
          },
        })[name]!,
    );
  }
}

let tagStorePatched = false;

export function patchSqlite(sqlite: Record<string, any>): void {
  for (const name of ['DatabaseSync', 'Database']) {
    guardClass(sqlite, name, (args) => {
      const path = databasePath(args[0]);
      // A Buffer or URL becomes the string judged; a string stays as given (SQLite reads URI filenames itself).
      if (path !== null && typeof args[0] !== 'string') args[0] = path;
      const options = args[1];
      let readOnly = false;
      if (options !== null && typeof options === 'object') {
        const copy = { ...(options as Record<string, unknown>) };
        args[1] = copy;
        readOnly = copy.readOnly === true;
      }
      return path === null ? null : judge(readOnly ? READ : BOTH, path);
    });
    const proto = sqlite[name]?.prototype;
    if (proto) guardSql(proto, ['exec', 'prepare'], false);
    if (proto && typeof proto.createTagStore === 'function') {
      guardProperty(
        proto,
        'createTagStore',
        (original) =>
          function createTagStore(this: unknown, ...args: unknown[]) {
            const store = ReflectApply(original, this, args);
            if (!tagStorePatched && store !== null && typeof store === 'object') {
              tagStorePatched = true;
              guardSql(ObjectGetPrototypeOf(store), ['get', 'all', 'iterate', 'run'], true);
            }
            return store;
          },
      );
    }
    if (proto && typeof proto.loadExtension === 'function') {
      guardProperty(
        proto,
        'loadExtension',
        (original) =>
          function loadExtension(this: unknown, ...args: unknown[]) {
            const file = `${args[0]}`;
            args[0] = file;
            const denied = checkAddon(file);
            if (denied) throw denied;
            return ReflectApply(original, this, args);
          },
      );
    }
  }
  guardProperty(
    sqlite,
    'backup',
    (original) =>
      function backup(this: unknown, ...args: unknown[]) {
        const path = databasePath(args[1]);
        if (path !== null && typeof args[1] !== 'string') args[1] = path;
        const denied = path === null ? null : judge(WRITE, path);
        if (denied) return Promise.reject(denied);
        return ReflectApply(original, this, args);
      },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// node:wasi

/** The real path of a directory, or its absolute path when it cannot be resolved. */
function realDirectory(path: string): string {
  try {
    return fsRealpathSync(absolutePath(path));
  } catch {
    return absolutePath(path);
  }
}

/** A preopened directory gives the guest everything under it: it and every always-denied area inside must be allowed. */
function judgeTree(dir: string): PerimeterError | null {
  const denied = judge(BOTH, dir);
  if (denied) return denied;
  const policy = activePolicy();
  if (policy === null || policy.fs.mode === 'allow') return null;
  const real = realDirectory(dir);
  const root = real === '/' ? '/' : `${real}/`;
  const zones = policy.fs.zones;
  for (let i = 0; i < zones.length; i++) {
    const zone = zones[i]!;
    if (StringStartsWith(zone, root)) {
      const inner = judge(BOTH, zone);
      if (inner) return inner;
    }
  }
  if (real === '/' || real === '/proc') return judge(BOTH, '/proc/self');
  return null;
}

export function patchWasi(wasi: Record<string, any>): void {
  guardClass(wasi, 'WASI', (args) => {
    const options = args[0];
    if (options === null || typeof options !== 'object') return null;
    const copy = { ...(options as Record<string, unknown>) };
    args[0] = copy;
    const preopens = copy.preopens;
    if (preopens === null || typeof preopens !== 'object') return null;
    const pinned: Record<string, string> = {};
    const guests = ObjectKeys(preopens);
    for (let i = 0; i < guests.length; i++) {
      const host = `${(preopens as Record<string, unknown>)[guests[i]!]}`;
      pinned[guests[i]!] = host;
      const denied = judgeTree(host);
      if (denied) return denied;
    }
    copy.preopens = pinned;
    return null;
  });
}

// ---------------------------------------------------------------------------------------------------------------
// node:trace_events

/**
 * `createTracing({ categories }).enable()` starts Node's trace agent, which writes `node_trace.<n>.log` into the
 * current folder (the file name pattern is a start-up flag): judged as a write of that file when enabled.
 */
export function patchTraceEvents(traceEvents: Record<string, any>): void {
  if (typeof traceEvents.createTracing !== 'function') return;
  let probe: object;
  try {
    // Creating a Tracing object does nothing until it is enabled; it hands us the shared prototype.
    probe = traceEvents.createTracing({ categories: ['perimeter.probe'] });
  } catch {
    return; // In a worker thread trace_events is not available at all.
  }
  const proto = ObjectGetPrototypeOf(probe) as Record<string, any>;
  guardProperty(
    proto,
    'enable',
    (original) =>
      function enable(this: unknown, ...args: unknown[]) {
        const denied = judge(WRITE, absolutePath('node_trace.1.log'));
        if (denied) throw denied;
        return ReflectApply(original, this, args);
      },
  );
}

// ---------------------------------------------------------------------------------------------------------------
// net.Server.prototype.listen(path)

let listenPatched = false;
const ObjectPrototype = Object.prototype;

function hasPathAccessor(value: object): boolean {
  for (let o: object | null = value; o !== null; o = ObjectGetPrototypeOf(o)) {
    const descriptor = ObjectGetOwnPropertyDescriptor(o, 'path');
    if (descriptor) return descriptor.get !== undefined || descriptor.set !== undefined;
  }
  return false;
}

/**
 * Listening on a Unix socket path creates that entry in the file system (http, https, http2 and net servers all
 * listen through `net.Server.prototype.listen`): judged as a write of the entry. Linux abstract sockets (a name
 * starting with a NUL byte) and listening on a port or a handle are not files.
 */
export function patchListenPath(net: typeof import('node:net')): void {
  if (listenPatched) return;
  listenPatched = true;
  guardProperty(
    net.Server.prototype,
    'listen',
    (original) =>
      function listen(this: unknown, ...args: unknown[]) {
        const first = args[0];
        let path: unknown;
        // net's isPipeName: a string that is not a non-negative number is a path.
        if (typeof first === 'string' && !(Number(first) >= 0)) path = first;
        else if (first !== null && typeof first === 'object' && !ArrayIsArray(first)) {
          const proto = ObjectGetPrototypeOf(first);
          if (proto === ObjectPrototype || proto === null) {
            // Options are read once and Node gets the copy.
            const copy = { ...(first as Record<string, unknown>) };
            args[0] = copy;
            path = copy.path;
          } else if (hasPathAccessor(first)) {
            // Node reads options.path several times; a getter could answer the check one path and Node another.
            throw new TypeError('Perimeter: listen() options whose path is a getter cannot be judged');
          } else path = (first as { path?: unknown }).path;
        }
        if (typeof path === 'string' && path !== '' && StringCharCodeAt(path, 0) !== 0) {
          const denied = checkFs('write', path, false);
          if (denied) throw denied;
        }
        return ReflectApply(original, this, args);
      },
  );
}
