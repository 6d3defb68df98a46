/**
 * Per-invocation scope: `withInvocation` names the invocation in every event, `withPolicy` narrows the function policy
 * for the code it runs and everything that code starts (awaits, timers), nested calls intersect, and nothing run
 * inside can lift the narrowing. Also the `perimeter/lambda` wrapper's per-invocation policy and its synchronous
 * flush. Real loopback servers; each denied request is checked to have never reached its server.
 */
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGE_ROOT, runGuarded, startRecordingServer, tempDir, writeTree } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

/** A folder where `import 'perimeter'` resolves to this package, as it would once installed. */
function functionFolder(files: Record<string, string>): string {
  const dir = tempDir('perimeter-scope-');
  writeTree(dir, { [PROBE_FILE]: PROBE_SOURCE, ...files });
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules/perimeter'), 'dir');
  return dir;
}

const SCRIPT = `import http from 'node:http';
import { readFileSync } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { withInvocation, withPolicy } from 'perimeter';
import { guard } from 'perimeter/lambda';
import probe from './probe.cjs';
const { attempt, settle, report } = probe;
const [A, B, C] = process.argv.slice(2).map(Number);
const get = (port, path) => settle(http.get('http://127.0.0.1:' + port + path));
const only = (port) => ({ network: { allow: ['http://127.0.0.1:' + port] } });

await attempt('outside-A', () => get(A, '/outside'));
await attempt('outside-B', () => get(B, '/outside'));
await withInvocation({ function: 'orders', invocation: 'inv-1' }, () =>
  withPolicy(only(A), async () => {
    await attempt('narrow-A', () => get(A, '/narrow'));
    await attempt('narrow-B', () => get(B, '/narrow'));
    await new Promise((resolve) => setTimeout(resolve, 5));
    await attempt('narrow-B-after-await', () => get(B, '/after-await'));
    await attempt('narrow-B-in-timer', () => new Promise((resolve, reject) => setTimeout(() => get(B, '/timer').then(resolve, reject), 1)));
    await withPolicy(only(B), async () => {
      await attempt('nested-A', () => get(A, '/nested'));
      await attempt('nested-B', () => get(B, '/nested'));
    });
    await withInvocation({ invocation: 'inv-2' }, () => attempt('new-invocation-B', () => get(B, '/new-invocation')));
    const original = AsyncLocalStorage.prototype.getStore;
    AsyncLocalStorage.prototype.getStore = () => undefined;
    await attempt('tampered-store-B', () => get(B, '/tampered'));
    AsyncLocalStorage.prototype.getStore = original;
  }),
);
await attempt('after-B', () => get(B, '/after'));
await withPolicy(only(C), () => attempt('wider-C', () => get(C, '/wider')));
await withPolicy({ network: { mode: 'alert', allow: ['http://127.0.0.1:' + A] } }, () => attempt('alert-B', () => get(B, '/alert')));
await withPolicy({ mode: 'block' }, () => attempt('no-network-section-B', () => get(B, '/no-network-section')));
await attempt('invalid-narrower', () => withPolicy({ network: { allow: 'http://x' } }, () => 1));

// perimeter/lambda: a narrower policy for every invocation, named after the context.
const handler = guard(async (event) => get(event.port, '/lambda'), { policy: only(A) });
const context = { functionName: 'lambda-fn', awsRequestId: 'aws-req-7' };
await attempt('lambda-A', () => handler({ port: A }, context));
await attempt('lambda-B', () => handler({ port: B }, context));

// Events are on disk when the handler's promise settles, before Node's next turn (Lambda freezes right after the response).
const flushed = guard(async () => {
  http.get('http://127.0.0.1:' + C + '/flush').on('error', () => {});
  return 'done';
});
await flushed({}, { functionName: 'lambda-fn', awsRequestId: 'aws-req-flush' });
await attempt('flushed-before-next-turn', () => String(readFileSync(process.env.PERIMETER_EVENTS_FILE, 'utf8').includes('aws-req-flush')));
report();
`;

describe('withPolicy / withInvocation in a guarded process', () => {
  let a: Server;
  let b: Server;
  let c: Server;
  let results: Record<string, string>;
  let events: Array<Record<string, any>>;
  let stderr: string;

  before(async () => {
    [a, b, c] = await Promise.all([startRecordingServer(), startRecordingServer(), startRecordingServer()]);
    const run = await runGuarded({
      dir: functionFolder({ 'main.mjs': SCRIPT }),
      policy: { mode: 'block', network: { allow: [`http://127.0.0.1:${a.port}`, `http://127.0.0.1:${b.port}`] } },
      script: 'main.mjs',
      args: [String(a.port), String(b.port), String(c.port)],
    });
    stderr = run.stderr;
    assert.equal(run.code, 0, run.stderr);
    results = readProbe(run.stdout).results;
    events = run.events;
  });
  after(async () => {
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  test('outside any scope the function policy alone applies; after the scope it applies again', () => {
    assert.equal(results['outside-A'], 'ok:200', stderr);
    assert.equal(results['outside-B'], 'ok:200');
    assert.equal(results['after-B'], 'ok:200');
  });

  test('inside withPolicy only what both allow goes through, across awaits and in timers started inside', () => {
    assert.equal(results['narrow-A'], 'ok:200');
    for (const name of ['narrow-B', 'narrow-B-after-await', 'narrow-B-in-timer']) {
      assert.equal(results[name], 'ERR_PERIMETER_BLOCKED', name);
    }
  });

  test('nested withPolicy intersects; a new invocation scope or a replaced AsyncLocalStorage does not lift it', () => {
    assert.equal(results['nested-A'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(results['nested-B'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(results['new-invocation-B'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(results['tampered-store-B'], 'ERR_PERIMETER_BLOCKED');
  });

  test('a narrower policy never widens: what the function policy denies stays denied', () => {
    assert.equal(results['wider-C'], 'ERR_PERIMETER_BLOCKED');
    const denied = events.find((e) => e.target === `GET http://127.0.0.1:${c.port}/wider`);
    assert.equal(denied?.reason, 'no-rule');
  });

  test('an alerting narrower reports and lets it through; one without a network section narrows nothing there', () => {
    assert.equal(results['alert-B'], 'ok:200');
    const alerted = events.find((e) => e.target === `GET http://127.0.0.1:${b.port}/alert`);
    assert.equal(alerted?.action, 'alerted');
    assert.equal(results['no-network-section-B'], 'ok:200');
  });

  test('an invalid narrower policy is refused with a coded error', () => {
    assert.equal(results['invalid-narrower'], 'ERR_PERIMETER_POLICY_INVALID');
  });

  test('denied requests never reached their servers; allowed ones did', () => {
    assert.deepEqual(
      b.requests.map((r) => r.url),
      ['/outside', '/after', '/alert', '/no-network-section'],
    );
    assert.equal(c.connections, 0);
    assert.deepEqual(
      a.requests.map((r) => r.url),
      ['/outside', '/narrow', '/lambda'],
    );
  });

  test('events carry the invocation: function and id from withInvocation, kept by withPolicy, replaced by an inner scope', () => {
    const narrow = events.find((e) => e.target === `GET http://127.0.0.1:${b.port}/narrow`);
    assert.equal(narrow?.function, 'orders');
    assert.equal(narrow?.invocation, 'inv-1');
    assert.equal(narrow?.reason, 'scope-policy');
    assert.equal(narrow?.action, 'blocked');
    const inner = events.find((e) => e.target === `GET http://127.0.0.1:${b.port}/new-invocation`);
    assert.equal(inner?.function, 'orders');
    assert.equal(inner?.invocation, 'inv-2');
    const outside = events.find((e) => e.target === `GET http://127.0.0.1:${c.port}/wider`);
    assert.equal(outside?.invocation, null);
  });

  test('perimeter/lambda: the per-invocation policy narrows, events name the context, and are flushed on return', () => {
    assert.equal(results['lambda-A'], 'ok:200');
    assert.equal(results['lambda-B'], 'ERR_PERIMETER_BLOCKED');
    const event = events.find((e) => e.target === `GET http://127.0.0.1:${b.port}/lambda`);
    assert.equal(event?.function, 'lambda-fn');
    assert.equal(event?.invocation, 'aws-req-7');
    assert.equal(results['flushed-before-next-turn'], 'ok:true');
  });
});

test('withPolicy without a running guard throws ERR_PERIMETER_NOT_GUARDED rather than narrowing nothing', async () => {
  const run = await runGuarded({
    dir: functionFolder({
      'main.mjs': `import { withPolicy } from 'perimeter';
try { withPolicy({ network: { allow: [] } }, () => 1); console.log('ran'); } catch (e) { console.log(e.code); }`,
    }),
    script: 'main.mjs',
    preload: 'none',
  });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'ERR_PERIMETER_NOT_GUARDED');
});
