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
import module from 'node:module';
import { getBuiltinModule, ReflectApply, syncBuiltinESMExports } from '../pristine.js';
import { patchDgram } from './dgram.js';
import { patchDns } from './dns.js';
import { patchConstructor, patchFetch } from './fetch.js';
import { patchHttp } from './http.js';
import { patchHttp2 } from './http2.js';
import { patchNet, setBeforeConnect } from './net.js';
import { guardProperty } from './patch.js';

type Patcher = () => void;

const net = () => patchNet(getBuiltinModule('net'), null);
const tls = () => patchNet(getBuiltinModule('net'), getBuiltinModule('tls'));
const http = () => {
  net();
  patchHttp(getBuiltinModule('http'));
};
const dns = () => patchDns(getBuiltinModule('dns'));

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
  const id = specifier.startsWith('node:') ? specifier.slice(5) : specifier;
  if (done.has(id)) return;
  const patch = PATCHERS[id];
  if (!patch) return;
  done.add(id);
  patch();
  syncBuiltinESMExports();
}

let installed = false;

export function installInterceptors(): void {
  if (installed) return;
  installed = true;
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

  const registerHooks = (module as any).registerHooks as undefined | ((hooks: object) => unknown);
  if (typeof registerHooks === 'function') {
    registerHooks({
      resolve(specifier: string, context: unknown, nextResolve: (s: string, c: unknown) => { url: string }) {
        const result = nextResolve(specifier, context);
        if (result.url.startsWith('node:')) ensureGuarded(result.url);
        return result;
      },
    });
    return;
  }
  const Module = module as any;
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
  for (const id of ['net', 'dns', 'dgram']) ensureGuarded(id);
  setBeforeConnect(catchUpLoadedBuiltins);
}

const LATE_BUILTINS = ['http', 'https', 'http2', 'tls'];
let lateBuiltinsPending = true;

/** Patches the late built-ins that Node has loaded by now (seen in `process.moduleLoadList`). */
function catchUpLoadedBuiltins(): void {
  if (!lateBuiltinsPending) return;
  const loaded: string[] = (process as any).moduleLoadList;
  let pending = false;
  for (const id of LATE_BUILTINS) {
    if (done.has(id)) continue;
    if (loaded.includes(`NativeModule ${id}`)) ensureGuarded(id);
    else pending = true;
  }
  lateBuiltinsPending = pending;
}
