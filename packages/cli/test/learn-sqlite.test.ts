/**
 * `perimeter learn --events` on the SQLite store `perimeter dev` writes, through the built CLI: the store is
 * recognised by its header (not its name), `--function` keeps one function's events, repeats count, every rule
 * is explained by the row it came from, a store still open by a running writer can be learned from, and a
 * damaged store is a coded error.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type * as Store from '../src/dev/store.js';
import type { EventRecord } from '../src/dev/types.js';

const { EventStore } = (await import(new URL('../../dist/dev/store.js', import.meta.url).href)) as typeof Store;
const BIN = new URL('../../dist/bin.js', import.meta.url).pathname;

const event = (overrides: Partial<EventRecord>): EventRecord => ({
  perimeter: 1,
  time: '2026-11-23T14:00:00.000Z',
  type: 'violation',
  capability: 'network',
  action: 'alerted',
  target: 'GET https://api.stripe.com/v1/charges',
  package: 'stripe',
  function: 'checkout',
  invocation: 'req-1',
  reason: 'no-rule',
  ...overrides,
});

const EVENTS: EventRecord[] = [
  event({}),
  event({ target: 'POST https://api.stripe.com/v1/refunds', repeats: 3 }),
  event({ function: 'search', package: 'app', target: 'GET https://search.example.com/q?x=1' }),
  event({ package: 'app', capability: 'fs', target: 'read /srv/data/prices.json' }),
  event({ type: 'drift', reason: 'first-occurrence' }),
  event({ type: 'suppressed', capability: 'events', action: 'observed', package: 'perimeter', target: '12 events' }),
];

const made: string[] = [];
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

function project(name = 'events.db'): { dir: string; file: string } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-learn-sqlite-')));
  made.push(dir);
  const file = join(dir, name);
  const store = EventStore.open(file);
  for (const e of EVENTS) assert.equal(store.append(e), true);
  store.close();
  return { dir, file };
}

function learn(dir: string, args: string[]) {
  const started = performance.now();
  const run = spawnSync(process.execPath, [BIN, 'learn', ...args], { cwd: dir, encoding: 'utf8' });
  return { ...run, ms: performance.now() - started };
}

test('learns one function from a store; repeats count; rules point at their rows', (t) => {
  const { dir } = project();
  const run = learn(dir, ['--events', 'events.db', '--json', '--function', 'checkout']);
  t.diagnostic(`learn --events events.db: ${run.ms.toFixed(0)} ms`);
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout);
  assert.deepEqual(out.policy.network.allow, [
    'GET https://api.stripe.com/v1/charges',
    'POST https://api.stripe.com/v1/refunds',
  ]);
  assert.deepEqual(out.policy.fs.read, ['/srv/data/prices.json']);
  assert.deepEqual(out.policy.packages.stripe.network.allow, out.policy.network.allow);
  assert.equal(out.explanations['network.allow']['POST https://api.stripe.com/v1/refunds'].count, 3); // a summary line stands for `repeats` occurrences
  assert.equal(out.explanations['network.allow']['POST https://api.stripe.com/v1/refunds'].where, 'events.db:2');
  assert.equal(out.explanations['fs.read']['/srv/data/prices.json'].where, 'events.db:4');
  assert.ok(out.notes.includes(`read ${EVENTS.length} event(s) from 1 file(s)`), out.notes.join('\n'));
  assert.ok(!JSON.stringify(out.policy).includes('search.example.com'), 'another function’s events are left out');

  const all = JSON.parse(learn(dir, ['--events', 'events.db', '--json']).stdout);
  // learn drops the query string of a learned URL.
  assert.ok(all.policy.network.allow.includes('GET https://search.example.com/q'), all.policy.network.allow);
});

test('a store is told by its header, not its name; it combines with JSON lines', () => {
  const { dir, file } = project();
  copyFileSync(file, join(dir, 'run-7.events'));
  const jsonl = `${JSON.stringify(event({ function: 'checkout', target: 'GET https://tax.example.com/rates' }))}\n`;
  writeFileSync(join(dir, 'staging.jsonl'), jsonl);
  const run = learn(dir, ['--events', 'run-7.events', '--events', 'staging.jsonl', '--json', '--function', 'checkout']);
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout);
  assert.deepEqual(out.policy.network.allow, [
    'GET https://api.stripe.com/v1/charges',
    'GET https://tax.example.com/rates',
    'POST https://api.stripe.com/v1/refunds',
  ]);

  // JSON lines in a file named like a store: refused with a hint rather than misread.
  writeFileSync(join(dir, 'old.db'), jsonl);
  const misnamed = learn(dir, ['--events', 'old.db']);
  assert.equal(misnamed.status, 2);
  assert.match(misnamed.stderr, /ERR_PERIMETER_EVENTS_READ/);
  assert.match(misnamed.stderr, /rename it to \.jsonl/);
});

test('a store that a running dev still has open is learned from (WAL readers do not wait for the writer)', () => {
  const { dir } = project();
  const writer = EventStore.open(join(dir, 'events.db'));
  try {
    writer.append(event({ target: 'GET https://api.stripe.com/v1/customers' }));
    writer.flush();
    const run = learn(dir, ['--events', 'events.db', '--json', '--function', 'checkout']);
    assert.equal(run.status, 0, run.stderr);
    const out = JSON.parse(run.stdout);
    // The new row sits in the write-ahead log, not yet in the database file: read all the same.
    assert.ok(out.notes.includes(`read ${EVENTS.length + 1} event(s) from 1 file(s)`), out.notes.join('\n'));
    // Three paths under /v1/ of one host: learn generalises them into one rule.
    assert.deepEqual(out.policy.network.allow, ['GET,POST https://api.stripe.com/v1/*']);
  } finally {
    writer.close();
  }
});

test('a damaged store is ERR_PERIMETER_STORE_CORRUPT, named, and left as it was', () => {
  const { dir, file } = project();
  const bytes = readFileSync(file);
  // Keeps the header, wrecks the pages after it.
  for (let i = 100; i < bytes.length; i += 7) bytes[i] = (bytes[i]! + 0x5a) & 0xff;
  writeFileSync(file, bytes);
  const run = learn(dir, ['--events', 'events.db', '--json']);
  assert.equal(run.status, 2);
  assert.match(run.stderr, /ERR_PERIMETER_STORE_CORRUPT/);
  assert.ok(run.stderr.includes(file), run.stderr);
  assert.deepEqual(readFileSync(file), bytes);
});
