/**
 * Detectors that look at the shape of the input rather than at text: object keys from parsed JSON and
 * query-string keys with bracket or dot paths (`user[$ne]=`, `__proto__[isAdmin]=`), which body parsers such as
 * qs and body-parser turn into nested objects.
 */
import type { Hit } from '../types.js';

/** MongoDB query and update operators an attacker can smuggle into a filter built from input. */
const MONGO_OPERATORS = new Set([
  '$ne',
  '$eq',
  '$gt',
  '$gte',
  '$lt',
  '$lte',
  '$in',
  '$nin',
  '$regex',
  '$where',
  '$exists',
  '$or',
  '$and',
  '$nor',
  '$not',
  '$expr',
  '$elemmatch',
  '$function',
  '$accumulator',
  '$jsonschema',
  '$type',
  '$mod',
  '$all',
  '$size',
  '$text',
  '$search',
  '$options',
  '$set',
  '$unset',
  '$inc',
  '$push',
  '$rename',
  '$lookup',
  '$merge',
  '$out',
]);

/** `a[b][$ne]`, `a.b.c`, `a[]` → the segments a body parser would nest under. Linear in the key. */
export function keySegments(key: string): string[] {
  const segments: string[] = [];
  let current = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i];
    if (c === '[' || c === ']' || c === '.') {
      if (current !== '') segments.push(current);
      current = '';
    } else current += c;
  }
  if (current !== '') segments.push(current);
  return segments;
}

export function detectMongoOperator(segment: string): Hit | null {
  if (segment.charCodeAt(0) !== 36 /* $ */) return null;
  return MONGO_OPERATORS.has(segment.toLowerCase()) ? { fragment: segment, confidence: 'high' } : null;
}

/**
 * A key path that reaches Object.prototype when merged or assigned: `__proto__` anywhere, or `constructor`
 * followed by `prototype`. `constructor` alone is an ordinary word (a JSON field named "constructor" is fine).
 */
export function detectPollutionPath(segments: readonly string[]): Hit | null {
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i];
    if (segment === '__proto__') return { fragment: segments.slice(0, i + 2).join('.'), confidence: 'high' };
    if (segment === 'constructor' && segments[i + 1] === 'prototype')
      return { fragment: segments.slice(0, i + 3).join('.'), confidence: 'high' };
  }
  return null;
}

/**
 * A string value that is itself a property path into an object (lodash `set(obj, input, …)`, `_.get`, dot-path
 * config setters). Only whitespace-free values count: "__proto__ is deprecated" is prose about it, not a path.
 */
export function detectPollutionValue(value: string): Hit | null {
  // 'proto' is in both '__proto__' and 'prototype': one search instead of two.
  if (value.length > 512 || !value.includes('proto')) return null;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c <= 32) return null;
  }
  const found = detectPollutionPath(keySegments(value));
  return found ? { fragment: value.slice(0, 100), confidence: 'medium' } : null;
}
