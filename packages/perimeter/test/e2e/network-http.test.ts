/**
 * http / https clients under the guard: every way a request can be made (functions, options objects, a pooled
 * keep-alive socket, a custom createConnection, ClientRequest constructed directly) from ESM default imports,
 * ESM named imports and CommonJS, judged by method and path, against real loopback servers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded, startRecordingServer } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';
import { type CountingServer, startHttpsServer, testCertificate } from '../servers/tls.js';

type Style = 'esm-default' | 'esm-named' | 'cjs';

const IMPORTS: Record<Style, string> = {
  'esm-default': `import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import probe from './probe.cjs';
const { request, get, ClientRequest, Agent } = { request: (...a) => http.request(...a), get: (...a) => http.get(...a), ClientRequest: http.ClientRequest, Agent: http.Agent };
const httpsRequest = (...a) => https.request(...a);
const HttpsAgent = https.Agent;
const httpsGet = (...a) => https.get(...a);
`,
  'esm-named': `import { request, get, ClientRequest, Agent } from 'node:http';
import { request as httpsRequest, get as httpsGet, Agent as HttpsAgent } from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import probe from './probe.cjs';
`,
  cjs: `const { request, get, ClientRequest, Agent } = require('node:http');
const { request: httpsRequest, get: httpsGet, Agent: HttpsAgent } = require('node:https');
const net = require('node:net');
const { readFileSync } = require('node:fs');
const probe = require('./probe.cjs');
`,
};

// The same table of cases for every import style. Ports arrive as argv: A (allowed paths), B (no rule), S (https).
const CASES = `
const { attempt, settle, report } = probe;
const [A, B, S] = process.argv.slice(2).map(Number);
const base = 'http://127.0.0.1:' + A;
const ca = readFileSync('ca.pem', 'utf8');
async function main() {
  await attempt('get-allowed', () => settle(get(base + '/ok/1')));
  await attempt('get-denied-path', () => settle(get(base + '/secret')));
  await attempt('post-charges', () => settle(request(base + '/v1/charges', { method: 'POST' }), 'amount=1'));
  await attempt('get-charges', () => settle(request(base + '/v1/charges')));
  await attempt('post-other', () => settle(request(base + '/v1/other', { method: 'POST' }), 'amount=1'));
  // An options object sends its path as written (a URL string would be normalised before anyone sees it); a
  // server resolves the dot segments, so the guard must judge the path the server will act on.
  const rawPath = (path) => request({ host: '127.0.0.1', port: A, path });
  await attempt('dotdot', () => settle(rawPath('/ok/../secret')));
  await attempt('dotdot-encoded', () => settle(rawPath('/ok/%2e%2e/secret')));
  await attempt('dotdot-inside', () => settle(rawPath('/ok/x/../2')));
  await attempt('options-object', () => settle(request({ host: '127.0.0.1', port: A, path: '/secret', method: 'GET' })));
  await attempt('other-port', () => settle(get('http://127.0.0.1:' + B + '/')));
  await attempt('https-allowed', () => settle(httpsRequest('https://127.0.0.1:' + S + '/secure/1', { ca })));
  await attempt('https-denied', () => settle(httpsGet('https://127.0.0.1:' + S + '/other', { ca })));
  // A pooled keep-alive socket to an allowed origin must not carry a request to a denied path.
  await attempt('keepalive', async () => {
    const agent = new HttpsAgent({ keepAlive: true, maxSockets: 1, ca });
    const secure = 'https://127.0.0.1:' + S;
    const first = await settle(httpsGet(secure + '/secure/ka1', { agent }));
    const denied = await settle(httpsGet(secure + '/other-ka', { agent })).catch((e) => e.code);
    const third = httpsGet(secure + '/secure/ka2', { agent });
    const status = await settle(third);
    agent.destroy();
    return [first, denied, status, 'reused=' + third.reusedSocket].join(',');
  });
  const viaOwnSocket = (path) => request({ host: '127.0.0.1', port: A, path, createConnection: (o) => net.connect(o.port, o.host) });
  await attempt('create-connection-allowed', () => settle(viaOwnSocket('/ok/cc')));
  await attempt('create-connection-denied', () => settle(viaOwnSocket('/secret-cc')));
  await attempt('client-request-allowed', () => settle(new ClientRequest(base + '/ok/cr')));
  await attempt('client-request-denied', () => settle(new ClientRequest(base + '/secret-cr')));
  await attempt('no-error-listener', async () => {
    get(base + '/secret-unheard');
    await new Promise((r) => setTimeout(r, 50));
    return 'alive';
  });
  report();
}
main();
`;

function scriptFor(style: Style): { name: string; source: string } {
  return { name: style === 'cjs' ? 'main.cjs' : 'main.mjs', source: IMPORTS[style] + CASES };
}

const BLOCKED_CASES = [
  'get-denied-path',
  'get-charges',
  'post-other',
  'dotdot',
  'dotdot-encoded',
  'options-object',
  'other-port',
  'https-denied',
  'create-connection-denied',
  'client-request-denied',
];
const ALLOWED_CASES = [
  'get-allowed',
  'post-charges',
  'dotdot-inside',
  'https-allowed',
  'create-connection-allowed',
  'client-request-allowed',
];
const DENIED_PATHS = ['/secret', '/v1/other', '/ok/../secret', '/ok/%2e%2e/secret', '/secret-cc', '/secret-cr'];

describe('http and https', () => {
  let allowed: Awaited<ReturnType<typeof startRecordingServer>>;
  let other: Awaited<ReturnType<typeof startRecordingServer>>;
  let secure: CountingServer;
  let ca: string;

  before(async () => {
    [allowed, other, secure] = await Promise.all([startRecordingServer(), startRecordingServer(), startHttpsServer()]);
    ca = (await testCertificate()).cert;
  });
  after(async () => {
    await Promise.all([allowed.close(), other.close(), secure.close()]);
  });

  const policy = (mode: string) => ({
    mode,
    network: {
      allow: [
        `http://127.0.0.1:${allowed.port}/ok/**`,
        `POST http://127.0.0.1:${allowed.port}/v1/charges`,
        `https://127.0.0.1:${secure.port}/secure/**`,
      ],
    },
  });

  async function run(style: Style, mode: string, preload: 'import' | 'require' = 'import') {
    const { name, source } = scriptFor(style);
    allowed.requests.length = 0;
    other.requests.length = 0;
    secure.requests.length = 0;
    const before = { other: other.connections, secure: secure.connections };
    const outcome = await runGuarded({
      policy: policy(mode),
      script: name,
      preload,
      files: { [name]: source, [PROBE_FILE]: PROBE_SOURCE, 'ca.pem': ca },
      args: [String(allowed.port), String(other.port), String(secure.port)],
    });
    await sleep(20); // let this process's servers account for anything the child sent just before exiting
    const probe = readProbe(outcome.stdout);
    return {
      ...outcome,
      probe,
      seen: allowed.requests.map((r) => `${r.method} ${r.url}`),
      otherConnections: other.connections - before.other,
      secureConnections: secure.connections - before.secure,
    };
  }

  for (const [style, preload] of [
    ['esm-default', 'import'],
    ['esm-named', 'import'],
    ['cjs', 'require'],
  ] as const) {
    test(`block mode, ${style}: allowed requests arrive, denied ones fail with ERR_PERIMETER_BLOCKED and send nothing`, async () => {
      const r = await run(style, 'block', preload);
      assert.equal(r.code, 0, r.stderr);
      for (const name of ALLOWED_CASES) assert.equal(r.probe.results[name], 'ok:200', `${name}: ${r.stderr}`);
      for (const name of BLOCKED_CASES) assert.equal(r.probe.results[name], 'ERR_PERIMETER_BLOCKED', name);
      assert.equal(r.probe.results.keepalive, 'ok:200,ERR_PERIMETER_BLOCKED,200,reused=true');
      assert.equal(r.probe.results['no-error-listener'], 'ok:alive');
      for (const path of DENIED_PATHS) {
        assert.ok(!r.seen.some((s) => s.endsWith(` ${path}`)), `the server saw denied ${path}: ${r.seen}`);
      }
      assert.ok(!r.seen.includes('GET /v1/charges'), 'GET on a POST-only rule reached the server');
      assert.ok(r.seen.includes('POST /v1/charges'));
      assert.ok(r.seen.includes('GET /ok/x/../2'), 'a path that normalises inside the rule is allowed');
      assert.equal(r.otherConnections, 0, 'the port without a rule saw a TCP connection');
      assert.deepEqual(
        secure.requests.map((q) => q.url),
        ['/secure/1', '/secure/ka1', '/secure/ka2'],
      );
      const blocked = r.events.filter((e) => e.type === 'violation');
      assert.ok(blocked.length >= BLOCKED_CASES.length, `${blocked.length} events`);
      for (const event of blocked) {
        assert.equal(event.action, 'blocked');
        assert.equal(event.capability, 'network');
        assert.equal(event.package, 'app');
      }
      const targets = blocked.map((e) => e.target);
      assert.ok(targets.includes(`GET http://127.0.0.1:${allowed.port}/v1/charges`), targets.join('\n'));
      assert.ok(targets.includes(`GET http://127.0.0.1:${allowed.port}/secret`), targets.join('\n'));
      assert.ok(targets.includes(`GET https://127.0.0.1:${secure.port}/other`), targets.join('\n'));
    });
  }

  test('the error says what was blocked and how to allow it', async () => {
    const r = await run('esm-default', 'block');
    const error = r.probe.errors['get-charges']!;
    assert.match(error.message, /Perimeter blocked network GET http:\/\/127\.0\.0\.1:\d+\/v1\/charges/);
    assert.match(error.message, /perimeter\.json: network\.allow/);
    assert.match(error.message, /hint: if this is expected, add "GET http:\/\/127\.0\.0\.1:\d+\/v1\/charges"/);
  });

  test('alert mode lets every request through and records each would-be denial as alerted', async () => {
    const r = await run('esm-default', 'alert');
    assert.equal(r.code, 0, r.stderr);
    for (const name of [...ALLOWED_CASES, ...BLOCKED_CASES]) assert.equal(r.probe.results[name], 'ok:200', name);
    assert.ok(r.seen.includes('GET /secret'));
    assert.ok(r.otherConnections > 0);
    const violations = r.events.filter((e) => e.type === 'violation');
    assert.ok(violations.length >= BLOCKED_CASES.length);
    for (const event of violations) assert.equal(event.action, 'alerted');
    assert.ok(violations.some((e) => e.target === `GET http://127.0.0.1:${other.port}/`));
  });

  test("mode 'allow' checks nothing and writes no events", async () => {
    const r = await run('cjs', 'allow', 'require');
    assert.equal(r.code, 0, r.stderr);
    for (const name of [...ALLOWED_CASES, ...BLOCKED_CASES]) assert.equal(r.probe.results[name], 'ok:200', name);
    assert.deepEqual(r.events, []);
  });
});
