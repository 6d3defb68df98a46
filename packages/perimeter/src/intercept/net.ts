/**
 * Raw TCP and TLS: `net.Socket.prototype.connect` is the one place every TCP client connection in Node passes
 * through (net.connect, new net.Socket().connect, tls.connect, https, http2, and undici underneath fetch).
 * Judged by host and port; a TLS servername is judged too, so SNI cannot name a host the policy denies.
 */
import { type CapturedStack, captureCallers, packagesOf } from '../attribution.js';
import { checkNetwork, checkResolvedAddress, wouldAllow } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { isIPv4, isIPv6, normalizeHost } from '../policy/host.js';
import { ArrayIsArray, getBuiltinModule, processNextTick, ReflectApply } from '../pristine.js';
import { originalDnsLookup } from './dns.js';
import { guardProperty, snapshotOptions } from './patch.js';

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
// Where each socket was asked to connect: an HTTP request on a socket made by a custom `createConnection` is
// judged by the port it really goes to, not by a Host header the caller controls.
const destinations = new WeakMap<object, { host: string; port: number }>();

export function socketDestination(socket: unknown): { host: string; port: number } | undefined {
  return typeof socket === 'object' && socket !== null ? destinations.get(socket) : undefined;
}

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
          // The check and the connection must read the same values: an options object whose getters answer
          // an allowed port first and another one later would otherwise pass (tamper suite).
          snapshotConnectArgs(args);
          const options = connectOptions(args);
          const target = socketTarget(options, isTls ? 'tls' : 'tcp');
          if (target.kind === 'socket') destinations.set(this, { host: target.host, port: target.port });
          const denied = checkNetwork(target);
          if (!denied && target.kind === 'socket' && !isIP(target.host)) {
            // The name is allowed; what it resolves to is judged too (metadata / this-host answers, see
            // checkResolvedAddress). A caller-supplied resolver could also answer "allowed.example is
            // 203.0.113.9": its answers must be addresses the policy allows or the system resolver also gives.
            const callers = captureCallers();
            const lookup =
              typeof options.lookup === 'function'
                ? verifiedLookup(options.lookup as LookupFunction, target)
                : (systemLookup as LookupFunction);
            args = withLookup(args, options, resolvedAddressGuard(lookup, target, callers));
          }
          if (denied) {
            // Fails like a refused connection: an async 'error' then 'close', nothing sent, no lookup done. Until
            // then it reads as connecting, or http2 and tls would take it for an open connection and go on.
            (this as { connecting?: boolean }).connecting = true;
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

type LookupCallback = (err: Error | null, address?: unknown, family?: number) => void;
type LookupFunction = (hostname: string, options: unknown, callback: LookupCallback) => void;

function isIP(host: string): boolean {
  return isIPv4(host) || isIPv6(host);
}

/** Replaces the lookup in whichever argument form net.connect / socket.connect was given. */
function withLookup(args: unknown[], options: Record<string, unknown>, lookup: LookupFunction): unknown[] {
  const replaced = { ...options, lookup };
  const first = args[0];
  if (Array.isArray(first)) {
    // net's internal normalised form carries a symbol marker on the array itself: keep the array, swap the object.
    const copy = first.slice();
    for (const key of Object.getOwnPropertySymbols(first)) (copy as any)[key] = (first as any)[key];
    copy[0] = replaced;
    return [copy, ...args.slice(1)];
  }
  return [replaced, ...args.slice(1)];
}

function verifiedLookup(userLookup: LookupFunction, target: NetworkTarget): LookupFunction {
  return function lookup(hostname, lookupOptions, callback) {
    userLookup(hostname, lookupOptions, (err, address, family) => {
      if (err) return callback(err, address, family);
      const answers = Array.isArray(address) ? address.map((a: { address: string }) => a.address) : [String(address)];
      const unexplained = answers.filter((a) => !wouldAllow({ ...target, host: normalizeHost(a) ?? a }));
      if (unexplained.length === 0) return callback(null, address, family);
      // The system resolver checks a caller-supplied lookup's answers.
      originalDnsLookup()(hostname, { all: true }, (systemErr, systemAnswers) => {
        const known = new Set(
          systemErr ? [] : (systemAnswers as Array<{ address: string }>).map((a) => normalizeHost(a.address)),
        );
        if (unexplained.every((a) => known.has(normalizeHost(a)))) return callback(null, address, family);
        const denied = checkNetwork({ ...target, host: normalizeHost(unexplained[0]!) ?? unexplained[0]! });
        if (denied) return callback(denied);
        callback(null, address, family);
      });
    });
  };
}

/** The lookup net would use by default, read at call time like net does (the guarded dns.lookup). */
function systemLookup(hostname: string, lookupOptions: unknown, callback: LookupCallback): void {
  (getBuiltinModule('dns') as typeof import('node:dns')).lookup(hostname, lookupOptions as any, callback as any);
}

function resolvedAddressGuard(lookup: LookupFunction, target: NetworkTarget, callers: CapturedStack): LookupFunction {
  return function lookupChecked(hostname, lookupOptions, callback) {
    lookup(hostname, lookupOptions, (err, address, family) => {
      if (err) return callback(err, address, family);
      const answers = ArrayIsArray(address)
        ? (address as Array<{ address: string }>).map((a) => a.address)
        : [String(address)];
      for (let i = 0; i < answers.length; i++) {
        const denied = checkResolvedAddress(target, hostname, answers[i]!, () => packagesOf(callers));
        if (denied) return callback(denied);
      }
      callback(null, address, family);
    });
  };
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
            (socket as { connecting: boolean }).connecting = true;
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

/** Replaces an options argument (or net's internal `[options, cb]` form) with a plain copy read once. */
function snapshotConnectArgs(args: unknown[]): void {
  const first = args[0];
  if (ArrayIsArray(first)) {
    // net's own normalised form carries a private symbol on the array itself: keep the array, copy its options.
    const options = first[0];
    if (options !== null && typeof options === 'object') first[0] = snapshotOptions(options);
  } else if (first !== null && typeof first === 'object') {
    args[0] = snapshotOptions(first);
  }
}
