// The event sink. events.ts keeps module state (window, queue, file descriptors), so these tests live in their
// own file (node:test gives each file its own process) and run one after the other, each with its own file.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as EventsModule from '../../src/events.js';
import type * as RedactModule from '../../src/redact.js';
import type * as ScopeModule from '../../src/scope.js';
import { NODE, PACKAGE_ROOT, tempDir } from '../helpers.js';

const { configureSink, emit, flushEvents, onEvent } = require('../../../dist/events.js') as typeof EventsModule;
const { rememberSecretValues } = require('../../../dist/redact.js') as typeof RedactModule;
const { runInInvocationScope } = require('../../../dist/scope.js') as typeof ScopeModule;

let eventsFile = '';

beforeEach(() => {
  flushEvents(); // closes the previous test's window: its repeats and summaries go to its own file
  eventsFile = join(tempDir('perimeter-events-'), 'events.jsonl');
  configureSink({ functionName: 'unit-fn', eventsFile, stderr: false });
});

function lines(): Array<Record<string, any>> {
  const text = readFileSync(eventsFile, 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'whole lines only');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

function violation(target: string, extra: Partial<EventsModule.EventInput> = {}): EventsModule.EventInput {
  return { type: 'violation', capability: 'network', action: 'blocked', target, package: 'app', ...extra };
}

test('an event has every field of the contract, in order, and nothing undefined', () => {
  const before = Date.now();
  emit(
    violation('POST https://evil.example.com/collect', {
      package: 'left-pad',
      packages: ['some-sdk', 'left-pad'],
      reason: 'package-rule',
      deniedBy: 'left-pad',
    }),
  );
  flushEvents();
  const [event, ...rest] = lines();
  assert.equal(rest.length, 0);
  assert.deepEqual(Object.keys(event!), [
    'perimeter',
    'time',
    'type',
    'capability',
    'action',
    'target',
    'package',
    'function',
    'invocation',
    'packages',
    'reason',
    'deniedBy',
  ]);
  assert.equal(event!.perimeter, 1);
  assert.match(event!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Date.parse(event!.time) >= before - 1 && Date.parse(event!.time) <= Date.now() + 1);
  assert.equal(event!.type, 'violation');
  assert.equal(event!.capability, 'network');
  assert.equal(event!.action, 'blocked');
  assert.equal(event!.target, 'POST https://evil.example.com/collect');
  assert.equal(event!.package, 'left-pad');
  assert.equal(event!.function, 'unit-fn');
  assert.equal(event!.invocation, null);
  assert.deepEqual(event!.packages, ['some-sdk', 'left-pad']);
  assert.equal(event!.reason, 'package-rule');
  assert.equal(event!.deniedBy, 'left-pad');
});

test('optional fields are left out when empty; a single package is not repeated as a list', () => {
  emit(violation('tcp://10.0.0.1:5432', { packages: ['pg'], package: 'pg', detail: '' }));
  flushEvents();
  const [event] = lines();
  for (const key of ['packages', 'reason', 'deniedBy', 'detail', 'repeats']) assert.ok(!(key in event!), key);
});

test('writes are asynchronous: nothing is written during the call, everything soon after', async () => {
  emit(violation('GET https://a.example.com/async'));
  assert.equal(readFileSync(eventsFile, 'utf8'), '', 'emit() must not write synchronously');
  for (let i = 0; i < 100 && lines().length === 0; i++) await sleep(10);
  assert.equal(lines()[0]?.target, 'GET https://a.example.com/async');
});

test('flushEvents writes everything queued synchronously', () => {
  emit(violation('GET https://a.example.com/1'));
  emit(violation('GET https://a.example.com/2'));
  flushEvents();
  assert.deepEqual(
    lines().map((event) => event.target),
    ['GET https://a.example.com/1', 'GET https://a.example.com/2'],
  );
});

test('repeats within the window are counted, not written, and reported once', () => {
  for (let i = 0; i < 5; i++) emit(violation('GET https://a.example.com/same'));
  emit(violation('GET https://a.example.com/other'));
  emit(violation('GET https://a.example.com/same', { action: 'alerted' })); // another action is another event
  flushEvents();
  const written = lines();
  assert.deepEqual(
    written.map((event) => [event.target, event.action, event.repeats]),
    [
      ['GET https://a.example.com/same', 'blocked', undefined],
      ['GET https://a.example.com/other', 'blocked', undefined],
      ['GET https://a.example.com/same', 'alerted', undefined],
      ['GET https://a.example.com/same', 'blocked', 4],
    ],
  );
});

test('the same event in another invocation is not a repeat', () => {
  runInInvocationScope({ invocation: 'req-1' }, () => emit(violation('GET https://a.example.com/inv')));
  runInInvocationScope({ invocation: 'req-2' }, () => emit(violation('GET https://a.example.com/inv')));
  flushEvents();
  assert.deepEqual(
    lines().map((event) => event.invocation),
    ['req-1', 'req-2'],
  );
});

test('after the window, the same event is written again', async () => {
  emit(violation('GET https://a.example.com/window'));
  // The first line goes out through the asynchronous path; it must be on disk before the second, synchronous one.
  await sleep(1100);
  emit(violation('GET https://a.example.com/window'));
  flushEvents();
  const written = lines();
  assert.equal(written.length, 2);
  assert.ok(written.every((event) => event.repeats === undefined));
});

test('more than 200 distinct events in a second: 200 written, the rest summarised in one suppressed event', () => {
  for (let i = 0; i < 250; i++) emit(violation(`GET https://flood.example.com/${i}`));
  flushEvents();
  const written = lines();
  const violations = written.filter((event) => event.type === 'violation');
  const suppressed = written.filter((event) => event.type === 'suppressed');
  assert.equal(violations.length, 200);
  assert.equal(violations[199]!.target, 'GET https://flood.example.com/199');
  assert.equal(suppressed.length, 1);
  assert.equal(suppressed[0]!.target, '50 events');
  assert.equal(suppressed[0]!.capability, 'events');
  assert.equal(suppressed[0]!.action, 'observed');
  assert.equal(suppressed[0]!.package, 'perimeter');
  assert.equal(suppressed[0]!.function, 'unit-fn');
  assert.match(suppressed[0]!.detail, /more than 200 distinct events per second/);
});

test('a burst of huge events is bounded in memory and still summarised', () => {
  const big = 'x'.repeat(16 * 1024);
  for (let i = 0; i < 150; i++) emit(violation(`GET https://big.example.com/${i}/${big}`));
  flushEvents();
  const text = readFileSync(eventsFile, 'utf8');
  assert.ok(text.length <= (1 << 20) + 4096, `at most about 1 MiB queued, wrote ${text.length}`);
  const written = lines();
  const suppressed = written.find((event) => event.type === 'suppressed');
  const violations = written.filter((event) => event.type === 'violation').length;
  assert.ok(violations > 0 && violations < 150);
  assert.equal(suppressed?.target, `${150 - violations} events`);
});

test('runInInvocationScope fills function and invocation, across awaits', async () => {
  await runInInvocationScope({ function: 'checkout', invocation: 'req-42' }, async () => {
    await sleep(1);
    emit(violation('GET https://a.example.com/scoped'));
  });
  emit(violation('GET https://a.example.com/unscoped'));
  flushEvents();
  const [scoped, unscoped] = lines();
  assert.equal(scoped!.function, 'checkout');
  assert.equal(scoped!.invocation, 'req-42');
  assert.equal(unscoped!.function, 'unit-fn');
  assert.equal(unscoped!.invocation, null);
});

test('targets and details are redacted before they are written or handed to listeners', () => {
  rememberSecretValues({ STRIPE_API_KEY: 'sk_from_env_0123456789' });
  const seen: string[] = [];
  const stop = onEvent((event) => seen.push(JSON.stringify(event)));
  emit(
    violation('POST https://evil.example.com/c?d=sk_from_env_0123456789&token=abc', {
      detail: 'upstream said https://u:hunter2@evil.example.com/ and AKIAIOSFODNN7EXAMPLE',
    }),
  );
  stop();
  flushEvents();
  const text = readFileSync(eventsFile, 'utf8');
  for (const secret of ['sk_from_env_0123456789', 'token=abc', 'hunter2', 'AKIAIOSFODNN7EXAMPLE']) {
    assert.ok(!text.includes(secret), `${secret} written`);
    assert.ok(!seen[0]!.includes(secret), `${secret} given to a listener`);
  }
  const [event] = lines();
  assert.equal(event!.target, 'POST https://evil.example.com/c?d=[REDACTED]&token=[REDACTED]');
  assert.equal(event!.detail, 'upstream said https://u:[REDACTED]@evil.example.com/ and [REDACTED]');
});

test('a throwing listener breaks neither emit nor the other listeners; unsubscribing stops delivery', () => {
  const received: string[] = [];
  const stopThrowing = onEvent(() => {
    throw new Error('listener bug');
  });
  const stop = onEvent((event) => received.push(event.target));
  emit(violation('GET https://a.example.com/listeners'));
  stop();
  stopThrowing();
  emit(violation('GET https://a.example.com/after'));
  flushEvents();
  assert.deepEqual(received, ['GET https://a.example.com/listeners']);
  assert.equal(lines().length, 2);
});

test('events go to stderr by default, one JSON object per line', async () => {
  const script = `
    const { configureSink, emit, flushEvents } = require(${JSON.stringify(join(PACKAGE_ROOT, 'dist/events.js'))});
    configureSink({ functionName: 'stderr-fn' });
    process.once('exit', flushEvents); // what the runtime registers
    emit({ type: 'violation', capability: 'network', action: 'blocked', target: 'GET https://a.example.com/', package: 'app' });
    process.stdout.write('handler done\\n');
  `;
  const child = spawn(NODE, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const code = await new Promise((done) => child.on('close', done));
  assert.equal(code, 0);
  assert.equal(stdout, 'handler done\n', 'nothing on stdout but the handler');
  const [line, ...rest] = stderr.split('\n').filter(Boolean);
  assert.equal(rest.length, 0, stderr);
  assert.deepEqual(
    { ...JSON.parse(line!), time: 'T' },
    {
      perimeter: 1,
      time: 'T',
      type: 'violation',
      capability: 'network',
      action: 'blocked',
      target: 'GET https://a.example.com/',
      package: 'app',
      function: 'stderr-fn',
      invocation: null,
    },
  );
});
