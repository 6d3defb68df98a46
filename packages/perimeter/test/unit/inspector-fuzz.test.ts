// Fuzz: random and adversarial inputs up to 1 MB never make inspectEvent throw, and each call finishes within a
// generous bound. The bound is a complexity check (a quadratic scan of 1 MB takes minutes), not a benchmark.
// Deterministic: the random inputs come from a seeded generator.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as InspectorModule from '../../src/inspector/index.js';

// A Log4j lookup opening, spelled so that it is not a template literal placeholder.
const JNDI = '$' + '{jndi:';
const { inspectEvent } = require('../../../dist/inspector/index.js') as typeof InspectorModule;

const BOUND_MS = 500;
const MB = 1024 * 1024;

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABET = `'"\`;|&$(){}[]<>/\\.%#-*=:@!?,_ \n\tabcdefORSELCTUNIjnd0123456789xX+~^`;

function randomString(random: () => number, length: number): string {
  let out = '';
  for (let i = 0; i < length; i++) {
    if (random() < 0.02) out += String.fromCharCode(Math.floor(random() * 0xffff));
    else out += ALPHABET[Math.floor(random() * ALPHABET.length)];
  }
  return out;
}

function repeatTo(unit: string, length: number): string {
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

const ADVERSARIAL_UNITS = [
  "'",
  '"',
  "''",
  '../',
  '..\\',
  '....//',
  '%25',
  '%2e%2e%2f',
  '%c0%af',
  '[',
  '{',
  '{{',
  '${',
  '${${',
  '<%',
  '<a ',
  '<a on',
  '<svg/onload',
  'on=',
  '&#',
  '&amp;',
  '\\u00',
  '\\u{',
  "' OR ",
  '1 AND ',
  '/*',
  '--',
  'UNION ',
  '; ',
  '| ',
  '`',
  '$(',
  'http://',
  '//',
  'http://[',
  '@',
  '__proto__.',
  'a[$ne]',
  'javascript:',
  '\t',
];

function timed(label: string, event: unknown, options?: InspectorModule.InspectOptions): void {
  const started = performance.now();
  let result: InspectorModule.InspectionResult | undefined;
  assert.doesNotThrow(() => {
    result = inspectEvent(event, options);
  }, label);
  const elapsed = performance.now() - started;
  assert.ok(Array.isArray(result?.attacks), label);
  assert.ok(elapsed < BOUND_MS, `${label}: ${elapsed.toFixed(0)} ms`);
}

const SCAN_EVERYTHING = { maxFieldLength: 2 * MB };

test('adversarial 1 MB runs, scanned in full, in every field kind', () => {
  for (const unit of ADVERSARIAL_UNITS) {
    const value = repeatTo(unit, MB);
    timed(
      `query ${JSON.stringify(unit)}`,
      { httpMethod: 'GET', headers: {}, queryStringParameters: { q: value } },
      SCAN_EVERYTHING,
    );
  }
  timed('quote then run', { q: `'${repeatTo(' OR 1=1 AND x', MB)}` }, SCAN_EVERYTHING);
  timed('number then run', { q: `1${repeatTo(' AND (', MB)}` }, SCAN_EVERYTHING);
  timed('tag then attributes', { q: `<a${repeatTo(' x=1', MB)}` }, SCAN_EVERYTHING);
  timed('template without close', { q: `{{${repeatTo('7*7 ', MB)}` }, SCAN_EVERYTHING);
  timed('code spans in prose', { q: repeatTo('word `ls` more words; ', MB) }, SCAN_EVERYTHING);
});

test('adversarial 1 MB values with the default bounds are reported oversize quickly', () => {
  for (const unit of ["'", '../', '%25', '{{']) {
    const { attacks } = inspectEvent({ q: repeatTo(unit, MB) });
    assert.deepEqual(
      attacks.map((attack) => attack.class),
      ['oversize'],
    );
    timed(`default ${unit}`, { q: repeatTo(unit, MB) });
  }
});

test('deep and wide structures: nested JSON, bracket runs, many keys', () => {
  const deepJson = `${'['.repeat(100_000)}${']'.repeat(100_000)}`;
  timed('deep JSON array in a body', { httpMethod: 'POST', headers: {}, body: deepJson }, SCAN_EVERYTHING);
  const deepObject = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
  timed('deep JSON object in a body', { httpMethod: 'POST', headers: {}, body: deepObject }, SCAN_EVERYTHING);
  const wide = JSON.stringify(Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`$k${i}`, "' OR 1=1--"])));
  timed('50k keys', { Records: [{ eventSource: 'aws:sqs', body: wide }] }, SCAN_EVERYTHING);
  const nestedStrings = JSON.stringify(JSON.stringify(JSON.stringify(JSON.stringify({ q: `${JNDI}x}` }))));
  timed('JSON in strings in JSON', { Records: [{ eventSource: 'aws:sqs', body: nestedStrings }] });
});

test('random strings up to 1 MB through every trigger shape', () => {
  const random = seeded(7);
  const sizes = [0, 1, 7, 64, 1000, 10_000, 100_000, MB];
  for (const size of sizes) {
    const value = randomString(random, size);
    // Up to 1 MB of input per event: one field carries the value, the others a slice of it.
    const short = value.slice(0, 4096);
    const events: unknown[] = [
      { resource: '/', httpMethod: 'POST', headers: { 'x-a': short }, body: value, requestContext: {} },
      { version: '2.0', rawPath: short, requestContext: { http: {} }, body: value, isBase64Encoded: true },
      { requestContext: { elb: {} }, path: short, queryStringParameters: { [value.slice(0, 100)]: value } },
      { Records: [{ eventSource: 'aws:sqs', body: value, messageAttributes: { a: { stringValue: short } } }] },
      { Records: [{ EventSource: 'aws:sns', Sns: { Message: value } }] },
      { Records: [{ eventSource: 'aws:s3', s3: { object: { key: value } } }] },
      {
        Records: [
          {
            eventSource: 'aws:dynamodb',
            dynamodb: { NewImage: { a: { S: value }, b: { M: { c: { L: [{ S: short }] } } } } },
          },
        ],
      },
      { Records: [{ eventSource: 'aws:kinesis', kinesis: { data: value } }] },
      { 'detail-type': 'x', source: 'y', detail: value },
      value,
    ];
    for (const [i, event] of events.entries()) timed(`random ${size} shape ${i}`, event, SCAN_EVERYTHING);
  }
});

test('malformed events: wrong types where strings and objects are expected never throw', () => {
  const weird: unknown[] = [
    { Records: 'x' },
    { Records: [null, 1, 'x', { eventSource: 'aws:sqs', body: 5 }] },
    { Records: [{ eventSource: 'aws:dynamodb', dynamodb: { NewImage: { a: { L: 'x' }, b: { M: null }, c: null } } }] },
    { requestContext: { http: null, elb: 1 }, headers: [1, 2], body: {} },
    { httpMethod: 'GET', headers: null, queryStringParameters: 'x', multiValueHeaders: { a: [1, null] } },
    Object.create(null),
    [],
  ];
  for (const [i, event] of weird.entries()) timed(`malformed ${i}`, event);
  const hostile = {
    get headers(): never {
      throw new Error('getter');
    },
    httpMethod: 'GET',
  };
  const result = inspectEvent(hostile);
  assert.equal(result.attacks[0]?.class, 'oversize');
});
