/**
 * HTTP/2 clients: `http2.connect(authority)` is judged as a connection to host:port, and every
 * `session.request(headers)` by its `:method` and `:path`, before the HEADERS frame is sent.
 */
import { checkNetwork } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { normalizeHost } from '../policy/host.js';
import { getBuiltinModule, ObjectGetPrototypeOf, processNextTick, ReflectApply, URLCtor } from '../pristine.js';
import { splitPath } from './http.js';
import { socketDestination } from './net.js';
import { guardProperty } from './patch.js';

const ObjectGetOwnPropertySymbols = Object.getOwnPropertySymbols;

interface Origin {
  scheme: 'http' | 'https';
  host: string;
  port: number;
}

function parseAuthority(authority: unknown): Origin | null {
  try {
    const url = authority instanceof URLCtor ? authority : new URLCtor(String(authority));
    const scheme = url.protocol === 'http:' ? 'http' : 'https';
    const raw = url.hostname;
    return { scheme, host: normalizeHost(raw) ?? raw, port: Number(url.port) || (scheme === 'https' ? 443 : 80) };
  } catch {
    return null;
  }
}

const sessionOrigin = new WeakMap<object, Origin>();
let patched = false;

export function patchHttp2(http2: typeof import('node:http2'), net: typeof import('node:net')): void {
  if (patched) return;
  patched = true;
  const unguardedConnect = http2.connect;
  guardProperty(
    http2,
    'connect',
    (original) =>
      function connect(this: unknown, authority: unknown, ...rest: unknown[]) {
        const origin = parseAuthority(authority);
        if (origin) {
          const target: NetworkTarget = {
            kind: 'socket',
            method: '',
            scheme: origin.scheme === 'https' ? 'tls' : 'tcp',
            host: origin.host,
            port: origin.port,
            path: '',
          };
          const denied = checkNetwork(target);
          if (denied) {
            // Hand Node a connection that fails at once: the session then fails with 'error' the normal way.
            const options = {
              ...((typeof rest[0] === 'object' && rest[0]) || {}),
              createConnection: () => {
                // http2 wraps a handle-less net.Socket in a stream that reads as connected, and the session would
                // emit 'connect' before failing. A pending TLSSocket (it has a handle) fails with 'error' only, as a
                // refused connection does.
                const socket = new (getBuiltinModule('tls') as typeof import('node:tls')).TLSSocket(null as any);
                (socket as { connecting: boolean }).connecting = true;
                processNextTick(() => socket.destroy(denied));
                return socket;
              },
            };
            const session = ReflectApply(original, this, [
              authority,
              options,
              ...rest.filter((r) => typeof r === 'function'),
            ]);
            if (session.listenerCount('error') === 0) session.once('error', () => {});
            return session;
          }
        }
        const session = ReflectApply(original, this, [authority, ...rest]);
        if (origin) sessionOrigin.set(session, origin);
        return session;
      },
  );
  // The session class is not exported; a throwaway session on a socket that never connects reveals its
  // prototype now. Patching it only from the first guarded connect would miss a session opened before http2
  // was guarded (on Node 20, an ESM import of node:http2 is patched only once its first socket connects).
  const socket = new net.Socket();
  (socket as { connecting: boolean }).connecting = true;
  // The unguarded connect: the probe is neither judged nor reported, and never touches the network.
  const probe = ReflectApply(unguardedConnect, http2, ['http://127.0.0.1:1', { createConnection: () => socket }]);
  probe.destroy();
  socket.destroy();
  patchSessionRequest(ObjectGetPrototypeOf(probe));
}

/**
 * Where a session's requests go: the authority it was opened with, or, for a session opened before http2 was
 * guarded, the destination its socket connected to (recorded by the net guard). Unknown means denied.
 */
function originOf(session: object): Origin {
  const known = sessionOrigin.get(session);
  if (known) return known;
  for (const key of ObjectGetOwnPropertySymbols(session)) {
    if (key.description !== 'socket') continue;
    const socket = (session as Record<symbol, { encrypted?: boolean } | undefined>)[key];
    const destination = socketDestination(socket);
    if (destination) {
      const origin: Origin = { scheme: socket?.encrypted ? 'https' : 'http', ...destination };
      sessionOrigin.set(session, origin);
      return origin;
    }
  }
  return { scheme: 'https', host: '', port: 0 };
}

function patchSessionRequest(proto: object): void {
  guardProperty(
    proto,
    'request',
    (original) =>
      function request(this: object, headers: Record<string, unknown> | undefined, ...rest: unknown[]) {
        const origin = originOf(this);
        const { path, query } = splitPath(String(headers?.[':path'] ?? '/'));
        const method = String(headers?.[':method'] ?? 'GET').toUpperCase();
        const denied = checkNetwork(
          { kind: 'http', method, scheme: origin.scheme, host: origin.host, port: origin.port, path },
          query,
        );
        // session.request throws synchronously for requests it cannot make; a denied one is such a request.
        if (denied) throw denied;
        return ReflectApply(original, this, [headers, ...rest]);
      },
  );
}
