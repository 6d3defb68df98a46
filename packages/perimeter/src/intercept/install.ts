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
import module from 'node:module';
import { getBuiltinModule, ReflectApply, syncBuiltinESMExports } from '../pristine.js';
import { patchDgram } from './dgram.js';
import { patchDns } from './dns.js';
import { patchConstructor, patchFetch } from './fetch.js';
import { patchHttp } from './http.js';
import { patchHttp2 } from './http2.js';
import { patchNet } from './net.js';
import { guardProperty } from './patch.js';

type Patcher = () => void;

const net = () => patchNet(getBuiltinModule('net'), getBuiltinModule('tls'));
const http = () => {
  net();
  patchHttp(getBuiltinModule('http'));
};
const dns = () => patchDns(getBuiltinModule('dns'));

/** Built-in id → what must be guarded before user code may hold it. */
const PATCHERS: Record<string, Patcher> = {
  net,
  tls: net,
  http,
  https: http,
  _http_client: http,
  _http_agent: http,
  http2: () => {
    net();
    patchHttp2(getBuiltinModule('http2'), getBuiltinModule('net'));
  },
  dns,
  'dns/promises': dns,
  dgram: () => patchDgram(getBuiltinModule('dgram')),
};

const done = new Set<string>();

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
  const onFirstFetch = () => ensureGuarded('net');
  patchFetch(onFirstFetch);
  patchConstructor('WebSocket', onFirstFetch);
  patchConstructor('EventSource', onFirstFetch);

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
  for (const id of Object.keys(PATCHERS)) ensureGuarded(id);
}
