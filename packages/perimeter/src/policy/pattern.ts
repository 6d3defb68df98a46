/**
 * Network patterns: `[METHOD[,METHOD…]] scheme://host[:port][/path-glob]` and `unix:/path-glob`.
 * Compiled once when the policy loads; matching reads the compiled form and allocates nothing on the common
 * shapes (exact host, `*.suffix`, `**.suffix`, literal or `prefix/**` paths).
 */
import { perimeterError } from '../errors.js';
import { StringEndsWith, StringLastIndexOf, splitString } from '../pristine.js';
import { compileGlob, type GlobMatcher, matchGlob, matchSegment } from './glob.js';
import { normalizeHost } from './host.js';

export type Scheme = 'http' | 'https' | 'ws' | 'wss' | 'tcp' | 'tls' | 'udp' | 'unix';
const SCHEMES: ReadonlySet<string> = new Set(['http', 'https', 'ws', 'wss', 'tcp', 'tls', 'udp', 'unix']);
export const DEFAULT_PORT: Readonly<Record<string, number>> = { http: 80, https: 443, ws: 80, wss: 443 };
/** Schemes whose traffic rides on a TCP connection: a socket-level check may be satisfied by any of them. */
export const TCP_SCHEMES: ReadonlySet<string> = new Set(['http', 'https', 'ws', 'wss', 'tcp', 'tls']);

export type HostMatcher =
  | { kind: 'any' }
  | { kind: 'exact'; host: string }
  | { kind: 'oneLabel'; suffix: string } // `*.example.com`
  | { kind: 'manyLabels'; suffix: string } // `**.example.com`
  | { kind: 'labels'; labels: string[] };

export interface NetworkRule {
  /** The pattern as written, for events and diffs. */
  source: string;
  /** Where it came from: `network.allow[2]` or `packages.stripe.network.allow[0]`. */
  key: string;
  methods: ReadonlySet<string> | null;
  scheme: Scheme;
  host: HostMatcher;
  /** `null` means any port. */
  port: number | null;
  path: GlobMatcher;
}

export function compileNetworkPattern(source: string, key: string, file: string): NetworkRule {
  const fail = (what: string, hint: string) =>
    perimeterError('ERR_PERIMETER_POLICY_PATTERN', `Invalid network pattern "${source}": ${what}`, {
      file,
      key,
      hint,
    });
  let rest = source.trim();
  let methods: Set<string> | null = null;
  const space = rest.indexOf(' ');
  if (space !== -1) {
    const methodPart = rest.slice(0, space);
    rest = rest.slice(space + 1).trim();
    if (methodPart !== '*') {
      methods = new Set();
      for (const m of methodPart.split(',')) {
        if (!/^[A-Za-z]+$/.test(m))
          throw fail(
            `"${m}" is not an HTTP method`,
            'write e.g. "POST https://api.example.com/v1/**" or "GET,HEAD https://…"',
          );
        methods.add(m.toUpperCase());
      }
    }
  }
  if (rest.startsWith('unix:')) {
    if (methods) throw fail('a method only applies to http(s)/ws(s), not unix', 'remove the method');
    const path = rest.slice(5);
    if (!path.startsWith('/')) throw fail('a unix socket path must be absolute', 'write e.g. "unix:/tmp/app.sock"');
    return { source, key, methods, scheme: 'unix', host: { kind: 'any' }, port: null, path: compileGlob(path) };
  }
  const schemeEnd = rest.indexOf('://');
  if (schemeEnd === -1) {
    throw fail(
      'no scheme',
      `write the scheme explicitly, e.g. "https://${rest}" (plain http:// never matches https:// and vice versa)`,
    );
  }
  const scheme = rest.slice(0, schemeEnd).toLowerCase();
  if (!SCHEMES.has(scheme))
    throw fail(`unknown scheme "${scheme}"`, 'use one of http, https, ws, wss, tcp, tls, udp, unix');
  if (methods && !(scheme in DEFAULT_PORT))
    throw fail(`a method only applies to http(s)/ws(s), not ${scheme}`, 'remove the method');
  rest = rest.slice(schemeEnd + 3);
  if (rest.includes('?') || rest.includes('#')) {
    throw fail(
      'query strings and fragments are not part of a pattern',
      'remove "?…": queries are ignored when matching',
    );
  }
  if (rest.includes('@')) throw fail('credentials are not part of a pattern', 'remove "user:pass@"');
  const slash = rest.indexOf('/');
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const pathPattern = slash === -1 ? '/**' : rest.slice(slash);
  let hostPart = authority;
  let portPart: string | null = null;
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    if (close === -1) throw fail('unclosed "[" in an IPv6 host', 'write e.g. "https://[::1]:8443"');
    hostPart = authority.slice(0, close + 1);
    const after = authority.slice(close + 1);
    if (after) {
      if (!after.startsWith(':')) throw fail('unexpected text after the IPv6 host', 'write e.g. "https://[::1]:8443"');
      portPart = after.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) {
      hostPart = authority.slice(0, colon);
      portPart = authority.slice(colon + 1);
    }
  }
  let port: number | null;
  if (portPart === null) {
    const implied = DEFAULT_PORT[scheme];
    if (implied === undefined)
      throw fail(
        `a ${scheme}:// pattern needs a port`,
        `write e.g. "${scheme}://${hostPart}:5432" or ":*" for any port`,
      );
    port = implied;
  } else if (portPart === '*') {
    port = null;
  } else if (/^\d{1,5}$/.test(portPart) && Number(portPart) <= 65535) {
    port = Number(portPart);
  } else {
    throw fail(`"${portPart}" is not a port`, 'a port is a number from 0 to 65535, or "*"');
  }
  return {
    source,
    key,
    methods,
    scheme: scheme as Scheme,
    host: compileHost(hostPart, fail),
    port,
    path: compileGlob(pathPattern),
  };
}

function compileHost(raw: string, fail: (what: string, hint: string) => Error): HostMatcher {
  if (raw === '') throw fail('no host', 'write e.g. "https://api.example.com"');
  if (raw === '*' || raw === '**') return { kind: 'any' };
  if (!raw.includes('*')) {
    const host = normalizeHost(raw);
    if (host === null)
      throw fail(`"${raw}" is not a valid host`, 'write a DNS name, an IPv4 address or an IPv6 address in brackets');
    return { kind: 'exact', host };
  }
  const labels = raw.toLowerCase().split('.');
  for (const label of labels) {
    if (label === '') throw fail(`empty label in host "${raw}"`, 'remove the doubled or trailing dot');
    if (label.includes('*') && label !== '*' && label !== '**' && !/^[a-z0-9-]*\*[a-z0-9-]*$/.test(label)) {
      throw fail(
        `"${label}" is not a host wildcard`,
        'use "*" for exactly one label, "**" for one or more labels, or one "*" inside a label ("api-*")',
      );
    }
  }
  const ascii = labels.map((l) => (l.includes('*') ? l : (normalizeHost(l) ?? l)));
  const suffix = ascii.slice(1).join('.');
  if (!suffix.includes('*')) {
    if (ascii[0] === '*') return { kind: 'oneLabel', suffix: `.${suffix}` };
    if (ascii[0] === '**') return { kind: 'manyLabels', suffix: `.${suffix}` };
  }
  return { kind: 'labels', labels: ascii };
}

export function matchHost(matcher: HostMatcher, host: string): boolean {
  switch (matcher.kind) {
    case 'any':
      return true;
    case 'exact':
      return host === matcher.host;
    case 'oneLabel':
      return (
        host.length > matcher.suffix.length &&
        StringEndsWith(host, matcher.suffix) &&
        StringLastIndexOf(host, '.', host.length - matcher.suffix.length - 1) === -1
      );
    case 'manyLabels':
      return host.length > matcher.suffix.length && StringEndsWith(host, matcher.suffix);
    case 'labels':
      return matchLabels(matcher.labels, 0, splitString(host, '.'), 0);
  }
}

function matchLabels(pattern: string[], i: number, labels: string[], j: number): boolean {
  if (i === pattern.length) return j === labels.length;
  const p = pattern[i]!;
  if (p === '**') {
    for (let k = j + 1; k <= labels.length; k++) if (matchLabels(pattern, i + 1, labels, k)) return true;
    return false;
  }
  return j < labels.length && matchSegment(p, labels[j]!) && matchLabels(pattern, i + 1, labels, j + 1);
}

export function matchPath(rule: NetworkRule, path: string): boolean {
  return matchGlob(rule.path, path);
}
