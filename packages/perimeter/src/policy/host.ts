/**
 * Host normalisation. An attacker controls the spelling of a host, so every host is brought to one canonical
 * form before any rule sees it: lower case, no trailing dot, IDN as punycode, IPv4 in dotted decimal whatever
 * notation it arrived in (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`), IPv6
 * compressed without brackets or zone, and IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as the IPv4 it maps to.
 * The WHATWG URL host parser does most of this; it is the same parser `fetch` and `http` use on the way out.
 */
import { SafeMap, URLCtor, urlDomainToASCII } from '../pristine.js';

const cache = new SafeMap<string, string | null>();
const CACHE_LIMIT = 1024;

/** Returns the canonical host, or null when the string is not a host at all. */
export function normalizeHost(raw: string): string | null {
  const hit = cache.get(raw);
  if (hit !== undefined) return hit;
  const normalized = normalizeUncached(raw);
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(raw, normalized);
  return normalized;
}

function normalizeUncached(raw: string): string | null {
  let host = raw.trim();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  if (host.includes(':')) return normalizeIPv6(host);
  const ascii = urlDomainToASCII(host.toLowerCase());
  if (ascii === '') return null;
  return ascii.endsWith('.') ? ascii.slice(0, -1) : ascii;
}

function normalizeIPv6(host: string): string | null {
  const zone = host.indexOf('%');
  if (zone !== -1) host = host.slice(0, zone);
  let parsed: string;
  try {
    parsed = new URLCtor(`http://[${host}]/`).hostname.slice(1, -1);
  } catch {
    return null;
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(parsed);
  if (mapped) {
    const hi = Number.parseInt(mapped[1]!, 16);
    const lo = Number.parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return parsed;
}

export function isIPv4(host: string): boolean {
  return /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function isIPv6(host: string): boolean {
  return host.includes(':');
}

/** The form a host takes inside a URL: IPv6 goes back in brackets. */
export function hostForUrl(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}
