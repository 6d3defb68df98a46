/**
 * Host normalisation end to end: an IP literal written in another notation is the same host as the rule's
 * (it connects to the same address), a name is not its address (`localhost` needs a rule of its own), and a
 * rule's scheme is part of the rule (plain http never matches https and the other way round).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded, startRecordingServer } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';
import { type CountingServer, startHttpsServer } from '../servers/tls.js';

const SCRIPT = `import http from 'node:http';
import probe from './probe.cjs';
const { attempt, settle, report } = probe;
const [A, S, V6] = process.argv.slice(2).map(Number);
const status = async (pending) => {
  const response = await pending;
  await response.text();
  return response.status;
};
// fetch parses with the WHATWG URL parser, so the guard sees the canonical host there.
for (const host of ['127.0.0.1', '2130706433', '0x7f.1', '0177.0.0.1', '127.1', '[::ffff:127.0.0.1]', '[::ffff:7f00:1]', 'localhost', '0x7f.0.0.2']) {
  await attempt('fetch ' + host, () => status(fetch('http://' + host + ':' + A + '/seen/' + host)));
}
// http.request with an options object hands the host string as written to net and dns: the guard must read it
// the way getaddrinfo will.
for (const host of ['127.0.0.1', '2130706433', '0x7f.1', '127.1', '::ffff:127.0.0.1', 'localhost', '127.0.0.2']) {
  await attempt('http ' + host, () => settle(http.request({ host, port: A, path: '/seen/raw-' + host })));
}
await attempt('https scheme to an http rule', () => status(fetch('https://127.0.0.1:' + A + '/seen/https')));
await attempt('http scheme to an https rule', () => status(fetch('http://127.0.0.1:' + S + '/plain')));
await attempt('http.get to an https rule', () => settle(http.get('http://127.0.0.1:' + S + '/plain-get')));
await attempt('ipv6 loopback', () => status(fetch('http://[::1]:' + V6 + '/v6')));
await attempt('ipv6 long form', () => status(fetch('http://[0:0:0:0:0:0:0:1]:' + V6 + '/v6-long')));
report();
`;

describe('host normalisation and schemes', () => {
  let a: Awaited<ReturnType<typeof startRecordingServer>>;
  let v6: Awaited<ReturnType<typeof startRecordingServer>>;
  let secure: CountingServer;

  before(async () => {
    [a, v6, secure] = await Promise.all([
      startRecordingServer(),
      startRecordingServer(undefined, '::1'),
      startHttpsServer(),
    ]);
  });
  after(async () => {
    await Promise.all([a.close(), v6.close(), secure.close()]);
  });

  async function run(extraRules: string[] = []) {
    a.requests.length = 0;
    const secureConnections = secure.connections;
    const outcome = await runGuarded({
      policy: {
        network: {
          allow: [
            `http://127.0.0.1:${a.port}`,
            `https://127.0.0.1:${secure.port}`,
            `http://[::1]:${v6.port}`,
            ...extraRules,
          ],
        },
      },
      script: 'main.mjs',
      files: { 'main.mjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE },
      args: [String(a.port), String(secure.port), String(v6.port)],
    });
    await sleep(20);
    return {
      ...outcome,
      probe: readProbe(outcome.stdout),
      seen: a.requests.map((r) => r.url),
      secureConnections: secure.connections - secureConnections,
    };
  }

  test('other notations of the allowed IP are that IP; localhost and other addresses are not', async () => {
    const r = await run();
    assert.equal(r.code, 0, r.stderr);
    const results = r.probe.results;
    for (const host of [
      '127.0.0.1',
      '2130706433',
      '0x7f.1',
      '0177.0.0.1',
      '127.1',
      '[::ffff:127.0.0.1]',
      '[::ffff:7f00:1]',
    ]) {
      assert.equal(results[`fetch ${host}`], 'ok:200', `fetch ${host}: ${r.stderr}`);
    }
    for (const host of ['127.0.0.1', '2130706433', '0x7f.1', '127.1', '::ffff:127.0.0.1']) {
      assert.equal(results[`http ${host}`], 'ok:200', `http ${host}: ${r.stderr}`);
    }
    for (const name of ['fetch localhost', 'fetch 0x7f.0.0.2', 'http localhost', 'http 127.0.0.2']) {
      assert.equal(results[name], 'ERR_PERIMETER_BLOCKED', name);
    }
    assert.ok(!r.seen.some((u) => u.includes('localhost') || u.includes('127.0.0.2') || u.includes('0x7f.0.0.2')));
    const targets = r.events.map((e) => e.target);
    assert.ok(targets.includes(`GET http://localhost:${a.port}/seen/localhost`), targets.join('\n'));
    assert.ok(targets.includes(`GET http://127.0.0.2:${a.port}/seen/0x7f.0.0.2`), 'events show the canonical host');
    assert.equal(results['ipv6 loopback'], 'ok:200');
    assert.equal(results['ipv6 long form'], 'ok:200');
  });

  test('a scheme never matches the other scheme', async () => {
    const r = await run();
    assert.equal(r.probe.results['https scheme to an http rule'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r.probe.results['http scheme to an https rule'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r.probe.results['http.get to an https rule'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r.secureConnections, 0, 'plain http reached the https-only port');
    assert.ok(!r.seen.includes('/seen/https'));
  });

  test('localhost is allowed by a rule that names it', async () => {
    const r = await run([`http://localhost:${a.port}`]);
    assert.equal(r.probe.results['fetch localhost'], 'ok:200', r.stderr);
    assert.equal(r.probe.results['http localhost'], 'ok:200', r.stderr);
    assert.ok(r.seen.includes('/seen/localhost'));
    assert.equal(r.probe.results['fetch 0x7f.0.0.2'], 'ERR_PERIMETER_BLOCKED');
  });
});
