/**
 * Rule parsing and "does rule A allow everything rule B allows?" for every list in a policy. Used by learn (is
 * this observation already allowed?), `policy diff` (is a new rule a widening?) and `policy check` (is a rule
 * used by any event?). Conservative: when in doubt, a rule is NOT covered, so a diff reports a widening rather
 * than hiding one.
 */
import path from 'node:path';

export type Capability = 'network' | 'fs' | 'process' | 'env' | 'addon';

export interface NetworkRule {
  kind: 'url' | 'unix';
  /** Upper-case; empty = any method. */
  methods: string[];
  scheme: string;
  host: string;
  /** undefined = the scheme's default. */
  port?: string;
  /** Path glob; `/**` when omitted. */
  path: string;
}

const DEFAULT_PORT: Record<string, string> = { http: '80', https: '443', ws: '80', wss: '443' };
export const TCP_CARRIED = new Set(['http', 'https', 'ws', 'wss', 'tcp', 'tls']);

export function parseNetworkRule(rule: string): NetworkRule | null {
  const text = rule.trim();
  if (text.startsWith('unix:')) return { kind: 'unix', methods: [], scheme: 'unix', host: '', path: text.slice(5) };
  const match = /^(?:([A-Za-z*][A-Za-z,*]*)\s+)?([a-z]+):\/\/([^/]+)(\/.*)?$/i.exec(text);
  if (!match) return null;
  const methods = (match[1] ?? '')
    .split(',')
    .map((m) => m.trim().toUpperCase())
    .filter((m) => m !== '');
  const scheme = match[2]!.toLowerCase();
  let host = match[3]!.toLowerCase();
  let port: string | undefined;
  const portMatch = /^(\[[^\]]+\]|[^:]+):(\d+|\*)$/.exec(host);
  if (portMatch) {
    host = portMatch[1]!;
    port = portMatch[2]!;
  }
  if (port !== undefined && port === DEFAULT_PORT[scheme]) port = undefined;
  return {
    kind: 'url',
    methods: methods.includes('*') ? [] : methods,
    scheme,
    host,
    port,
    path: match[4] ?? '/**',
  };
}

export function effectivePort(rule: { scheme: string; port?: string }): string | undefined {
  return rule.port ?? DEFAULT_PORT[rule.scheme];
}

/** Whether one glob segment allows everything another allows (`*` in `inner` is treated as "anything"). */
function segmentCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  if (inner === '**') return false;
  if (outer === '*' || outer === '**') return true;
  if (!outer.includes('*')) return false;
  // outer is `ch_*` or `*.png`: its `*` must absorb inner's wildcards, so match inner as literal text.
  const star = outer.indexOf('*');
  const before = outer.slice(0, star);
  const after = outer.slice(star + 1);
  if (after.includes('*')) return false;
  return inner.length >= before.length + after.length && inner.startsWith(before) && inner.endsWith(after);
}

/** Sequence cover with `**` as any number of segments (`minDouble`: how many `**` must match at least). */
function sequenceCovers(outer: readonly string[], inner: readonly string[], minDouble: 0 | 1): boolean {
  const memo = new Map<string, boolean>();
  const go = (i: number, j: number): boolean => {
    const key = `${i},${j}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let result: boolean;
    if (i === outer.length) result = j === inner.length;
    else if (outer[i] === '**') {
      result = false;
      for (let k = j + minDouble; k <= inner.length && !result; k++) result = go(i + 1, k);
    } else result = j < inner.length && segmentCovers(outer[i]!, inner[j]!) && go(i + 1, j + 1);
    memo.set(key, result);
    return result;
  };
  return go(0, 0);
}

export function pathGlobCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  return sequenceCovers(outer.split('/'), inner.split('/'), 0);
}

export function hostCovers(outer: string, inner: string): boolean {
  if (outer === '*' || outer === '**') return true;
  if (outer === inner) return true;
  return sequenceCovers(outer.split('.'), inner.split('.'), 1);
}

export function networkRuleCovers(outerText: string, innerText: string): boolean {
  const outer = parseNetworkRule(outerText);
  const inner = parseNetworkRule(innerText);
  if (!outer || !inner) return outerText.trim() === innerText.trim();
  if (outer.kind !== inner.kind) return false;
  if (outer.kind === 'unix') return pathGlobCovers(outer.path, inner.path);
  if (outer.scheme !== inner.scheme) return false;
  if (outer.methods.length > 0) {
    if (inner.methods.length === 0) return false;
    if (!inner.methods.every((m) => outer.methods.includes(m))) return false;
  }
  if (outer.port !== '*' && effectivePort(outer) !== effectivePort(inner)) return false;
  return hostCovers(outer.host, inner.host) && pathGlobCovers(outer.path, inner.path);
}

/** Whether a network rule lets a DNS lookup of `host` through (any rule naming the host does). */
export function ruleAllowsLookup(ruleText: string, host: string): boolean {
  const rule = parseNetworkRule(ruleText);
  return rule?.kind === 'url' && hostCovers(rule.host, host);
}

/** Whether a rule lets a raw socket to host:port through (any TCP-carried rule for that host and port). */
export function ruleAllowsSocket(ruleText: string, scheme: string, host: string, port: string | undefined): boolean {
  const rule = parseNetworkRule(ruleText);
  if (rule?.kind !== 'url' || !hostCovers(rule.host, host)) return false;
  if (scheme === 'udp') return rule.scheme === 'udp' && (rule.port === '*' || rule.port === port);
  return TCP_CARRIED.has(rule.scheme) && (rule.port === '*' || effectivePort(rule) === port);
}

/** Splits a process rule or target into words; `"…"` keeps spaces. */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  const pattern = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const match of text.matchAll(pattern)) words.push(match[1] ?? match[2]!);
  return words;
}

export function quoteWord(word: string): string {
  return /[\s"]/.test(word) || word === '' ? `"${word.replaceAll('"', '\\"')}"` : word;
}

function programCovers(outer: string, inner: string): boolean {
  if (outer === inner) return true;
  // A bare name is resolved through PATH by the runtime; offline, the best we can do is compare names.
  if (!outer.includes('/') || !inner.includes('/')) return path.basename(outer) === path.basename(inner);
  return false;
}

export function processRuleCovers(outerText: string, innerText: string): boolean {
  const [outerProgram, ...outerArgs] = splitWords(outerText);
  const [innerProgram, ...innerArgs] = splitWords(innerText);
  if (!outerProgram || !innerProgram || !programCovers(outerProgram, innerProgram)) return false;
  if (outerArgs.length === 0) return true;
  if (innerArgs.length === 0) return false;
  return sequenceCovers(outerArgs, innerArgs, 0);
}

export function envRuleCovers(outer: string, inner: string): boolean {
  return segmentCovers(outer, inner);
}

export function fsRuleCovers(outer: string, inner: string, base?: string): boolean {
  const absolute = (rule: string) =>
    base && !rule.startsWith('/') && !rule.startsWith('~') ? path.posix.join(base, rule) : rule;
  return pathGlobCovers(absolute(outer), absolute(inner));
}

export function ruleCovers(capability: Capability, outer: string, inner: string, base?: string): boolean {
  switch (capability) {
    case 'network':
      return networkRuleCovers(outer, inner);
    case 'fs':
    case 'addon':
      return fsRuleCovers(outer, inner, base);
    case 'process':
      return processRuleCovers(outer, inner);
    case 'env':
      return envRuleCovers(outer, inner);
  }
}
