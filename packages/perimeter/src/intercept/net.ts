/**
 * Raw TCP and TLS: `net.Socket.prototype.connect` is the one place every TCP client connection in Node passes
 * through (net.connect, new net.Socket().connect, tls.connect, https, http2, and undici underneath fetch).
 * Judged by host and port; a TLS servername is judged too, so SNI cannot name a host the policy denies.
 */
import { checkNetwork } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { normalizeHost } from '../policy/host.js';
import { processNextTick, ReflectApply } from '../pristine.js';
import { guardProperty } from './patch.js';

interface SocketLike {
  destroy(err?: Error): void;
  emit(e: string, ...a: unknown[]): boolean;
  listenerCount(e: string): number;
  once(e: string, f: () => void): unknown;
}

export function socketTarget(
  options: { host?: unknown; hostname?: unknown; port?: unknown; path?: unknown },
  scheme: 'tcp' | 'tls',
): NetworkTarget {
  if (typeof options.path === 'string' && options.path !== '') {
    return { kind: 'unix', method: '', scheme: 'unix', host: '', port: 0, path: options.path };
  }
  const rawHost =
    typeof options.host === 'string' && options.host !== ''
      ? options.host
      : typeof options.hostname === 'string' && options.hostname !== ''
        ? options.hostname
        : 'localhost';
  return {
    kind: 'socket',
    method: '',
    scheme,
    // An unparseable host is judged as itself: it cannot match a rule, so it is denied.
    host: normalizeHost(rawHost) ?? rawHost,
    port: Number(options.port) || 0,
    path: '',
  };
}

/** Mirrors net's own argument normalisation: (options[, cb]), (port[, host][, cb]), (path[, cb]), or net's internal array form. */
function connectOptions(args: unknown[]): Record<string, unknown> {
  let first = args[0];
  if (Array.isArray(first)) first = first[0];
  if (first !== null && typeof first === 'object') return first as Record<string, unknown>;
  if (typeof first === 'string' && Number.isNaN(Number(first))) return { path: first };
  return { port: first, host: typeof args[1] === 'string' ? args[1] : undefined };
}

let netPatched = false;
// Known once tls is guarded; it only decides whether a target reads as tls:// or tcp:// in events.
let tlsModule: typeof import('node:tls') | null = null;
let beforeConnect: (() => void) | null = null;

/** Lets the installer catch up on modules loaded out of its sight, just before a connection is judged. */
export function setBeforeConnect(hook: () => void): void {
  beforeConnect = hook;
}

export function patchNet(net: typeof import('node:net'), tls: typeof import('node:tls') | null): void {
  if (!netPatched) {
    netPatched = true;
    guardProperty(
      net.Socket.prototype,
      'connect',
      (original) =>
        function connect(this: SocketLike, ...args: unknown[]) {
          beforeConnect?.();
          const isTls = tlsModule !== null && this instanceof tlsModule.TLSSocket;
          const denied = checkNetwork(socketTarget(connectOptions(args), isTls ? 'tls' : 'tcp'));
          if (denied) {
            // Fails like a refused connection: an async 'error' then 'close', nothing sent, no lookup done.
            processNextTick(() => {
              if (this.listenerCount('error') === 0) this.once('error', () => {});
              this.destroy(denied);
            });
            return this;
          }
          return ReflectApply(original, this, args);
        },
    );
  }
  if (tls) {
    tlsModule = tls;
    patchTls(tls);
  }
}

let tlsPatched = false;

function patchTls(tls: typeof import('node:tls')): void {
  if (tlsPatched) return;
  tlsPatched = true;
  guardProperty(
    tls,
    'connect',
    (original) =>
      function connect(this: unknown, ...args: unknown[]) {
        // tls.connect(options[, cb]) or tls.connect(port[, host][, options][, cb]).
        const positional = connectOptions(args);
        const options = (args.find((a) => a !== null && typeof a === 'object' && !Array.isArray(a)) ?? {}) as Record<
          string,
          unknown
        >;
        const servername = typeof options.servername === 'string' ? options.servername : null;
        if (servername) {
          const target = socketTarget({ host: servername, port: options.port ?? positional.port }, 'tls');
          const denied = checkNetwork(target);
          if (denied) {
            // tls.connect returns a TLSSocket; hand back one that fails the same way a refused connection does.
            const socket = new tls.TLSSocket(null as any);
            processNextTick(() => {
              if (socket.listenerCount('error') === 0) socket.once('error', () => {});
              socket.destroy(denied);
            });
            return socket;
          }
        }
        return ReflectApply(original, this, args);
      },
  );
}
