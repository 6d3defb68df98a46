/**
 * Server-side request forgery: a URL in the input whose host is the machine itself, the cloud metadata service or
 * a private network. The host is normalised with the guard's own normaliser (policy/host.ts), so every spelling an
 * HTTP client accepts — decimal `2130706433`, hex `0x7f000001`, octal `0177.0.0.1`, short `127.1`, IPv4-mapped
 * IPv6 — is classified by the address it means. Wildcard DNS services that echo an address in the name
 * (`169.254.169.254.nip.io`) are classified by that address. DNS names that merely resolve to a private address
 * are out of reach here (no lookup on the hot path); the network guard judges their answers at connect time
 * (guard.ts checkResolvedAddress).
 */
import { normalizeHost } from '../../policy/host.js';
import type { Hit } from '../types.js';

const INTERNAL_NAMES = new Set([
  'localhost',
  'metadata.google.internal',
  'metadata',
  'instance-data',
  'kubernetes.default',
]);
const ECHO_DNS_SUFFIXES = ['.nip.io', '.sslip.io', '.xip.io', '.nip.direct', '.localtest.me'];

function ipv4Internal(host: string): string | null {
  const parts = host.split('.');
  if (parts.length !== 4) return null;
  const octets = parts.map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : -1));
  const [a, b] = octets as [number, number, number, number];
  if (octets.some((octet) => octet < 0 || octet > 255)) return null;
  if (a === 127) return 'loopback';
  if (a === 0) return 'this-host';
  if (a === 169 && b === 254) return 'link-local/metadata';
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return 'private';
  if (a === 100 && b >= 64 && b <= 127) return 'shared-address-space';
  return null;
}

function ipv6Internal(host: string): string | null {
  if (host === '::1' || host === '::') return 'loopback';
  const first = Number.parseInt(host.split(':')[0] || '0', 16);
  if ((first & 0xfe00) === 0xfc00) return 'unique-local';
  if ((first & 0xffc0) === 0xfe80) return 'link-local';
  if (host.startsWith('fd00:ec2::254')) return 'metadata';
  return null;
}

/** Why the host is internal, or null. */
export function internalHost(rawHost: string): string | null {
  const host = normalizeHost(rawHost);
  if (host === null) return null;
  if (host.includes(':')) return ipv6Internal(host);
  const v4 = ipv4Internal(host);
  if (v4) return v4;
  if (INTERNAL_NAMES.has(host) || host.endsWith('.localhost') || host.endsWith('.internal')) return 'internal name';
  for (const suffix of ECHO_DNS_SUFFIXES) {
    if (host.endsWith(suffix)) {
      const name = host.slice(0, -suffix.length);
      const embedded = name.split('.').slice(-4).join('.');
      const dashed = name.split('.').at(-1)?.replaceAll('-', '.') ?? '';
      if (ipv4Internal(embedded) || ipv4Internal(dashed)) return 'wildcard DNS to an internal address';
    }
  }
  return null;
}

/** The host of the URL whose authority starts at `at` (after `//`), userinfo and port removed. */
function hostAt(value: string, at: number): { host: string; end: number } {
  let end = at;
  while (end < value.length && end - at < 512) {
    const c = value[end]!;
    if (c === '/' || c === '?' || c === '#' || c === '\\' || c === ' ' || c === '"' || c === "'" || c === '\n') break;
    end++;
  }
  let authority = value.slice(at, end);
  const userinfo = authority.lastIndexOf('@');
  if (userinfo !== -1) authority = authority.slice(userinfo + 1);
  let host = authority;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    host = close === -1 ? authority : authority.slice(0, close + 1);
  } else {
    const colon = authority.indexOf(':');
    if (colon !== -1) host = authority.slice(0, colon);
  }
  return { host, end };
}

export function detectSsrf(value: string): Hit | null {
  let from = 0;
  for (let checked = 0; checked < 64; checked++) {
    const slashes = value.indexOf('//', from);
    if (slashes === -1) return null;
    from = slashes + 2;
    // A URL (`scheme://`) or a protocol-relative reference at the start of the value.
    const isUrl = (slashes > 0 && value[slashes - 1] === ':') || value.trimStart().startsWith('//');
    if (!isUrl) continue;
    const { host, end } = hostAt(value, slashes + 2);
    if (host === '') continue;
    if (internalHost(host)) {
      let start = slashes;
      while (start > 0 && slashes - start < 12 && /[a-z0-9+.-]/i.test(value[start - 1]!)) start--;
      return { fragment: value.slice(start, Math.min(end + 40, start + 120)), confidence: 'high' };
    }
  }
  return null;
}
