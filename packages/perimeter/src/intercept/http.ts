/**
 * HTTP/1 clients (http, https and everything built on them: axios, got, node-fetch, the AWS SDK's handler).
 * Judged by method and URL at two points of the shared `_http_client` machinery:
 * - `http.Agent.prototype.addRequest`: every request that goes through an agent (https.Agent inherits it),
 *   called inside the ClientRequest constructor, before any connection exists. Keep-alive reuse included.
 * - `http.ClientRequest.prototype.onSocket`: every request, including those with a custom `createConnection`
 *   or a home-made agent object, before a single byte of the request is written.
 */
import { checkNetwork } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { normalizeHost } from '../policy/host.js';
import { ReflectApply, SafeWeakSet, URLCtor, WeakSetAdd, WeakSetHas } from '../pristine.js';
import { socketDestination } from './net.js';
import { guardProperty } from './patch.js';

interface RequestLike {
  method?: string;
  path?: string;
  host?: string;
  protocol?: string;
  // `false` at run time for `agent: false`; optional chaining reads it as undefined.
  agent?: { defaultPort?: number; protocol?: string } | null;
  destroy(err?: Error): void;
  emit(e: string, ...a: unknown[]): boolean;
  listenerCount(e: string): number;
  once(e: string, f: () => void): unknown;
  [key: symbol]: unknown;
}

const judged = new SafeWeakSet<object>();

/** Splits a request-target into a normalised path (dot segments resolved, as a server would) and its query. */
export function splitPath(rawPath: string): { path: string; query: string } {
  const q = rawPath.indexOf('?');
  const pathOnly = q === -1 ? rawPath : rawPath.slice(0, q);
  const query = q === -1 ? '' : rawPath.slice(q);
  if (!pathOnly.includes('.') && !pathOnly.includes('%') && !pathOnly.includes('\\') && pathOnly.startsWith('/')) {
    return { path: pathOnly, query };
  }
  try {
    return { path: new URLCtor(pathOnly, 'http://h').pathname, query };
  } catch {
    return { path: pathOnly, query };
  }
}

function requestTarget(
  req: RequestLike,
  options: Record<string, any> | undefined,
  socket?: unknown,
): { target: NetworkTarget; query: string } {
  const protocol = req.protocol ?? options?.protocol ?? req.agent?.protocol ?? 'http:';
  const scheme = protocol === 'https:' ? 'https' : 'http';
  // Without agent options (custom createConnection, or a request created before http was guarded) the host and
  // port are where the socket really connects: ClientRequest does not keep the port, and a Host header is
  // whatever the caller wrote.
  const destination = options ? undefined : socketDestination(socket);
  const rawHost = String(options?.host ?? options?.hostname ?? destination?.host ?? req.host ?? 'localhost');
  const defaultPort = req.agent?.defaultPort || (scheme === 'https' ? 443 : 80);
  const port = Number(options?.port) || destination?.port || defaultPort;
  const { path, query } = splitPath(req.path ?? '/');
  return {
    target: {
      kind: 'http',
      method: (req.method ?? 'GET').toUpperCase(),
      scheme,
      host: normalizeHost(rawHost) ?? rawHost,
      port,
      path,
    },
    query,
  };
}

let patched = false;

export function patchHttp(http: typeof import('node:http')): void {
  if (patched) return;
  patched = true;
  guardProperty(
    http.Agent.prototype,
    'addRequest',
    (original) =>
      function addRequest(this: unknown, req: RequestLike, options: Record<string, any>, ...rest: unknown[]) {
        WeakSetAdd(judged, req);
        const { target, query } = requestTarget(req, options);
        const denied = checkNetwork(target, query);
        if (denied) {
          // No socket is ever assigned; Node's own socket-less failure path emits 'error' then 'close', as a
          // refused connection does.
          if (req.listenerCount('error') === 0) req.once('error', () => {});
          (req as any).onSocket(null, denied);
          return;
        }
        return ReflectApply(original, this, [req, options, ...rest]);
      },
  );
  guardProperty(
    http.ClientRequest.prototype,
    'onSocket',
    (original) =>
      function onSocket(this: RequestLike, socket: unknown, err?: unknown) {
        if (!WeakSetHas(judged, this) && !err) {
          WeakSetAdd(judged, this);
          const { target, query } = requestTarget(this, undefined, socket);
          const denied = checkNetwork(target, query);
          if (denied) {
            if (this.listenerCount('error') === 0) this.once('error', () => {});
            return ReflectApply(original, this, [socket, denied]);
          }
        }
        return ReflectApply(original, this, [socket, err]);
      },
  );
}
