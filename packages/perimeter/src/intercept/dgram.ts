/**
 * UDP: `dgram.Socket.prototype.send` and `.connect`. A connected socket was judged when it connected; an
 * unconnected send is judged per destination.
 */
import { checkNetwork } from '../guard.js';
import { normalizeHost } from '../policy/host.js';
import { processNextTick, ReflectApply } from '../pristine.js';
import { failWith, guardProperty } from './patch.js';

interface DgramSocketLike {
  type?: string;
  remoteAddress(): unknown;
  emit(e: string, ...a: unknown[]): boolean;
  listenerCount(e: string): number;
  once(e: string, f: () => void): unknown;
}

function defaultAddress(socket: DgramSocketLike): string {
  return socket.type === 'udp6' ? '::1' : '127.0.0.1';
}

function udpCheck(socket: DgramSocketLike, port: unknown, address: unknown) {
  const raw = typeof address === 'string' && address !== '' ? address : defaultAddress(socket);
  return checkNetwork({
    kind: 'udp',
    method: '',
    scheme: 'udp',
    host: normalizeHost(raw) ?? raw,
    port: Number(port) || 0,
    path: '',
  });
}

function isConnected(socket: DgramSocketLike): boolean {
  try {
    socket.remoteAddress();
    return true;
  } catch {
    return false;
  }
}

let patched = false;

export function patchDgram(dgram: typeof import('node:dgram')): void {
  if (patched) return;
  patched = true;
  const proto = dgram.Socket.prototype as unknown as object;
  guardProperty(
    proto,
    'send',
    (original) =>
      function send(this: DgramSocketLike, ...args: unknown[]) {
        if (!isConnected(this)) {
          // Same shapes as Node: send(msg, offset, length, port, address, cb) or send(msg, port, address, cb).
          const long =
            args[4] !== undefined && typeof args[4] !== 'function'
              ? true
              : typeof args[3] === 'number' ||
                (typeof args[3] === 'string' && typeof args[1] === 'number' && typeof args[2] === 'number');
          const port = long ? args[3] : args[1];
          const address = long ? args[4] : args[2];
          const denied = udpCheck(this, port, typeof address === 'function' ? undefined : address);
          if (denied) {
            const callback = args.find((a) => typeof a === 'function') as ((e: Error) => void) | undefined;
            if (callback) processNextTick(callback, denied);
            else processNextTick(() => failWith(this, denied));
            return;
          }
        }
        return ReflectApply(original, this, args);
      },
  );
  guardProperty(
    proto,
    'connect',
    (original) =>
      function connect(this: DgramSocketLike, ...args: unknown[]) {
        const address = typeof args[1] === 'string' ? args[1] : undefined;
        const denied = udpCheck(this, args[0], address);
        if (denied) {
          const callback = args.find((a) => typeof a === 'function') as ((e: Error) => void) | undefined;
          processNextTick(() => (callback ? callback(denied) : failWith(this, denied)));
          return;
        }
        return ReflectApply(original, this, args);
      },
  );
}
