// Path globs: `*` within one segment, `**` any number of whole segments, in linear-ish time on hostile input.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as GlobModule from '../../src/policy/glob.js';

const { compileGlob, matchGlob, matchSegment } = require('../../../dist/policy/glob.js') as typeof GlobModule;

function matches(pattern: string, value: string): boolean {
  return matchGlob(compileGlob(pattern), value);
}

function assertMatches(pattern: string, yes: string[], no: string[]) {
  for (const value of yes) assert.equal(matches(pattern, value), true, `${pattern} should match ${value}`);
  for (const value of no) assert.equal(matches(pattern, value), false, `${pattern} should not match ${value}`);
}

describe('compileGlob picks the cheapest matcher', () => {
  test('shapes', () => {
    assert.deepEqual(compileGlob('/**'), { kind: 'any' });
    assert.deepEqual(compileGlob('**'), { kind: 'any' });
    assert.deepEqual(compileGlob('/v1/charges'), { kind: 'exact', value: '/v1/charges' });
    assert.deepEqual(compileGlob('/repos/**'), { kind: 'prefix', prefix: '/repos' });
    assert.deepEqual(compileGlob('/a/*/b'), { kind: 'segments', segments: ['', 'a', '*', 'b'] });
    assert.deepEqual(compileGlob('/a/*/**'), { kind: 'segments', segments: ['', 'a', '*', '**'] });
  });
});

describe('matchGlob', () => {
  test('any', () => {
    assertMatches('/**', ['/', '', '/a', '/a/b/c'], []);
  });
  test('exact', () => {
    assertMatches(
      '/v1/charges',
      ['/v1/charges'],
      ['/v1/charges/', '/v1/Charges', '/v1', '/v1/charges/x', 'v1/charges'],
    );
  });
  test('prefix/** matches the prefix itself and anything below it, not siblings that share the text', () => {
    assertMatches(
      '/repos/**',
      ['/repos', '/repos/', '/repos/a', '/repos/a/b/c'],
      ['/reposx', '/repo', '/', '/x/repos'],
    );
    assertMatches('/tmp/**', ['/tmp', '/tmp/a'], ['/tmpfile', '/tmp.txt']);
  });
  test('* stays within one segment and may be empty', () => {
    assertMatches('/v1/*/refunds', ['/v1/ch_1/refunds', '/v1//refunds'], ['/v1/refunds', '/v1/a/b/refunds']);
    assertMatches('/tmp/*.sock', ['/tmp/a.sock', '/tmp/.sock'], ['/tmp/a/b.sock', '/tmp/a.sockx', '/tmp/a.soc']);
    assertMatches('/img/*-*.png', ['/img/a-b.png', '/img/a-b-c.png', '/img/-.png'], ['/img/ab.png']);
  });
  test('** in the middle matches zero or more segments', () => {
    assertMatches('/a/**/b', ['/a/b', '/a/x/b', '/a/x/y/z/b'], ['/a', '/a/b/c', '/b', '/a/xb']);
    assertMatches('/**/b', ['/b', '/a/b', '/a/c/b'], ['/a/bc', '/a/b/c']);
    assertMatches('/a/**/*.json', ['/a/x.json', '/a/b/c/x.json'], ['/a/x.txt', '/b/x.json']);
  });
  test('a trailing * does not cross a slash', () => {
    assertMatches('/a/*', ['/a/x', '/a/'], ['/a/x/y', '/a']);
  });
  test('text that looks like a pattern is matched literally', () => {
    assertMatches('/a.b/c+d/(e)', ['/a.b/c+d/(e)'], ['/aXb/c+d/(e)', '/a.b/cd/(e)']);
    assertMatches('/a.*', ['/a.x', '/a.'], ['/ab']);
  });
});

describe('matchSegment', () => {
  test('classic wildcard cases', () => {
    assert.equal(matchSegment('*', ''), true);
    assert.equal(matchSegment('*', 'anything'), true);
    assert.equal(matchSegment('', ''), true);
    assert.equal(matchSegment('', 'a'), false);
    assert.equal(matchSegment('a*', 'a'), true);
    assert.equal(matchSegment('a*b', 'axxb'), true);
    assert.equal(matchSegment('a*b', 'axxbx'), false);
    assert.equal(matchSegment('*b*', 'abc'), true);
    assert.equal(matchSegment('a**b', 'ab'), true);
    assert.equal(matchSegment('*a*a*b', 'aaaaaab'), true);
    assert.equal(matchSegment('abc', 'abd'), false);
  });
});

describe('complexity bounds on hostile input', () => {
  // A regex translation of this pattern backtracks polynomially (cubic here) on a long run of "a"s; the matcher
  // must stay linear in (pattern segments × path segments). The bound is generous: this is not a benchmark.
  test('many ** against a 2,000-segment path that almost matches', () => {
    const path = `/${Array.from({ length: 2000 }, () => 'a').join('/')}`;
    const glob = compileGlob('/**/a/**/a/**/a/**/b');
    matchGlob(glob, '/a/a/a/b'); // warm up the JIT so the timing measures the algorithm
    const started = performance.now();
    const result = matchGlob(glob, path);
    const elapsed = performance.now() - started;
    assert.equal(result, false);
    assert.ok(elapsed < 100, `took ${elapsed.toFixed(1)} ms`);
    assert.equal(matchGlob(glob, `${path}/b`), true, 'and the same shape that does end in b matches');
  });
  test('many * in one segment against a long segment', () => {
    const segment = 'a'.repeat(20_000);
    const started = performance.now();
    const result = matchSegment('*a*a*a*a*a*a*a*a*b', segment);
    const elapsed = performance.now() - started;
    assert.equal(result, false);
    assert.ok(elapsed < 100, `took ${elapsed.toFixed(1)} ms`);
  });
});
