/**
 * Host normalisation. An attacker controls the spelling of a host, so every host is brought to one canonical
 * form before any rule sees it: lower case, no trailing dot, IDN as punycode, IPv4 in dotted decimal whatever
 * notation it arrived in (decimal `2130706433`, octal `0177.0.0.1`, hex `0x7f.1`, short `127.1`), IPv6
 * compressed without brackets or zone, and IPv4-mapped IPv6 (`::ffff:127.0.0.1`) as the IPv4 it maps to.
 * The WHATWG URL host parser does most of this; it is the same parser `fetch` and `http` use on the way out.
 */
import {
  MapClear,
  MapGet,
  MapSet,
  MapSize,
  RegExpExec,
  SafeMap,
  StringEndsWith,
  StringIncludes,
  StringIndexOf,
  StringSlice,
  StringStartsWith,
  StringToLowerCase,
  StringTrim,
  URLCtor,
  urlDomainToASCII,
} from '../pristine.js';

const cache = new SafeMap<string, string | null>();
const CACHE_LIMIT = 1024;

/** Returns the canonical host, or null when the string is not a host at all. */
export function normalizeHost(raw: string): string | null {
  const hit = MapGet(cache, raw);
  if (hit !== undefined) return hit;
  const normalized = normalizeUncached(raw);
  if (MapSize(cache) >= CACHE_LIMIT) MapClear(cache);
  MapSet(cache, raw, normalized);
  return normalized;
}

// The control characters (\p{Cc}: exactly U+0000–U+001F and U+007F–U+009F) spelled as ranges: a \p{…} class makes V8
// build a Unicode property set on first use, ~0.2 ms of every cold start (the first policy host goes through here).
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const NOT_IN_A_HOST = /[\s/?#\\%@\u0000-\u001f\u007f-\u009f]/;

function normalizeUncached(raw: string): string | null {
  let host = StringTrim(raw);
  const bracketed = StringStartsWith(host, '[') && StringEndsWith(host, ']');
  if (bracketed) host = StringSlice(host, 1, -1);
  if (StringIncludes(host, ':')) return normalizeIPv6(host);
  if (bracketed) return null; // brackets hold an IPv6 address, never a name: "[evil.com]" is not evil.com
  // domainToASCII parses like a URL: it stops at "/", "?", "#" or "\\", drops tabs and decodes "%2e", so
  // "allowed.com/x" would read as allowed.com while the connection looks up the whole string. Not a host.
  if (RegExpExec(NOT_IN_A_HOST, host) !== null) return null;
  const ascii = urlDomainToASCII(StringToLowerCase(host));
  const canonical = StringEndsWith(ascii, '.') ? StringSlice(ascii, 0, -1) : ascii;
  // domainToASCII accepts empty labels ("a..b", ".", "x.."); no DNS name has one, and a rule must not either.
  if (
    canonical === '' ||
    StringStartsWith(canonical, '.') ||
    StringEndsWith(canonical, '.') ||
    StringIncludes(canonical, '..')
  )
    return null;
  return canonical;
}

function normalizeIPv6(host: string): string | null {
  const zone = StringIndexOf(host, '%');
  if (zone !== -1) host = StringSlice(host, 0, zone);
  // Only address characters go into the URL below: "::1]@evil.com/[" must not parse as a URL with a host.
  if (RegExpExec(/^[0-9a-fA-F:.]+$/, host) === null) return null;
  let parsed: string;
  try {
    parsed = StringSlice(new URLCtor(`http://[${host}]/`).hostname, 1, -1);
  } catch {
    return null;
  }
  const mapped = RegExpExec(/^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/, parsed);
  if (mapped) {
    const hi = Number.parseInt(mapped[1]!, 16);
    const lo = Number.parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return parsed;
}

export function isIPv4(host: string): boolean {
  return RegExpExec(/^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/, host) !== null;
}

export function isIPv6(host: string): boolean {
  return StringIncludes(host, ':');
}

/** The form a host takes inside a URL: IPv6 goes back in brackets. */
export function hostForUrl(host: string): string {
  return isIPv6(host) ? `[${host}]` : host;
}

/**
 * Addresses a DNS name must never lead to unless a rule names the address itself: the cloud metadata services
 * (link-local 169.254.0.0/16 with the AWS, GCP, Azure and ECS endpoints, AWS's IPv6 fd00:ec2::254, Alibaba's
 * 100.100.100.200) and "this host" (0.0.0.0/8, ::), which reaches the machine itself. A name such as
 * `169.254.169.254.nip.io`, or one an attacker re-points after the policy check (DNS rebinding), is the classic
 * way an allowed-looking URL reaches the credentials endpoint. `host` is normalised.
 */
export function isMetadataOrUnspecified(host: string): boolean {
  if (isIPv4(host)) {
    return StringStartsWith(host, '169.254.') || StringStartsWith(host, '0.') || host === '100.100.100.200';
  }
  if (!isIPv6(host)) return false;
  if (host === '::' || host === 'fd00:ec2::254') return true;
  // fe80::/10: the first group is fe80 … febf.
  const first = StringSlice(host, 0, 4);
  return (
    StringSlice(first, 0, 2) === 'fe' &&
    StringIncludes('89ab', StringSlice(first, 2, 3)) &&
    StringIndexOf(host, ':') === 4
  );
}
