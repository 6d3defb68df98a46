// From findings to an action: thresholds, per-field allow rules, HTTP responses and partial batch failures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as InspectorModule from '../../src/inspector/index.js';

const { inspectEvent, decide } = require('../../../dist/inspector/index.js') as typeof InspectorModule;

const httpEvent = (body: unknown) => ({
  resource: '/posts',
  path: '/posts',
  httpMethod: 'POST',
  headers: { 'content-type': 'application/json' },
  requestContext: {},
  body: JSON.stringify(body),
});

test('HTTP: a blocked request becomes a 400 that names classes and fields but does not echo the payload', () => {
  const verdict = decide(inspectEvent(httpEvent({ title: "' OR 1=1--" })));
  assert.equal(verdict.action, 'block');
  assert.equal(verdict.response?.statusCode, 400);
  const body = JSON.parse(verdict.response!.body);
  assert.deepEqual(body.classes, ['sqli']);
  assert.deepEqual(body.fields, ['body.title']);
  assert.ok(!verdict.response!.body.includes('1=1'));
  assert.equal(decide(inspectEvent(httpEvent({ title: "O'Brien" }))).action, 'allow');
});

test('modes, confidence threshold and oversize handling', () => {
  const result = inspectEvent(httpEvent({ title: "' OR 1=1--" }));
  assert.equal(decide(result, { mode: 'alert' }).action, 'alert');
  assert.equal(decide(result, { mode: 'off' }).action, 'allow');
  const prose = inspectEvent(httpEvent({ text: 'To list files run `ls -la` in your terminal.' }));
  assert.equal(prose.attacks[0]?.confidence, 'low');
  assert.equal(decide(prose).action, 'allow');
  assert.equal(decide(prose, { minConfidence: 'low' }).action, 'block');
  const big = inspectEvent(httpEvent({ text: 'x'.repeat(200) }), { maxFieldLength: 100 });
  assert.equal(decide(big).action, 'allow');
  assert.equal(decide(big, { blockOversize: true }).action, 'block');
});

test('per-field allow rules: a field that legitimately carries SQL or code, by path and class', () => {
  const result = inspectEvent(
    httpEvent({ posts: [{ code: "SELECT 1 UNION SELECT password FROM users; -- '", title: 'hi' }], q: '1 OR 1=1' }),
  );
  assert.deepEqual(
    result.attacks.map((attack) => attack.path),
    ['body.posts[0].code', 'body.q'],
  );
  const allowCode = { allow: [{ path: 'body.posts[].code', classes: ['sqli' as const] }] };
  assert.deepEqual(
    decide(result, allowCode).attacks.map((attack) => attack.path),
    ['body.q'],
  );
  assert.equal(decide(result, { allow: [{ path: 'body.**' }] }).action, 'allow');
  assert.equal(decide(result, { allow: [{ path: 'body.*.code', classes: ['sqli'] }] }).attacks.length, 1);
  // Patterns match whole paths: no prefix or suffix matching.
  assert.equal(decide(result, { allow: [{ path: 'posts[].code' }] }).attacks.length, 2);
  assert.equal(decide(result, { allow: [{ path: 'body.posts[].code', classes: ['xss'] }] }).attacks.length, 2);
});

test('SQS: only the records with attacks fail; the rest of the batch goes on', () => {
  const event = {
    Records: [
      { eventSource: 'aws:sqs', messageId: 'a', body: '{"note":"fine"}' },
      { eventSource: 'aws:sqs', messageId: 'b', body: '{"note":"; cat /etc/passwd"}' },
      { eventSource: 'aws:sqs', messageId: 'c', body: '{"note":"also fine"}' },
      { eventSource: 'aws:sqs', messageId: 'd', body: '{"$where":"1"}' },
    ],
  };
  const verdict = decide(inspectEvent(event));
  assert.equal(verdict.action, 'block');
  assert.deepEqual(verdict.failedRecords, [1, 3]);
  assert.equal(verdict.response, undefined);
});

test('an inspection that could not finish blocks (fail closed)', () => {
  const hostile = {
    httpMethod: 'GET',
    requestContext: {},
    get headers(): never {
      throw new Error('getter');
    },
  };
  const result = inspectEvent(hostile);
  assert.equal(result.error, 'inspection stopped: getter');
  const verdict = decide(result);
  assert.equal(verdict.action, 'block');
  assert.equal(verdict.response?.statusCode, 400);
  assert.equal(decide(result, { mode: 'alert' }).action, 'alert');
});
