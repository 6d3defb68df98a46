/**
 * Raw sockets: net.connect / createConnection / new net.Socket().connect, tls.connect (a TLS servername is a
 * destination too: SNI must not name a host the policy denies, even on an allowed IP) and unix domain sockets.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded, tempDir } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';
import { startTcpEchoServer, type TcpEchoServer } from '../servers/tcp.js';
import { startTlsEchoServer, type TlsEchoServer, testCertificate } from '../servers/tls.js';

const SCRIPT = `const net = require('node:net');
const tls = require('node:tls');
const { readFileSync } = require('node:fs');
const { attempt, report } = require('./probe.cjs');
const [T, U, L] = process.argv.slice(2, 5).map(Number);
const [allowedSock, deniedSock] = process.argv.slice(5);
const ca = readFileSync('ca.pem', 'utf8');

// Resolves with the echo of one line, rejects with the socket's 'error'.
function exchange(socket, readyEvent = 'connect') {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once(readyEvent, () => socket.write('ping'));
    socket.once('data', (d) => {
      socket.destroy();
      resolve(String(d));
    });
  });
}

(async () => {
  await attempt('net.connect allowed', () => exchange(net.connect(T, '127.0.0.1')));
  await attempt('net.connect denied', () => exchange(net.connect(U, '127.0.0.1')));
  await attempt('createConnection options denied', () => exchange(net.createConnection({ port: U, host: '127.0.0.1' })));
  await attempt('new Socket().connect allowed', () => exchange(new net.Socket().connect(T, '127.0.0.1')));
  await attempt('new Socket().connect denied', () => exchange(new net.Socket().connect({ port: U, host: '127.0.0.1' })));
  await attempt('tls allowed by IP', () => exchange(tls.connect({ port: L, host: '127.0.0.1', ca }), 'secureConnect'));
  await attempt('tls allowed SNI', () =>
    exchange(tls.connect({ port: L, host: '127.0.0.1', servername: 'localhost', ca }), 'secureConnect'),
  );
  await attempt('tls denied SNI', () =>
    exchange(tls.connect({ port: L, host: '127.0.0.1', servername: 'evil.test', ca }), 'secureConnect'),
  );
  await attempt('tls positional denied SNI', () =>
    exchange(tls.connect(L, '127.0.0.1', { servername: 'evil.test', ca }), 'secureConnect'),
  );
  await attempt('tls denied port', () => exchange(tls.connect({ port: U, host: '127.0.0.1', ca }), 'secureConnect'));
  await attempt('unix allowed', () => exchange(net.connect(allowedSock)));
  await attempt('unix denied', () => exchange(net.connect(deniedSock)));
  await attempt('unix denied options', () => exchange(net.createConnection({ path: deniedSock })));
  await attempt('no error listener', async () => {
    const unheard = net.connect(U, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 50));
    unheard.destroy();
    return 'alive';
  });
  report();
})();
`;

describe('net, tls and unix sockets', () => {
  let allowedTcp: TcpEchoServer;
  let deniedTcp: TcpEchoServer;
  let allowedUnix: TcpEchoServer;
  let deniedUnix: TcpEchoServer;
  let secure: TlsEchoServer;
  let socketDir: string;

  before(async () => {
    socketDir = tempDir('perimeter-sock-');
    [allowedTcp, deniedTcp, secure, allowedUnix, deniedUnix] = await Promise.all([
      startTcpEchoServer(),
      startTcpEchoServer(),
      startTlsEchoServer(),
      startTcpEchoServer({ path: join(socketDir, 'allowed.sock') }),
      startTcpEchoServer({ path: join(socketDir, 'denied.sock') }),
    ]);
  });
  after(async () => {
    await Promise.all([allowedTcp, deniedTcp, secure, allowedUnix, deniedUnix].map((s) => s.close()));
  });

  async function run(mode: string) {
    const counts = () => [deniedTcp.connections, deniedUnix.connections, secure.connections];
    const [deniedBefore, deniedUnixBefore, secureBefore] = counts();
    const namesBefore = secure.servernames.length;
    const outcome = await runGuarded({
      policy: {
        mode,
        network: {
          allow: [
            `tcp://127.0.0.1:${allowedTcp.port}`,
            `tls://127.0.0.1:${secure.port}`,
            `tls://localhost:${secure.port}`,
            `unix:${socketDir}/allowed.sock`,
          ],
        },
      },
      script: 'main.cjs',
      preload: 'require',
      files: { 'main.cjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE, 'ca.pem': (await testCertificate()).cert },
      args: [
        String(allowedTcp.port),
        String(deniedTcp.port),
        String(secure.port),
        join(socketDir, 'allowed.sock'),
        join(socketDir, 'denied.sock'),
      ],
    });
    await sleep(20);
    const [deniedAfter, deniedUnixAfter, secureAfter] = counts();
    return {
      ...outcome,
      probe: readProbe(outcome.stdout),
      deniedConnections: deniedAfter! - deniedBefore!,
      deniedUnixConnections: deniedUnixAfter! - deniedUnixBefore!,
      secureConnections: secureAfter! - secureBefore!,
      servernames: secure.servernames.slice(namesBefore),
    };
  }

  test('block mode: allowed sockets exchange data, denied ones fail with an error event and never connect', async () => {
    const r = await run('block');
    assert.equal(r.code, 0, r.stderr);
    const results = r.probe.results;
    for (const name of ['net.connect allowed', 'new Socket().connect allowed', 'unix allowed']) {
      assert.equal(results[name], 'ok:echo:ping', `${name}: ${r.stderr}`);
    }
    for (const name of ['tls allowed by IP', 'tls allowed SNI']) assert.equal(results[name], 'ok:echo:ping', name);
    for (const name of [
      'net.connect denied',
      'createConnection options denied',
      'new Socket().connect denied',
      'tls denied SNI',
      'tls positional denied SNI',
      'tls denied port',
      'unix denied',
      'unix denied options',
    ]) {
      assert.equal(results[name], 'ERR_PERIMETER_BLOCKED', name);
    }
    assert.equal(results['no error listener'], 'ok:alive');
    assert.equal(r.deniedConnections, 0, 'the denied TCP port saw a connection');
    assert.equal(r.deniedUnixConnections, 0, 'the denied unix socket saw a connection');
    // Two allowed TLS handshakes; the denied SNI never reached the server, not even as a TCP connection.
    assert.equal(r.secureConnections, 2);
    assert.deepEqual(r.servernames.sort(), [false, 'localhost'].sort());
    const targets = r.events.map((e) => e.target);
    assert.ok(targets.includes(`tls://evil.test:${secure.port}`), targets.join('\n'));
    assert.ok(targets.includes(`tcp://127.0.0.1:${deniedTcp.port}`), targets.join('\n'));
    assert.ok(targets.includes(`unix:${socketDir}/denied.sock`), targets.join('\n'));
  });

  test('alert mode: every socket connects and the denials are recorded as alerted', async () => {
    const r = await run('alert');
    assert.equal(r.code, 0, r.stderr);
    for (const name of ['net.connect denied', 'new Socket().connect denied', 'unix denied']) {
      assert.equal(r.probe.results[name], 'ok:echo:ping', name);
    }
    assert.ok(r.deniedConnections >= 2, `${r.deniedConnections} connections`);
    // The denied-SNI handshakes reached the server (and failed verification there, which is beside the point).
    assert.ok(r.secureConnections >= 4, `${r.secureConnections} TLS connections`);
    assert.ok(r.events.length > 0);
    for (const event of r.events) assert.equal(event.action, 'alerted');
  });
});
