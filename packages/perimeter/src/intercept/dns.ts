/**
 * DNS: a name the policy would not let us connect to is never resolved, so data cannot leave encoded in
 * subdomains (`<secret>.attacker.example`) through the resolver. Covers dns.lookup (what net/http use),
 * dns.lookupService, every Resolver method (callback and promise forms) and the module-level functions that
 * Node binds from a default resolver.
 */
import { checkNetwork } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { isIPv4, isIPv6, normalizeHost } from '../policy/host.js';
import { getBuiltinModule, PromiseReject, processNextTick, ReflectApply } from '../pristine.js';
import { guardProperty } from './patch.js';

const RESOLVER_METHODS = [
  'resolve',
  'resolve4',
  'resolve6',
  'resolveAny',
  'resolveCaa',
  'resolveCname',
  'resolveMx',
  'resolveNaptr',
  'resolveNs',
  'resolvePtr',
  'resolveSoa',
  'resolveSrv',
  'resolveTlsa',
  'resolveTxt',
  'reverse',
] as const;

function dnsTarget(name: unknown): NetworkTarget {
  const raw = typeof name === 'string' ? name : String(name);
  return { kind: 'dns', method: '', scheme: 'dns', host: normalizeHost(raw) ?? raw, port: 0, path: '' };
}

/** An IP literal is not sent to any resolver by lookup (no query leaves the process), so it needs no check. */
function isLiteral(name: unknown): boolean {
  if (typeof name !== 'string') return false;
  const host = normalizeHost(name);
  return host !== null && (isIPv4(host) || isIPv6(host));
}

function callbackStyle(original: Function, { skipLiterals }: { skipLiterals: boolean }) {
  return function guardedDns(this: unknown, ...args: unknown[]) {
    if (!(skipLiterals && isLiteral(args[0]))) {
      const denied = checkNetwork(dnsTarget(args[0]));
      const callback = args[args.length - 1];
      if (denied && typeof callback === 'function') {
        processNextTick(callback as (e: Error) => void, denied);
        return {};
      }
      if (denied) throw denied;
    }
    return ReflectApply(original, this, args);
  };
}

function promiseStyle(original: Function, { skipLiterals }: { skipLiterals: boolean }) {
  return function guardedDns(this: unknown, ...args: unknown[]) {
    if (!(skipLiterals && isLiteral(args[0]))) {
      const denied = checkNetwork(dnsTarget(args[0]));
      if (denied) return PromiseReject(denied);
    }
    return ReflectApply(original, this, args);
  };
}

let patched = false;
let originalLookup: typeof import('node:dns').lookup | null = null;

/**
 * `dns.lookup` as Node made it. Captured when dns is patched, which happens before any user code can hold the
 * module; read on first use if dns was never patched, because then no user code can have replaced it. Reading it
 * lazily spares the cold start loading dns.
 */
export function originalDnsLookup(): typeof import('node:dns').lookup {
  originalLookup ??= (getBuiltinModule('dns') as typeof import('node:dns')).lookup;
  return originalLookup;
}

export function patchDns(dns: typeof import('node:dns')): void {
  if (patched) return;
  patched = true;
  originalLookup ??= dns.lookup;
  const lookupOptions = { skipLiterals: true };
  const resolveOptions = { skipLiterals: false };
  guardProperty(dns, 'lookup', (o) => callbackStyle(o, lookupOptions));
  guardProperty(dns, 'lookupService', (o) => callbackStyle(o, lookupOptions));
  for (const method of RESOLVER_METHODS) {
    guardProperty(dns.Resolver.prototype, method, (o) => callbackStyle(o, resolveOptions));
    // Node re-binds these from the (now guarded) prototype in dns.setServers(), so they must stay writable.
    guardProperty(dns, method, (o) => callbackStyle(o, resolveOptions), { writable: true });
  }
  const promises = dns.promises;
  guardProperty(promises, 'lookup', (o) => promiseStyle(o, lookupOptions));
  guardProperty(promises, 'lookupService', (o) => promiseStyle(o, lookupOptions));
  for (const method of RESOLVER_METHODS) {
    guardProperty(promises.Resolver.prototype, method, (o) => promiseStyle(o, resolveOptions));
    guardProperty(promises, method, (o) => promiseStyle(o, resolveOptions), { writable: true });
  }
}
