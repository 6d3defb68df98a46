/** HTTP/2: http2.connect is judged by origin, every session.request by its :method and :path. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';
import { type CountingServer, startHttp2Server, testCertificate } from '../servers/tls.js';

const SCRIPT = `import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import probe from './probe.cjs';
const { attempt, report } = probe;
const [H, D] = process.argv.slice(2).map(Number);
const ca = readFileSync('ca.pem', 'utf8');
const fetchOn = (session, path, method = 'GET') =>
  new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': method });
    stream.on('error', reject);
    stream.on('response', (headers) => {
      stream.resume();
      stream.on('end', () => resolve(headers[':status']));
    });
    stream.end();
  });
const session = http2.connect('https://127.0.0.1:' + H, { ca });
session.on('error', () => {});
await attempt('request allowed', () => fetchOn(session, '/ok/1'));
await attempt('request denied path', () => fetchOn(session, '/secret'));
await attempt('request denied method', () => fetchOn(session, '/ok/2', 'DELETE'));
await attempt('request allowed again', () => fetchOn(session, '/ok/3'));
session.close();
await attempt('connect denied', () =>
  new Promise((resolve, reject) => {
    const other = http2.connect('https://127.0.0.1:' + D, { ca });
    other.on('error', reject);
    other.on('connect', () => {
      other.close();
      resolve('connected');
    });
  }),
);
report();
`;

describe('http2', () => {
  let allowed: CountingServer;
  let denied: CountingServer;
  before(async () => {
    [allowed, denied] = await Promise.all([startHttp2Server(), startHttp2Server()]);
  });
  after(async () => {
    await Promise.all([allowed.close(), denied.close()]);
  });

  async function run(mode: string) {
    allowed.requests.length = 0;
    const deniedBefore = denied.connections;
    const outcome = await runGuarded({
      policy: { mode, network: { allow: [`GET,POST https://127.0.0.1:${allowed.port}/ok/**`] } },
      script: 'main.mjs',
      files: { 'main.mjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE, 'ca.pem': (await testCertificate()).cert },
      args: [String(allowed.port), String(denied.port)],
    });
    await sleep(20);
    return {
      ...outcome,
      probe: readProbe(outcome.stdout),
      seen: allowed.requests.map((q) => `${q.method} ${q.url}`),
      deniedConnections: denied.connections - deniedBefore,
    };
  }

  test('block mode: allowed streams work, denied ones throw ERR_PERIMETER_BLOCKED and no frame is sent', async () => {
    const r = await run('block');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.probe.results['request allowed'], 'ok:200', r.stderr);
    assert.equal(r.probe.results['request denied path'], 'ERR_PERIMETER_BLOCKED', JSON.stringify(r.probe));
    assert.equal(r.probe.results['request denied method'], 'ERR_PERIMETER_BLOCKED', JSON.stringify(r.probe));
    assert.equal(r.probe.results['request allowed again'], 'ok:200', 'a denied stream does not break the session');
    assert.equal(r.probe.results['connect denied'], 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(r.seen, ['GET /ok/1', 'GET /ok/3']);
    assert.equal(r.deniedConnections, 0, 'the denied origin saw a connection');
    const targets = r.events.map((e) => e.target);
    assert.ok(targets.includes(`GET https://127.0.0.1:${allowed.port}/secret`), targets.join('\n'));
    assert.ok(targets.includes(`DELETE https://127.0.0.1:${allowed.port}/ok/2`), targets.join('\n'));
  });

  test('alert mode: everything goes through and is recorded as alerted', async () => {
    const r = await run('alert');
    assert.equal(r.probe.results['request denied path'], 'ok:200');
    assert.equal(r.probe.results['connect denied'], 'ok:connected');
    assert.ok(r.seen.includes('GET /secret'));
    assert.ok(r.events.length > 0);
    for (const event of r.events) assert.equal(event.action, 'alerted');
  });
});
