/**
 * Path traversal and local file inclusion. Encodings are undone by the decoding layers before this runs (so
 * `%2e%2e%2f`, `%252e`, overlong `%c0%af` arrive as `../`); here backslashes count as separators (Windows, and
 * servers that normalise them), and `..;/` (servlet path parameters) counts as `..`. A path is an attack when it
 * climbs above where it starts: `docs/../README.md` stays inside and is fine, `images/../../../etc/hosts` is not.
 * `....//` is flagged too: filters that strip `../` once turn it into `../`. Absolute references to files that are
 * only ever read by an attacker (/etc/passwd, /proc/self/environ, service-account tokens, win.ini) are flagged
 * wherever they appear. One pass per whitespace-separated token.
 */
import type { Hit } from '../types.js';

const SENSITIVE = [
  '/etc/passwd',
  '/etc/shadow',
  '/etc/hosts',
  '/etc/group',
  '/etc/issue',
  '/etc/sudoers',
  '/proc/self/',
  '/proc/version',
  '/var/run/secrets/',
  '/root/',
  '/.ssh/',
  '/windows/win.ini',
  '/windows/system32/',
  '/winnt/',
  '/boot.ini',
  '/web-inf/web.xml',
  '/.aws/credentials',
  '/var/log/',
];

function climbs(token: string): boolean {
  // A URL's path cannot climb above its root: the URL parser clamps it. Only the path part is looked at.
  const scheme = token.indexOf('://');
  if (scheme !== -1 && scheme < 12 && !token.startsWith('file:')) return false;
  let depth = 0;
  let segment = '';
  for (let i = 0; i <= token.length; i++) {
    const c = i < token.length ? token[i] : '/';
    if (c === '/' || c === '\\') {
      if (segment === '..' || segment === '..;') {
        if (--depth < 0) return true;
      } else if (segment !== '' && segment !== '.') depth++;
      segment = '';
    } else segment += c;
    if (segment.length > 4096) segment = segment.slice(-8);
  }
  return false;
}

export function detectTraversal(value: string): Hit | null {
  if (!value.includes('..') && !value.includes('/') && !value.includes('\\')) return null;
  const lower = value.toLowerCase();
  const normalized = lower.includes('\\') ? lower.replaceAll('\\', '/') : lower;
  const evasion = normalized.indexOf('....//');
  if (evasion !== -1) return { fragment: value.slice(evasion, evasion + 60), confidence: 'high' };
  return (value.includes('..') ? climbingToken(value) : null) ?? sensitivePath(value, normalized);
}

/** The character after the leading `/` of each sensitive path: a `/` followed by anything else starts none. */
const SENSITIVE_SECOND = new Set(SENSITIVE.map((path) => path[1]));

function sensitivePath(value: string, normalized: string): Hit | null {
  // One pass over the slashes first: most paths and URLs name no sensitive file, and then the searches below,
  // one per entry, are skipped.
  let candidate = false;
  for (let at = normalized.indexOf('/'); at !== -1 && !candidate; at = normalized.indexOf('/', at + 1))
    candidate = SENSITIVE_SECOND.has(normalized[at + 1]);
  if (!candidate) return null;
  for (const path of SENSITIVE) {
    const at = normalized.indexOf(path);
    if (at !== -1) return { fragment: value.slice(Math.max(0, at - 40), at + path.length + 20), confidence: 'medium' };
  }
  return null;
}

function climbingToken(value: string): Hit | null {
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    const c = value.charCodeAt(i);
    if (i === value.length || c === 32 || c === 10 || c === 9 || c === 13) {
      if (i > start + 1) {
        const token = value.slice(start, i);
        if (token.includes('..') && climbs(token)) return { fragment: token.slice(0, 100), confidence: 'high' };
      }
      start = i + 1;
    }
  }
  return null;
}
