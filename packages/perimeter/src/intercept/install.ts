/**
 * Installing the interceptors without paying for modules the function never uses.
 *
 * Requiring every networking module up front costs several milliseconds of cold start. Instead each built-in
 * is patched the moment user code can first get hold of it:
 * - `module.registerHooks` (Node >= 22.15): a synchronous resolve hook sees every `require()` and `import` of
 *   `node:*` in the main thread, ESM and CJS alike, before the importer receives the module;
 * - `process.getBuiltinModule()` is wrapped;
 * - where registerHooks does not exist (Node 20), `Module._load` is wrapped for CJS, and because ESM imports
 *   of built-ins cannot be seen there, the network modules are patched eagerly at start.
 * Node's internals load these modules on their own (undici loads `net` for fetch) without going through any
 * hook; that is safe because internal code is only reached through a public entry point we already guard, and
 * the first `fetch` patches `net` as well.
 * After patching, `syncBuiltinESMExports()` makes ESM named imports (`import { request } from 'node:http'`)
 * see the guarded functions.
 */
import { subscribe } from 'node:diagnostics_channel';
import { activePolicy, stopRememberingWritablePaths } from '../guard.js';
import {
  ArrayIncludes,
  getBuiltinModule,
  ModuleClass,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ObjectHasOwn,
  ReflectApply,
  SetAdd,
  SetDelete,
  SetHas,
  StringSlice,
  StringStartsWith,
  syncBuiltinESMExports,
} from '../pristine.js';
import { patchDgram } from './dgram.js';
import { patchDns } from './dns.js';
import { installEnvGuard } from './env.js';
import { patchConstructor, patchFetch } from './fetch.js';
import { patchFs, patchFsPromises } from './fs.js';
import { patchHttp } from './http.js';
import { patchHttp2 } from './http2.js';
import { patchInspector, patchInternals, patchModuleRegister, unseenFileSystemChanges } from './internals.js';
import { patchNet, setBeforeConnect } from './net.js';
import { disguise, guardProperty } from './patch.js';
import { captureCompileFunction, loadProcessGuard } from './process-guard-loader.js';
import {
  patchListenPath,
  patchProcessFileAccess,
  patchSqlite,
  patchTraceEvents,
  patchV8,
  patchWasi,
} from './side-doors.js';
import { patchWorkerThreads } from './worker.js';

type Patcher = () => void;

// A server listening on a Unix socket path creates a file-system entry (side-doors.ts).
const net = () => {
  patchNet(getBuiltinModule('net'), null);
  patchListenPath(getBuiltinModule('net'));
};
const tls = () => {
  patchNet(getBuiltinModule('net'), getBuiltinModule('tls'));
  patchListenPath(getBuiltinModule('net'));
};
const http = () => {
  net();
  patchHttp(getBuiltinModule('http'));
};
const dns = () => patchDns(getBuiltinModule('dns'));

function fileSystem(): void {
  const fs = getBuiltinModule('fs');
  patchFs(fs);
  // `fs.promises` loads a dozen internal modules (~1.5 ms of cold start), so where every other way to it is
  // hooked (require/import: the resolve hook; process.getBuiltinModule: its wrapper) only its getter is wrapped,
  // and the promises API is patched the first time anyone reads it. Without registerHooks, an ESM import of
  // `node:fs/promises` is invisible: patched now.
  const descriptor = ObjectGetOwnPropertyDescriptor(fs, 'promises');
  const originalGet = descriptor?.get;
  if (typeof (ModuleClass as any).registerHooks !== 'function' || !originalGet || !descriptor.configurable) {
    ensureGuarded('fs/promises');
    return;
  }
  ObjectDefineProperty(fs, 'promises', {
    enumerable: descriptor.enumerable,
    configurable: false,
    get: disguise(function get(this: unknown) {
      ensureGuarded('fs/promises');
      return ReflectApply(originalGet, fs, []);
    }, originalGet),
  });
}

function fileSystemPromises(): void {
  ensureGuarded('fs');
  patchFsPromises(getBuiltinModule('fs/promises'));
}

// The child-process guard is a chunk of its own, loaded here, at the first hand-out of child_process.
const childProcess = () => loadProcessGuard().patchChildProcess(getBuiltinModule('child_process'));

/** Built-in id → what must be guarded before user code may hold it. */
const PATCHERS: Record<string, Patcher> = {
  net,
  tls,
  http,
  https: () => {
    tls();
    http();
  },
  _http_client: http,
  _http_agent: http,
  http2: () => {
    tls();
    patchHttp2(getBuiltinModule('http2'), getBuiltinModule('net'));
  },
  dns,
  'dns/promises': dns,
  dgram: () => patchDgram(getBuiltinModule('dgram')),
  fs: fileSystem,
  'fs/promises': fileSystemPromises,
  worker_threads: () => patchWorkerThreads(getBuiltinModule('worker_threads')),
  inspector: () => patchInspector(getBuiltinModule('inspector')),
  'inspector/promises': () => patchInspector(getBuiltinModule('inspector')),
  child_process: childProcess,
  // WASI works on its preopened directories in C++ (uvwasi) and SQLite opens its files itself, where no fs
  // wrapper sees them: their constructors judge the paths (side-doors.ts), and loading either stops remembering
  // writable paths (WASI's path_symlink/path_rename, SQLite's native extensions).
  wasi: () => {
    unseenFileSystemChanges();
    patchWasi(getBuiltinModule('wasi'));
  },
  sqlite: () => {
    unseenFileSystemChanges();
    patchSqlite(getBuiltinModule('node:sqlite'));
  },
  // Heap snapshots are files written past the fs wrappers.
  v8: () => patchV8(getBuiltinModule('v8')),
  // The trace agent writes its log file into the current folder.
  trace_events: () => patchTraceEvents(getBuiltinModule('trace_events')),
  // Patched at start when Node has already defined Module.register, else when node:module is first handed out.
  module: () => patchModuleRegister(getBuiltinModule('module')),
  // Not patched: what the process-guard chunk is compiled with is taken before user code can replace it.
  vm: captureCompileFunction,
  // These reach child_process through Node's internal loader, which no hook sees.
  cluster: childProcess,
  test: childProcess,
};

const done = new Set<string>();

let undiciInUse = false;

/**
 * Node defines `WebSocket` and `EventSource` as lazy globals: merely reading their descriptor loads undici and
 * costs ~20 ms of cold start. So they are wrapped only once undici is in use anyway (first fetch or first
 * undici connection); until then their connections are judged at the socket layer by host and port.
 */
function onUndiciInUse(): void {
  if (undiciInUse) return;
  undiciInUse = true;
  ensureGuarded('net');
  patchConstructor('WebSocket', onUndiciInUse);
  patchConstructor('EventSource', onUndiciInUse);
}

export function ensureGuarded(specifier: string): void {
  // Pristine string and Set methods: a dependency that makes `Set.prototype.has` answer true would otherwise be
  // handed an unpatched module.
  const id = StringStartsWith(specifier, 'node:') ? StringSlice(specifier, 5) : specifier;
  if (SetHas(done, id)) return;
  const patch = ObjectHasOwn(PATCHERS, id) ? PATCHERS[id] : undefined;
  if (!patch) return;
  SetAdd(done, id);
  try {
    patch();
  } catch (error) {
    // Not marked done: the next attempt to load the module patches again instead of handing it out unguarded.
    SetDelete(done, id);
    throw error;
  }
  syncBuiltinESMExports();
}

let installed = false;

export function installInterceptors(): void {
  if (installed) return;
  installed = true;
  // process.binding / dlopen live on `process`, which every module already holds: patched at once.
  patchInternals(process);
  patchModuleRegister();
  patchProcessSideDoors();
  // process.env is not a module: every piece of code already holds `process`.
  installEnvGuard();
  // fs is loaded before any user code (the module loader itself uses it), so it is patched now, at a cost of
  // well under a millisecond, unless the policy does not check it.
  if (activePolicy()?.fs.mode !== 'allow') ensureGuarded('fs');
  patchFetch(onUndiciInUse);
  // undici opens every connection (fetch, WebSocket, EventSource, whoever started it) after publishing on this
  // channel; guarding `net` there means the socket layer judges it even if nothing else was patched yet.
  // Subscribing by name does not load undici.
  subscribe('undici:client:beforeConnect', onUndiciInUse);

  const proc = process as any;
  if (typeof proc.getBuiltinModule === 'function') {
    guardProperty(
      proc,
      'getBuiltinModule',
      (original) =>
        function getBuiltinModule(this: unknown, id: unknown) {
          if (typeof id === 'string') ensureGuarded(id);
          return ReflectApply(original, this, [id]);
        },
    );
  }

  const registerHooks = (ModuleClass as any).registerHooks as undefined | ((hooks: object) => unknown);
  if (typeof registerHooks === 'function') {
    registerHooks({
      resolve(specifier: string, context: unknown, nextResolve: (s: string, c: unknown) => { url: string }) {
        const result = nextResolve(specifier, context);
        if (StringStartsWith(result.url, 'node:')) ensureGuarded(result.url);
        return result;
      },
    });
    return;
  }
  const Module = ModuleClass as any;
  guardProperty(
    Module,
    '_load',
    (original) =>
      function _load(this: unknown, request: unknown, ...rest: unknown[]) {
        if (typeof request === 'string') ensureGuarded(request);
        return ReflectApply(original, this, [request, ...rest]);
      },
  );
  // ESM imports of built-ins are invisible here. The cheap lower layers are patched now; the modules above
  // them (http, https, http2, tls) are patched when the first socket connects: every HTTP/1 request, TLS
  // session or HTTP/2 session needs a new connection before any pooled reuse, and its request is judged by
  // `ClientRequest.prototype.onSocket` right after that connect. Eagerly loading them would cost ~12 ms.
  // worker_threads too: `import { Worker } from 'node:worker_threads'` would otherwise be the unguarded original
  // (a worker without the guard); ~0.7 ms, on Node 20 only.
  // child_process likewise (an ESM named import of execSync would be the original).
  for (const id of ['net', 'dns', 'dgram', 'worker_threads', 'child_process']) ensureGuarded(id);
  setBeforeConnect(catchUpLoadedBuiltins);
}

/**
 * What lives on `process` and `Module` (held by every module already) and reaches files or programs past the fs
 * and child_process wrappers: wrapped now, lazily (guardProperty makes each wrapper on first read). The checks
 * themselves load only when called: execve's is the child-process chunk.
 */
function patchProcessSideDoors(): void {
  const proc = process as any;
  if (typeof proc.execve === 'function') {
    guardProperty(
      proc,
      'execve',
      (original) =>
        function execve(this: unknown, ...input: unknown[]) {
          // Anything the new image does is unseen; until it replaces us, stop trusting writable paths.
          stopRememberingWritablePaths();
          const judged = loadProcessGuard().judgeExecve(input);
          if (judged.error) throw judged.error;
          return ReflectApply(original, this, judged.callArgs);
        },
    );
  }
  patchProcessFileAccess(proc, ModuleClass);
}

const LATE_BUILTINS = ['http', 'https', 'http2', 'tls'];
let lateBuiltinsPending = true;

/** Patches the late built-ins that Node has loaded by now (seen in `process.moduleLoadList`). */
function catchUpLoadedBuiltins(): void {
  if (!lateBuiltinsPending) return;
  const loaded: string[] = (process as any).moduleLoadList;
  let pending = false;
  for (let i = 0; i < LATE_BUILTINS.length; i++) {
    const id = LATE_BUILTINS[i]!;
    if (SetHas(done, id)) continue;
    if (ArrayIncludes(loaded, `NativeModule ${id}`)) ensureGuarded(id);
    else pending = true;
  }
  lateBuiltinsPending = pending;
}
