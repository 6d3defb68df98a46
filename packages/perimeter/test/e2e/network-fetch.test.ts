/**
 * fetch under the guard: URL and method rules, `new Request()` input, and redirects judged hop by hop (a hop to
 * a denied host or path is blocked before it is made; an allowed chain behaves exactly as unguarded fetch).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded, startRecordingServer } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';

const SCRIPT = `import probe from './probe.cjs';
const { attempt, report } = probe;
const [A, B] = process.argv.slice(2).map(Number);
const base = 'http://127.0.0.1:' + A;
const status = async (pending) => {
  const response = await pending;
  await response.text();
  return response.status;
};
await attempt('allowed', () => status(fetch(base + '/ok/1')));
await attempt('denied-path', () => status(fetch(base + '/secret')));
await attempt('post-charges', () => status(fetch(base + '/v1/charges', { method: 'POST', body: 'a=1' })));
await attempt('get-charges', () => status(fetch(base + '/v1/charges')));
await attempt('post-to-get-only', () => status(fetch(base + '/ok/1', { method: 'POST', body: 'a=1' })));
await attempt('other-port', () => status(fetch('http://127.0.0.1:' + B + '/')));
await attempt('url-object-denied', () => status(fetch(new URL(base + '/secret-url'))));
await attempt('redirect-to-other-host', () => status(fetch(base + '/redir/to-b')));
await attempt('redirect-to-denied-path', () => status(fetch(base + '/redir/to-secret')));
await attempt('redirect-chain', async () => {
  const response = await fetch(base + '/redir/chain');
  await response.text();
  return [response.status, response.redirected, new URL(response.url).pathname].join(',');
});
await attempt('see-other-after-post', async () => {
  const response = await fetch(base + '/form', { method: 'POST', body: 'x=1', headers: { 'content-type': 'text/plain' } });
  await response.text();
  return [response.status, response.redirected, new URL(response.url).pathname].join(',');
});
await attempt('manual', async () => {
  const response = await fetch(base + '/redir/to-b', { redirect: 'manual' });
  return [response.status, response.headers.get('location')?.includes(':' + B + '/') ?? false].join(',');
});
await attempt('request-allowed', () => status(fetch(new Request(base + '/ok/req'))));
await attempt('request-denied', () => status(fetch(new Request(base + '/secret-req'))));
await attempt('request-post', () => status(fetch(new Request(base + '/v1/charges', { method: 'POST', body: 'a=2' }))));
await attempt('request-post-denied', () => status(fetch(new Request(base + '/ok/2', { method: 'POST', body: 'a=2' }))));
await attempt('request-redirect-denied', () => status(fetch(new Request(base + '/redir/to-b'))));
report();
`;

const ALLOWED = ['allowed', 'post-charges', 'request-allowed', 'request-post'];
const BLOCKED = [
  'denied-path',
  'get-charges',
  'post-to-get-only',
  'other-port',
  'url-object-denied',
  'redirect-to-other-host',
  'redirect-to-denied-path',
  'request-denied',
  'request-post-denied',
  'request-redirect-denied',
];

describe('fetch', () => {
  let a: Awaited<ReturnType<typeof startRecordingServer>>;
  let b: Awaited<ReturnType<typeof startRecordingServer>>;

  before(async () => {
    b = await startRecordingServer();
    a = await startRecordingServer((req, res) => {
      const redirects: Record<string, [number, string]> = {
        '/redir/to-b': [302, `http://127.0.0.1:${b.port}/stolen?data=1`],
        '/redir/to-secret': [302, '/secret-hop'],
        '/redir/chain': [302, '/redir/two'],
        '/redir/two': [301, '/ok/final'],
        '/form': [303, '/ok/after'],
      };
      const hop = redirects[req.url ?? ''];
      if (!hop) return false;
      res.writeHead(hop[0], { location: hop[1] });
      res.end();
      return true;
    });
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  async function run(mode: string) {
    a.requests.length = 0;
    b.requests.length = 0;
    const bConnections = b.connections;
    const outcome = await runGuarded({
      policy: {
        mode,
        network: {
          allow: [
            `GET http://127.0.0.1:${a.port}/ok/**`,
            `GET http://127.0.0.1:${a.port}/redir/**`,
            `POST http://127.0.0.1:${a.port}/v1/charges`,
            `POST http://127.0.0.1:${a.port}/form`,
          ],
        },
      },
      script: 'main.mjs',
      files: { 'main.mjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE },
      args: [String(a.port), String(b.port)],
    });
    await sleep(20);
    return {
      ...outcome,
      probe: readProbe(outcome.stdout),
      seen: a.requests.map((r) => `${r.method} ${r.url}`),
      bConnections: b.connections - bConnections,
    };
  }

  test('block mode: allowed fetches work, denied ones reject with ERR_PERIMETER_BLOCKED and send nothing', async () => {
    const r = await run('block');
    assert.equal(r.code, 0, r.stderr);
    for (const name of ALLOWED) assert.equal(r.probe.results[name], 'ok:200', `${name}: ${r.stderr}`);
    for (const name of BLOCKED) assert.equal(r.probe.results[name], 'ERR_PERIMETER_BLOCKED', name);
    // fetch rejects the way it always does, a TypeError "fetch failed", with the denial as its cause.
    const error = r.probe.errors['denied-path']!;
    assert.equal(error.name, 'TypeError');
    assert.equal(error.message, 'fetch failed');
    assert.equal(error.causeCode, 'ERR_PERIMETER_BLOCKED');

    assert.equal(r.bConnections, 0, 'the host a redirect pointed to saw a connection');
    for (const path of ['/secret', '/secret-url', '/secret-hop', '/secret-req']) {
      assert.ok(!r.seen.some((s) => s.endsWith(` ${path}`)), `${path} reached the server`);
    }
    assert.ok(!r.seen.includes('GET /v1/charges'));
    assert.ok(!r.seen.includes('POST /ok/1'));
    assert.ok(!r.seen.includes('POST /ok/2'));
    // The redirect itself was fetched (it is allowed); only the hop was refused.
    assert.ok(r.seen.includes('GET /redir/to-b'));
    assert.ok(r.seen.includes('GET /redir/to-secret'));

    assert.equal(r.probe.results['redirect-chain'], 'ok:200,true,/ok/final');
    assert.deepEqual(
      r.seen.filter((s) => /chain|two|final/.test(s)),
      ['GET /redir/chain', 'GET /redir/two', 'GET /ok/final'],
    );
    // 303 after POST: the next hop is a GET without the body (and the GET is what the policy judged).
    assert.equal(r.probe.results['see-other-after-post'], 'ok:200,true,/ok/after');
    const afterHop = a.requests.find((q) => q.url === '/ok/after')!;
    assert.equal(afterHop.method, 'GET');
    assert.equal(afterHop.body, '');
    assert.equal(afterHop.headers['content-type'], undefined);
    assert.equal(r.probe.results.manual, 'ok:302,true', 'redirect: manual hands the 3xx to the caller untouched');

    const targets = r.events.filter((e) => e.type === 'violation').map((e) => e.target);
    assert.ok(targets.includes(`GET http://127.0.0.1:${b.port}/stolen?data=1`), targets.join('\n'));
    assert.ok(targets.includes(`GET http://127.0.0.1:${a.port}/secret-hop`), targets.join('\n'));
    assert.ok(targets.includes(`POST http://127.0.0.1:${a.port}/ok/1`), targets.join('\n'));
    for (const event of r.events) assert.equal(event.action, 'blocked');
  });

  test('alert mode: everything goes through (redirects included) and each denial is recorded as alerted', async () => {
    const r = await run('alert');
    assert.equal(r.code, 0, r.stderr);
    for (const name of [...ALLOWED, ...BLOCKED]) assert.equal(r.probe.results[name], 'ok:200', name);
    assert.ok(r.bConnections > 0);
    assert.ok(r.seen.includes('GET /secret-hop'));
    const violations = r.events.filter((e) => e.type === 'violation');
    assert.ok(violations.length >= BLOCKED.length - 1, JSON.stringify(violations));
    for (const event of violations) assert.equal(event.action, 'alerted');
  });

  test("mode 'allow': no checks, no events", async () => {
    const r = await run('allow');
    for (const name of [...ALLOWED, ...BLOCKED]) assert.equal(r.probe.results[name], 'ok:200', name);
    assert.deepEqual(r.events, []);
  });
});
