/**
 * Turns observed targets into rules that are as narrow as the evidence allows and no narrower than the function
 * needs: ids, UUIDs, hashes and tokens in URL path segments become `*` (the next request will carry another id),
 * query strings are dropped (rules cannot name them), and a host whose paths vary wildly gets one rule for the
 * common prefix. Deterministic: the same observations always give the same rules, in the same order.
 */

/** More distinct path shapes than this on one host (after generalising ids) → one rule for their common prefix. */
export const MAX_PATH_SHAPES_PER_HOST = 8;
/** Files seen in one folder at least this many times → `folder/**`. */
export const FILES_PER_FOLDER_FOR_GLOB = 3;
/** Sibling shapes that differ only in one segment, at least this many → that segment becomes `*`. */
const SIBLINGS_FOR_WILDCARD = 3;

const HTTP_SCHEMES = new Set(['http', 'https', 'ws', 'wss']);
const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443', ws: '80', wss: '443' };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NUMBER = /^\d+$/;
const HEX = /^[0-9a-f]{12,}$/i;
const DATE = /^\d{4}-\d{2}-\d{2}(T[\d:.]+Z?)?$/;
/** `ch_3MtwBwLkdIwHu7ix`, `cus_Nffr…`, `pi_…`: a short word, `_`, then an id. Keep the prefix: it says what kind. */
const PREFIXED_ID = /^([a-z]{1,12}_)(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{8,}$/;
/** A run of base64/base64url characters long enough, and mixed enough, not to be a word. */
const TOKEN = /^[A-Za-z0-9_\-+=~]{16,}$/;
/** `/tmp/upload-a8Xk2Q`: mkdtemp's random six characters after a separator. */
const TEMP_SUFFIX = /^(.+[-_.])([A-Za-z0-9]{6})$/;

/** Whether a path segment is an identifier rather than part of the API's shape; returns its generalised form. */
export function generaliseSegment(segment: string): string {
  if (segment === '' || segment === '*' || segment === '**') return segment;
  if (segment.includes('[REDACTED]')) return '*';
  let decoded = segment;
  try {
    decoded = decodeURIComponent(segment);
  } catch {}
  if (NUMBER.test(decoded) || UUID.test(decoded) || DATE.test(decoded)) return '*';
  if (HEX.test(decoded) && /\d/.test(decoded)) return '*';
  const prefixed = PREFIXED_ID.exec(decoded);
  if (prefixed) return `${prefixed[1]}*`;
  if (looksLikeToken(decoded)) return '*';
  // `3f9a…c1.png`, `IMG_20240301_123456.jpg`: keep the extension, generalise the name.
  const dot = decoded.lastIndexOf('.');
  if (dot > 0 && dot >= decoded.length - 6) {
    const name = decoded.slice(0, dot);
    const ext = decoded.slice(dot);
    if (/^\.[A-Za-z0-9]{1,5}$/.test(ext) && generaliseSegment(name) !== name) return `*${ext}`;
    if (/^\.[A-Za-z0-9]{1,5}$/.test(ext) && /\d{3,}/.test(name)) return `*${ext}`;
  }
  return segment.includes('*') ? segment.replaceAll(/\*+/g, '*') : segment;
}

function looksLikeToken(value: string): boolean {
  if (!TOKEN.test(value)) return false;
  const digits = (value.match(/\d/g) ?? []).length;
  const upper = (value.match(/[A-Z]/g) ?? []).length;
  const lower = (value.match(/[a-z]/g) ?? []).length;
  // Words (`list-objects-v2`, `getBucketLocation`) have few digits and long lower-case runs.
  const classes = [digits > 0, upper > 0, lower > 0].filter(Boolean).length;
  return classes >= 2 && (digits >= 2 || (upper >= 3 && lower >= 3)) && !/[a-z]{7,}/.test(value);
}

/** A network target broken into what a rule can express. */
export interface ParsedTarget {
  kind: 'http' | 'socket' | 'dns' | 'unix';
  method?: string;
  scheme?: string;
  host?: string;
  /** Present only when not the scheme's default. */
  port?: string;
  path?: string;
}

/**
 * Parses a network event target (docs/events.md, Targets): `METHOD scheme://host[:port]/path?query`,
 * `tcp://host:port`, `dns:host`, `unix:/path`. Returns null for anything else.
 */
export function parseNetworkTarget(target: string): ParsedTarget | null {
  const trimmed = target.trim();
  if (trimmed.startsWith('dns:')) {
    const host = trimmed.slice(4).toLowerCase();
    return host ? { kind: 'dns', host } : null;
  }
  if (trimmed.startsWith('unix:')) return { kind: 'unix', path: trimmed.slice(5) };
  const match = /^(?:([A-Za-z*][A-Za-z,*-]*)\s+)?([a-z][a-z0-9+.-]*):\/\/(.+)$/.exec(trimmed);
  if (!match) return null;
  const [, method, scheme, rest] = match as unknown as [string, string | undefined, string, string];
  let authority = rest;
  let pathPart = '';
  const slash = rest.search(/[/?#]/);
  if (slash >= 0) {
    authority = rest.slice(0, slash);
    pathPart = rest.slice(slash);
  }
  // Credentials are redacted in events, but never belong in a rule either way.
  authority = authority.slice(authority.lastIndexOf('@') + 1);
  let host = authority;
  let port: string | undefined;
  const portMatch = /^(\[[^\]]+\]|[^:]+):(\d+|\*)$/.exec(authority);
  if (portMatch) {
    host = portMatch[1]!;
    port = portMatch[2]!;
  }
  host = host.toLowerCase();
  if (!host) return null;
  if (HTTP_SCHEMES.has(scheme)) {
    if (port === DEFAULT_PORT[scheme]) port = undefined;
    const pathOnly = pathPart.replace(/[?#].*$/, '') || '/';
    return { kind: 'http', method: method?.toUpperCase(), scheme, host, port, path: pathOnly };
  }
  return { kind: 'socket', scheme, host, port };
}

export function hostKey(scheme: string, host: string, port: string | undefined): string {
  return `${scheme}://${host}${port ? `:${port}` : ''}`;
}

/** The generalised shape of a URL path: ids → `*`, trailing slash kept only for the root. */
export function generalisePath(pathname: string): string {
  const segments = pathname.split('/').slice(1);
  if (segments.length > 1 && segments.at(-1) === '') segments.pop();
  return `/${segments.map(generaliseSegment).join('/')}`;
}

export interface PathObservation {
  method?: string;
  /** Already generalised. */
  shape: string;
}

/**
 * From the (method, path shape) pairs seen on one host, the rules' path parts with their methods.
 * Methods are merged per path; sibling shapes that differ in one segment three or more times merge into `*`;
 * more than MAX_PATH_SHAPES_PER_HOST shapes collapse into `<common prefix>/**`.
 */
export function pathRulesForHost(observations: readonly PathObservation[]): Array<{ methods: string[]; path: string }> {
  const methodsByShape = new Map<string, Set<string>>();
  for (const { method, shape } of observations) {
    const set = methodsByShape.get(shape) ?? new Set<string>();
    set.add(method ?? '*');
    methodsByShape.set(shape, set);
  }
  mergeSiblings(methodsByShape);
  if (methodsByShape.size > MAX_PATH_SHAPES_PER_HOST) {
    const prefix = commonPrefix([...methodsByShape.keys()]);
    const methods = new Set<string>();
    for (const set of methodsByShape.values()) for (const m of set) methods.add(m);
    methodsByShape.clear();
    methodsByShape.set(prefix === '' ? '/**' : `${prefix}/**`, methods);
  }
  // Shapes covered by a `/**` shape of the same host are redundant when their methods are a subset.
  const result: Array<{ methods: string[]; path: string }> = [];
  for (const [path, set] of methodsByShape) {
    const methods = set.has('*') ? [] : [...set].sort();
    result.push({ methods, path });
  }
  return result.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function mergeSiblings(methodsByShape: Map<string, Set<string>>): void {
  let changed = true;
  while (changed) {
    changed = false;
    const shapes = [...methodsByShape.keys()].map((shape) => shape.split('/'));
    const groups = new Map<string, string[]>();
    for (const segments of shapes) {
      for (let i = 1; i < segments.length; i++) {
        if (segments[i] === '*' || segments[i] === '**') continue;
        const key = `${segments.length}|${i}|${[...segments.slice(0, i), '\0', ...segments.slice(i + 1)].join('/')}`;
        const list = groups.get(key) ?? [];
        list.push(segments.join('/'));
        groups.set(key, list);
      }
    }
    for (const [key, members] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (members.length < SIBLINGS_FOR_WILDCARD) continue;
      if (!members.every((member) => methodsByShape.has(member))) continue;
      const index = Number(key.split('|')[1]);
      const merged = members[0]!.split('/');
      merged[index] = '*';
      const mergedShape = merged.join('/');
      const methods = methodsByShape.get(mergedShape) ?? new Set<string>();
      for (const member of members) {
        for (const m of methodsByShape.get(member)!) methods.add(m);
        methodsByShape.delete(member);
      }
      methodsByShape.set(mergedShape, methods);
      changed = true;
      break;
    }
  }
}

function commonPrefix(shapes: readonly string[]): string {
  const split = shapes.map((shape) => shape.split('/').slice(1));
  const first = split[0] ?? [];
  let length = 0;
  while (
    length < first.length &&
    first[length] !== '*' &&
    split.every((segments) => segments.length > length + 1 && segments[length] === first[length])
  ) {
    length++;
  }
  return length === 0 ? '' : `/${first.slice(0, length).join('/')}`;
}

/** Formats a network rule: `GET,POST https://host[:port]/path`. */
export function formatHttpRule(methods: readonly string[], key: string, path: string): string {
  const prefix = methods.length > 0 ? `${methods.join(',')} ` : '';
  return `${prefix}${key}${path === '/**' ? '' : path}`;
}

/**
 * Folder globs for file paths: a folder in which FILES_PER_FOLDER_FOR_GLOB or more distinct files were seen
 * becomes `folder/**`; random temp-folder names (`upload-a8Xk2Q`) and id-like names become `*`.
 */
export function generaliseFsPaths(paths: readonly string[]): Map<string, string> {
  const shapeOf = new Map<string, string>();
  for (const original of paths) {
    const segments = original.split('/');
    const shaped = segments.map((segment, index) => {
      if (index === 0 || segment === '') return segment;
      const temp = TEMP_SUFFIX.exec(segment);
      if (temp && index < segments.length - 1 && /\d|[A-Z]/.test(temp[2]!) && /[a-z]/i.test(temp[2]!)) {
        return `${temp[1]}*`;
      }
      return generaliseSegment(segment);
    });
    shapeOf.set(original, shaped.join('/'));
  }
  const filesByFolder = new Map<string, Set<string>>();
  for (const shaped of shapeOf.values()) {
    const folder = shaped.slice(0, shaped.lastIndexOf('/')) || '/';
    const set = filesByFolder.get(folder) ?? new Set<string>();
    set.add(shaped);
    filesByFolder.set(folder, set);
  }
  const rules = new Map<string, string>();
  for (const [original, shaped] of shapeOf) {
    const folder = shaped.slice(0, shaped.lastIndexOf('/')) || '/';
    const useFolder = (filesByFolder.get(folder)?.size ?? 0) >= FILES_PER_FOLDER_FOR_GLOB && folder !== '/';
    rules.set(original, useFolder ? `${folder}/**` : shaped);
  }
  return rules;
}
