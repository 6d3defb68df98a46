/**
 * The event store of `perimeter dev` on real SQLite files in temp folders: what is appended survives a restart
 * and a burst, retention drops the oldest, the queries and the summary count what was stored (repeats
 * weighed), and a damaged, foreign, newer or locked file is a coded error that leaves the file as it was.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type * as Store from '../src/dev/store.js';
import type { EventRecord, FunctionRecord, InvocationRecord, StoredEvent } from '../src/dev/types.js';

const store = (await import(new URL('../../dist/dev/store.js', import.meta.url).href)) as typeof Store;
const { EventStore, destinationOf } = store;
const REPO = resolve(fileURLToPath(import.meta.url), '../../../../..');
const Database = createRequire(join(REPO, 'packages/cli/package.json'))('better-sqlite3');

const made: string[] = [];
const temp = () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-store-')));
  made.push(dir);
  return dir;
};
after(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});
const T0 = Date.parse('2026-11-23T14:00:00.000Z');

function event(overrides: Partial<EventRecord> = {}): EventRecord {
  return {
    perimeter: 1,
    time: new Date(T0).toISOString(),
    type: 'violation',
    capability: 'network',
    action: 'alerted',
    target: 'GET https://api.example.com/v1/x',
    package: 'app',
    function: 'checkout',
    invocation: 'req-1',
    reason: 'no-rule',
    ...overrides,
  };
}

function expectCode(run: () => unknown, code: string, file?: string): Error & { code: string; hint?: string } {
  let caught: any;
  assert.throws(run, (error: any) => {
    caught = error;
    return true;
  });
  assert.equal(caught.code, code, caught.message);
  assert.ok(caught.hint, `${code} has a hint`);
  if (file) assert.ok(caught.message.includes(file), `the message names ${file}: ${caught.message}`);
  return caught;
}

describe('durability', () => {
  test('events, functions and invocations survive a close and reopen; ids keep growing', () => {
    const dir = temp();
    const file = join(dir, 'nested', '.perimeter', 'events.db');
    const first = EventStore.open(file);
    const appended: EventRecord[] = [];
    for (let i = 0; i < 50; i++) {
      const e = event({ target: `GET https://h${i % 5}.example.com/p${i}`, extra: { i }, packages: ['a', 'b'] });
      appended.push(e);
      assert.equal(first.append(e), true);
    }
    const fn: FunctionRecord = {
      name: 'checkout',
      handler: '/srv/checkout.mjs',
      format: 'lambda',
      trigger: 'http',
      routes: ['POST /api/checkout'],
      policyFile: null,
      policy: { mode: 'alert' },
      status: 'ready',
      pid: 42,
      updatedAt: new Date(T0).toISOString(),
    };
    first.upsertFunction(fn);
    first.upsertFunction({ ...fn, status: 'stopped' });
    const invocation: InvocationRecord = {
      id: 'req-1',
      function: 'checkout',
      trigger: 'http',
      request: 'POST /api/checkout',
      startMs: T0,
      durationMs: 12,
      outcome: 'ok',
      statusCode: 200,
    };
    first.recordInvocation(invocation);
    const lastBefore = first.lastId();
    assert.equal(lastBefore, 50);
    first.close();
    assert.ok(existsSync(file));

    const second = EventStore.open(file);
    const rows = second.query({ order: 'asc', limit: 1000 });
    assert.deepEqual(
      rows.map((row) => row.event),
      appended,
    );
    assert.deepEqual(
      rows.map((row) => row.id),
      Array.from({ length: 50 }, (_, i) => i + 1),
    );
    assert.deepEqual(second.functions(), [{ ...fn, status: 'stopped' }]);
    assert.deepEqual(second.invocations(), [invocation]);
    second.append(event());
    assert.equal(second.lastId(), lastBefore + 1);
    second.close();
  });

  test('a burst of 100,000 appends is stored without loss, in order, with bounded memory', (t) => {
    const file = join(temp(), 'events.db');
    const s = EventStore.open(file);
    const n = 100_000;
    let maxQueued = 0;
    const started = performance.now();
    for (let i = 0; i < n; i++) {
      s.append(event({ target: `GET https://h${i % 97}.example.com/item/${i}`, invocation: `req-${i % 500}` }));
      if (i % 1000 === 0) maxQueued = Math.max(maxQueued, s.stats().queued);
    }
    s.close();
    const ms = performance.now() - started;
    t.diagnostic(`100,000 appends + close: ${ms.toFixed(0)} ms (${Math.round(n / (ms / 1000))} events/s)`);
    assert.ok(maxQueued <= 10_000, `queue stayed under the high-water mark (${maxQueued})`);
    assert.equal(s.stats().rejected, 0);

    const r = EventStore.open(file, { readonly: true });
    assert.equal(r.count(), n);
    let expected = 0;
    let previousId = 0;
    for (;;) {
      const page = r.query({ afterId: previousId, order: 'asc', limit: 10_000 });
      if (page.length === 0) break;
      for (const row of page) {
        assert.ok(row.id > previousId);
        previousId = row.id;
        assert.ok(row.event.target.endsWith(`/item/${expected}`), `event ${expected} at id ${row.id}`);
        expected++;
      }
    }
    assert.equal(expected, n);
    r.close();
  });

  test('the timer writes queued events without a flush call; a read-only reader tails them by afterId', async () => {
    const file = join(temp(), 'events.db');
    const writer = EventStore.open(file, { flushIntervalMs: 20 });
    const reader = EventStore.open(file, { readonly: true });
    writer.append(event({ target: 'GET https://one.example.com/' }));
    writer.append(event({ target: 'GET https://two.example.com/' }));
    let seen: StoredEvent[] = [];
    for (let i = 0; i < 50 && seen.length < 2; i++) {
      await new Promise((ok) => setTimeout(ok, 20));
      seen = reader.query({ afterId: 0, order: 'asc' });
    }
    assert.deepEqual(
      seen.map((row) => row.event.target),
      ['GET https://one.example.com/', 'GET https://two.example.com/'],
    );
    writer.append(event({ target: 'GET https://three.example.com/' }));
    writer.flush();
    assert.deepEqual(
      reader.query({ afterId: seen[1]!.id }).map((row) => row.event.target),
      ['GET https://three.example.com/'],
    );
    writer.close();
    reader.close();
  });

  test('retention keeps the newest events and removes the oldest', () => {
    const file = join(temp(), 'events.db');
    const s = EventStore.open(file, { retention: 1000, batchSize: 100 });
    for (let i = 0; i < 2500; i++) s.append(event({ target: `GET https://h.example.com/${i}` }));
    s.flush();
    assert.equal(s.count(), 1000);
    const oldest = s.query({ order: 'asc', limit: 1 })[0]!;
    const newest = s.query({ limit: 1 })[0]!;
    assert.equal(oldest.event.target, 'GET https://h.example.com/1500');
    assert.equal(newest.event.target, 'GET https://h.example.com/2499');
    assert.equal(newest.id, 2500);
    s.close();
  });
});

describe('input from a hostile process', () => {
  test('malformed events are refused and counted; the store keeps working', () => {
    const file = join(temp(), 'events.db');
    const s = EventStore.open(file);
    const cyclic: any = event();
    cyclic.self = cyclic;
    const bad: unknown[] = [
      null,
      'a string',
      [1, 2],
      { ...event(), perimeter: 2 },
      { ...event(), function: 7 },
      { ...event(), target: undefined },
      { ...event(), invocation: 5 },
      { ...event(), packages: [1] },
      { ...event(), repeats: -1 },
      { ...event(), repeats: 1.5 },
      { ...event(), target: 'x'.repeat(70_000) },
      cyclic,
    ];
    for (const value of bad) assert.equal(s.append(value as EventRecord), false, `bad value #${bad.indexOf(value)}`);
    assert.equal(s.append(event({ repeats: 3 })), true);
    assert.equal(s.append({ ...event(), unknownField: { nested: true } }), true);
    assert.equal(s.stats().rejected, bad.length);
    assert.equal(s.count(), 2);
    assert.deepEqual(s.query({ order: 'asc' })[1]!.event.unknownField, { nested: true });
    s.close();
  });
});

describe('queries and summary', () => {
  const build = () => {
    const s = EventStore.open(join(temp(), 'events.db'));
    const list: EventRecord[] = [
      event({
        function: 'checkout',
        package: 'stripe',
        action: 'alerted',
        target: 'POST https://api.stripe.com/v1/charges',
      }),
      event({
        function: 'checkout',
        package: 'stripe',
        action: 'alerted',
        target: 'POST https://api.stripe.com/v1/refunds',
        repeats: 4,
      }),
      event({
        function: 'checkout',
        package: 'left-pad',
        action: 'blocked',
        target: 'GET https://evil.example.com/c?d=1',
      }),
      event({
        function: 'checkout',
        package: 'left-pad',
        action: 'blocked',
        capability: 'network',
        target: 'dns:a1b2.x.attacker.example',
      }),
      event({
        function: 'checkout',
        package: 'left-pad',
        action: 'blocked',
        target: 'dns:c3d4.x.attacker.example',
        repeats: 9,
      }),
      event({ function: 'search', package: 'app', action: 'alerted', capability: 'fs', target: 'read /etc/hosts' }),
      event({
        function: 'search',
        package: 'app',
        action: 'blocked',
        capability: 'env',
        target: 'AWS_SECRET_ACCESS_KEY',
      }),
      event({
        function: 'search',
        package: 'perimeter',
        type: 'suppressed',
        capability: 'events',
        action: 'observed',
        target: '1843 events',
      }),
    ];
    // One minute apart, so the timeline has a known shape; 1,234 ms past the minute, as real times are (a bucket
    // start computed in floating point would then match no bucket).
    list.forEach((e, i) => {
      e.time = new Date(T0 + 1234 + i * 60_000).toISOString();
      s.append(e);
    });
    return s;
  };

  test('filters by function, package, action, type, capability, time and id; limits and orders', () => {
    const s = build();
    const targets = (rows: ReturnType<typeof s.query>) => rows.map((row) => row.event.target);
    assert.equal(s.query({ function: 'checkout' }).length, 5);
    assert.deepEqual(targets(s.query({ package: 'stripe', order: 'asc' })), [
      'POST https://api.stripe.com/v1/charges',
      'POST https://api.stripe.com/v1/refunds',
    ]);
    assert.deepEqual(targets(s.query({ function: 'search', action: 'blocked' })), ['AWS_SECRET_ACCESS_KEY']);
    assert.deepEqual(targets(s.query({ type: 'suppressed' })), ['1843 events']);
    assert.deepEqual(targets(s.query({ capability: 'fs' })), ['read /etc/hosts']);
    assert.deepEqual(
      s.query({ afterId: 6 }).map((row) => row.id),
      [8, 7],
    );
    assert.deepEqual(
      s.query({ beforeId: 3, order: 'asc' }).map((row) => row.id),
      [1, 2],
    );
    assert.deepEqual(
      s.query({ sinceMs: T0 + 6 * 60_000, order: 'asc' }).map((row) => row.id),
      [7, 8],
    );
    assert.deepEqual(
      s.query({ limit: 3 }).map((row) => row.id),
      [8, 7, 6],
    );
    assert.equal(s.count(), 8);
    assert.equal(s.count({ function: 'checkout', action: 'blocked' }), 3);
    assert.equal(s.lastId(), 8);
    s.close();
  });

  test('summary weighs repeats and draws function → package → destination edges', () => {
    const s = build();
    s.recordInvocation({
      id: 'a',
      function: 'checkout',
      trigger: 'http',
      request: 'POST /',
      startMs: T0,
      durationMs: 5,
      outcome: 'ok',
    });
    s.recordInvocation({
      id: 'b',
      function: 'checkout',
      trigger: 'http',
      request: 'POST /',
      startMs: T0 + 1,
      durationMs: 5,
      outcome: 'error',
      error: 'boom',
    });
    s.recordInvocation({
      id: 'c',
      function: 'search',
      trigger: 'sqs',
      request: 'sqs',
      startMs: T0 + 2,
      durationMs: 5,
      outcome: 'timeout',
    });
    const summary = s.summary();
    // 1 + 4 + 1 + 1 + 9 + 1 + 1 + 1
    assert.equal(summary.total, 19);
    assert.equal(summary.blocked, 12);
    assert.equal(summary.alerted, 6);
    assert.equal(summary.observed, 1);
    assert.deepEqual(summary.functions, [
      { name: 'checkout', total: 16, blocked: 11, alerted: 5 },
      { name: 'search', total: 3, blocked: 1, alerted: 1 },
    ]);
    assert.deepEqual(summary.packages, [
      { name: 'left-pad', total: 11, blocked: 11, alerted: 0 },
      { name: 'stripe', total: 5, blocked: 0, alerted: 5 },
      { name: 'app', total: 2, blocked: 1, alerted: 1 },
      { name: 'perimeter', total: 1, blocked: 0, alerted: 0 },
    ]);
    const edges = [...summary.edges].sort((a, b) => (a.destination < b.destination ? -1 : 1));
    assert.deepEqual(edges, [
      { function: 'search', package: 'app', destination: '/etc/hosts', capability: 'fs', blocked: 0, alerted: 1 },
      {
        function: 'checkout',
        package: 'left-pad',
        destination: 'dns:*.attacker.example',
        capability: 'network',
        blocked: 10,
        alerted: 0,
      },
      {
        function: 'search',
        package: 'app',
        destination: 'env:AWS_SECRET_ACCESS_KEY',
        capability: 'env',
        blocked: 1,
        alerted: 0,
      },
      {
        function: 'checkout',
        package: 'stripe',
        destination: 'https://api.stripe.com',
        capability: 'network',
        blocked: 0,
        alerted: 5,
      },
      {
        function: 'checkout',
        package: 'left-pad',
        destination: 'https://evil.example.com',
        capability: 'network',
        blocked: 1,
        alerted: 0,
      },
    ]);
    assert.deepEqual(summary.invocations, { total: 3, errors: 2 });

    // Eight events a minute apart: a round bucket width, at most 120 buckets, nothing lost from the counts.
    const { bucketMs, buckets } = summary.timeline;
    assert.ok(buckets.length <= 120 && buckets.length >= 8, `${buckets.length} buckets of ${bucketMs} ms`);
    assert.equal(
      buckets.reduce((sum, b) => sum + b.blocked + b.alerted + b.other, 0),
      19,
    );
    assert.ok(buckets.every((b, i) => i === 0 || b.start - buckets[i - 1]!.start === bucketMs));
    const perMinute = s.summary({ bucketMs: 60_000 }).timeline.buckets;
    assert.deepEqual(
      perMinute.map((b) => [b.blocked, b.alerted, b.other]),
      [
        [0, 1, 0],
        [0, 4, 0],
        [1, 0, 0],
        [1, 0, 0],
        [9, 0, 0],
        [0, 1, 0],
        [1, 0, 0],
        [0, 0, 1],
      ],
    );

    const search = s.summary({ function: 'search' });
    assert.equal(search.total, 3);
    assert.deepEqual(search.invocations, { total: 1, errors: 1 });
    const late = s.summary({ sinceMs: T0 + 4 * 60_000 });
    assert.equal(late.total, 9 + 1 + 1 + 1);
    // New events change the answer (the summary is cached only while nothing changes).
    s.append(event({ function: 'checkout', action: 'blocked', time: new Date(T0 + 8 * 60_000).toISOString() }));
    assert.equal(s.summary().blocked, 13);
    s.close();
  });

  test('an empty store has an empty summary', () => {
    const s = EventStore.open(join(temp(), 'events.db'));
    const summary = s.summary();
    assert.equal(summary.total, 0);
    assert.deepEqual(summary.timeline.buckets, []);
    assert.deepEqual(summary.edges, []);
    assert.equal(s.lastId(), 0);
    s.close();
  });

  test('destinationOf: one node per service', () => {
    const cases: Array<[string, string, string]> = [
      ['network', 'POST https://api.stripe.com/v1/charges?key=[REDACTED]', 'https://api.stripe.com'],
      ['network', 'GET http://127.0.0.1:8080/health', 'http://127.0.0.1:8080'],
      ['network', 'GET http://[::1]:3000/', 'http://[::1]:3000'],
      ['network', 'GET wss://stream.example.com/v2', 'wss://stream.example.com'],
      ['network', 'GET https://user@host.example.com/x', 'https://host.example.com'],
      ['network', 'tcp://10.0.0.1:5432', 'tcp://10.0.0.1:5432'],
      ['network', 'tls://db.example.com:6380', 'tls://db.example.com:6380'],
      ['network', 'udp://10.0.0.2:53', 'udp://10.0.0.2:53'],
      ['network', 'dns:c2VjcmV0.x.attacker.example', 'dns:*.attacker.example'],
      ['network', 'dns:attacker.example', 'dns:attacker.example'],
      ['network', 'dns:localhost', 'dns:localhost'],
      ['network', 'dns:10.0.0.1', 'dns:10.0.0.1'],
      ['network', 'unix:/var/run/docker.sock', 'unix:/var/run/docker.sock'],
      ['network', "process.binding('tcp_wrap')", "process.binding('tcp_wrap')"],
      ['fs', 'read /home/me/.aws/credentials', '/home/me/.aws/credentials'],
      ['fs', 'write /tmp/a file with spaces', '/tmp/a file with spaces'],
      ['process', '/usr/bin/curl -s https://x.example.com', '/usr/bin/curl'],
      ['env', 'AWS_SECRET_ACCESS_KEY', 'env:AWS_SECRET_ACCESS_KEY'],
      ['env', 'set NODE_OPTIONS', 'env:NODE_OPTIONS'],
      ['worker', '/srv/worker.js', '/srv/worker.js'],
      ['integrity', 'Map.prototype.get', 'Map.prototype.get'],
    ];
    for (const [capability, target, expected] of cases) {
      assert.equal(destinationOf(event({ capability, target })), expected, `${capability} ${target}`);
    }
  });
});

describe('open errors', () => {
  // File names and content hashes: what "left untouched" means. A WAL-mode store's -wal/-shm files are SQLite's
  // own (any reader creates them), so only the database file itself is compared for those.
  const snapshot = (dir: string, only?: string) =>
    Object.fromEntries(
      readdirSync(dir)
        .filter((name) => only === undefined || name === only)
        .map((name) => [
          name,
          createHash('sha256')
            .update(readFileSync(join(dir, name)))
            .digest('hex'),
        ]),
    );

  test('a file of random bytes is ERR_PERIMETER_STORE_CORRUPT and is left untouched', () => {
    const dir = temp();
    const file = join(dir, 'events.db');
    const bytes = Buffer.alloc(8192);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7919 + 13) % 251;
    writeFileSync(file, bytes);
    const before = snapshot(dir);
    expectCode(() => EventStore.open(file), 'ERR_PERIMETER_STORE_CORRUPT', file);
    expectCode(() => EventStore.open(file, { readonly: true }), 'ERR_PERIMETER_STORE_CORRUPT', file);
    assert.deepEqual(snapshot(dir), before);
  });

  test('a truncated real store is ERR_PERIMETER_STORE_CORRUPT and is left untouched', () => {
    const dir = temp();
    const file = join(dir, 'events.db');
    const s = EventStore.open(file);
    for (let i = 0; i < 5000; i++) s.append(event({ target: `GET https://h.example.com/${i}` }));
    s.close();
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const before = snapshot(dir);
    expectCode(() => EventStore.open(file), 'ERR_PERIMETER_STORE_CORRUPT', file);
    assert.deepEqual(snapshot(dir), before);
  });

  /** A second real process holding an exclusive lock on `file` until `release()`. */
  async function lockHolder(file: string): Promise<{ release(): Promise<void> }> {
    const holder: ChildProcess = spawn(
      process.execPath,
      [
        '-e',
        `const db = new (require('better-sqlite3'))(process.argv[1]);
         db.exec('BEGIN EXCLUSIVE');
         process.stdout.write('locked\\n');
         process.stdin.on('end', () => { db.exec('COMMIT'); db.close(); });
         process.stdin.resume();`,
        file,
      ],
      { cwd: join(REPO, 'packages/cli'), stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const exited = new Promise((ok) => holder.once('exit', ok));
    await new Promise<void>((ok, fail) => {
      holder.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && ok());
      holder.once('exit', (code) => fail(new Error(`the lock holder exited with ${code}`)));
    });
    return {
      async release() {
        holder.stdin!.end();
        await exited;
      },
    };
  }

  test('a store locked by another process is ERR_PERIMETER_STORE_LOCKED; it opens once the lock is gone', async () => {
    const file = join(temp(), 'events.db');
    EventStore.open(file).close();
    const lock = await lockHolder(file);
    try {
      const started = performance.now();
      const error = expectCode(() => EventStore.open(file, { busyTimeoutMs: 200 }), 'ERR_PERIMETER_STORE_LOCKED', file);
      assert.ok(performance.now() - started < 5000);
      assert.match(error.hint!, /another/);
    } finally {
      await lock.release();
    }
    const reopened = EventStore.open(file);
    reopened.append(event());
    assert.equal(reopened.count(), 1);
    reopened.close();
  });

  test('events appended while another process holds the lock stay queued and are written once it is released', async () => {
    const file = join(temp(), 'events.db');
    const errors: Array<{ code: string }> = [];
    const s = EventStore.open(file, { busyTimeoutMs: 50, flushIntervalMs: 10, onError: (e) => errors.push(e) });
    const lock = await lockHolder(file);
    try {
      for (let i = 0; i < 3; i++) assert.equal(s.append(event({ target: `GET https://h.example.com/${i}` })), true);
      await new Promise((ok) => setTimeout(ok, 300));
      assert.deepEqual(
        errors.map((e) => e.code),
        ['ERR_PERIMETER_STORE_LOCKED'],
      );
      assert.equal(s.stats().queued, 3);
    } finally {
      await lock.release();
    }
    // The retry runs on the timer (at most a second later); no flush call here.
    for (let i = 0; i < 40 && s.stats().queued > 0; i++) await new Promise((ok) => setTimeout(ok, 100));
    assert.equal(s.stats().queued, 0);
    assert.equal(s.stats().lastError, null);
    s.close();
    const r = EventStore.open(file, { readonly: true });
    assert.deepEqual(
      r.query({ order: 'asc' }).map((row) => row.event.target),
      ['GET https://h.example.com/0', 'GET https://h.example.com/1', 'GET https://h.example.com/2'],
    );
    r.close();
  });

  test('read-only open of a missing file is ERR_PERIMETER_STORE_OPEN and creates nothing', () => {
    const dir = temp();
    const file = join(dir, 'missing', 'events.db');
    const error = expectCode(() => EventStore.open(file, { readonly: true }), 'ERR_PERIMETER_STORE_OPEN', file);
    assert.match(error.message, /does not exist/);
    assert.equal(existsSync(join(dir, 'missing')), false);
  });

  test('a store from a newer schema version is refused with an upgrade hint', () => {
    const dir = temp();
    const file = join(dir, 'events.db');
    EventStore.open(file).close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${store.SCHEMA_VERSION + 1}`);
    raw.close();
    const before = snapshot(dir, 'events.db');
    const error = expectCode(() => EventStore.open(file), 'ERR_PERIMETER_STORE_OPEN', file);
    assert.match(error.message, /newer/);
    assert.match(error.hint!, /upgrade/);
    expectCode(() => EventStore.open(file, { readonly: true }), 'ERR_PERIMETER_STORE_OPEN', file);
    assert.deepEqual(snapshot(dir, 'events.db'), before);
  });

  test('another application’s SQLite database is refused and not written to', () => {
    const dir = temp();
    const file = join(dir, 'app.db');
    const raw = new Database(file);
    raw.exec("CREATE TABLE users (name TEXT); INSERT INTO users VALUES ('ada')");
    raw.close();
    const before = snapshot(dir);
    const error = expectCode(() => EventStore.open(file), 'ERR_PERIMETER_STORE_OPEN', file);
    assert.match(error.message, /not a Perimeter event store/);
    assert.deepEqual(snapshot(dir), before);
  });

  test('a folder that cannot be created is ERR_PERIMETER_STORE_OPEN', () => {
    const dir = temp();
    writeFileSync(join(dir, 'plain-file'), 'x');
    expectCode(() => EventStore.open(join(dir, 'plain-file', 'events.db')), 'ERR_PERIMETER_STORE_OPEN', 'plain-file');
    expectCode(() => EventStore.open(dir), 'ERR_PERIMETER_STORE_OPEN', dir);
  });
});
