/**
 * HTTP/2 clients: `http2.connect(authority)` is judged as a connection to host:port, and every
 * `session.request(headers)` by its `:method` and `:path`, before the HEADERS frame is sent.
 */
import { checkNetwork } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { normalizeHost } from '../policy/host.js';
import { ObjectGetPrototypeOf, processNextTick, ReflectApply, URLCtor } from '../pristine.js';
import { splitPath } from './http.js';
import { guardProperty } from './patch.js';

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
let sessionPatched = false;

export function patchHttp2(http2: typeof import('node:http2'), net: typeof import('node:net')): void {
  if (patched) return;
  patched = true;
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
                const socket = new net.Socket();
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
        if (!sessionPatched) {
          sessionPatched = true;
          patchSessionRequest(ObjectGetPrototypeOf(session));
        }
        return session;
      },
  );
}

function patchSessionRequest(proto: object): void {
  guardProperty(
    proto,
    'request',
    (original) =>
      function request(this: object, headers: Record<string, unknown> | undefined, ...rest: unknown[]) {
        const origin = sessionOrigin.get(this);
        if (origin) {
          const { path, query } = splitPath(String(headers?.[':path'] ?? '/'));
          const method = String(headers?.[':method'] ?? 'GET').toUpperCase();
          const denied = checkNetwork(
            { kind: 'http', method, scheme: origin.scheme, host: origin.host, port: origin.port, path },
            query,
          );
          // session.request throws synchronously for requests it cannot make; a denied one is such a request.
          if (denied) throw denied;
        }
        return ReflectApply(original, this, [headers, ...rest]);
      },
  );
}
