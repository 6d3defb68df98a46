/**
 * Glob matching for paths (URL paths now, file paths later): `*` matches within one segment, `**` matches any
 * number of whole segments (zero included). No regular expressions: a pattern with several `**` compiled to a
 * regex backtracks polynomially on hostile input, while this matcher is O(segments × pattern segments).
 */

import { StringCharCodeAt, StringStartsWith, splitString } from '../pristine.js';

export type GlobMatcher =
  | { kind: 'any' }
  | { kind: 'exact'; value: string }
  | { kind: 'prefix'; prefix: string } // `prefix/**`
  | { kind: 'segments'; segments: string[] };

export function compileGlob(pattern: string): GlobMatcher {
  if (pattern === '/**' || pattern === '**') return { kind: 'any' };
  if (!pattern.includes('*')) return { kind: 'exact', value: pattern };
  const tail = pattern.slice(0, -3);
  if (pattern.endsWith('/**') && !tail.includes('*')) return { kind: 'prefix', prefix: tail };
  return { kind: 'segments', segments: pattern.split('/') };
}

export function matchGlob(glob: GlobMatcher, value: string): boolean {
  switch (glob.kind) {
    case 'any':
      return true;
    case 'exact':
      return value === glob.value;
    case 'prefix':
      return (
        value === glob.prefix ||
        (StringStartsWith(value, glob.prefix) && StringCharCodeAt(value, glob.prefix.length) === 47)
      );
    case 'segments':
      return matchSegments(glob.segments, splitString(value, '/'));
  }
}

function matchSegments(pattern: string[], parts: string[]): boolean {
  // memo[i * (parts.length + 1) + j] === 1 once (i, j) is known not to match: bounds the work on `**` chains.
  const width = parts.length + 1;
  const failed = new Uint8Array((pattern.length + 1) * width);
  const visit = (i: number, j: number): boolean => {
    if (failed[i * width + j]) return false;
    let ok: boolean;
    if (i === pattern.length) ok = j === parts.length;
    else if (pattern[i] === '**') ok = visit(i + 1, j) || (j < parts.length && visit(i, j + 1));
    else ok = j < parts.length && matchSegment(pattern[i]!, parts[j]!) && visit(i + 1, j + 1);
    if (!ok) failed[i * width + j] = 1;
    return ok;
  };
  return visit(0, 0);
}

/** `*` within one segment; the classic linear-time wildcard walk with a single backtrack point. */
export function matchSegment(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    const pc = p < pattern.length ? StringCharCodeAt(pattern, p) : -1;
    if (pc !== -1 && pc !== 42 && pc === StringCharCodeAt(text, t)) {
      p++;
      t++;
    } else if (pc === 42) {
      star = p++;
      mark = t;
    } else if (star !== -1) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.length && StringCharCodeAt(pattern, p) === 42) p++;
  return p === pattern.length;
}
