/** UDP: send to an allowed port arrives; send or connect to a denied one fails and no datagram leaves. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';
import { startUdpListener, type UdpListener } from '../servers/udp.js';

const SCRIPT = `import dgram from 'node:dgram';
import probe from './probe.cjs';
const { attempt, report } = probe;
const [P, Q] = process.argv.slice(2).map(Number);
const sendTo = (socket, text, port) =>
  new Promise((resolve, reject) => socket.send(text, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));
const socket = dgram.createSocket('udp4');
await attempt('send allowed', () => sendTo(socket, 'hello-allowed', P));
await attempt('send denied', () => sendTo(socket, 'hello-denied', Q));
await attempt('send denied, offset form', () =>
  new Promise((resolve, reject) =>
    socket.send(Buffer.from('xx-offset'), 0, 9, Q, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
  ),
);
await attempt('send denied, no callback', () =>
  new Promise((resolve, reject) => {
    const quiet = dgram.createSocket('udp4');
    const timer = setTimeout(() => (quiet.close(), resolve()), 200);
    quiet.once('error', (err) => {
      clearTimeout(timer);
      quiet.close();
      reject(err);
    });
    quiet.send('no-callback', Q, '127.0.0.1');
  }),
);
await attempt('connect allowed then send', () =>
  new Promise((resolve, reject) => {
    const connected = dgram.createSocket('udp4');
    connected.connect(P, '127.0.0.1', (err) => {
      if (err) return reject(err);
      connected.send('connected-allowed', (e) => (connected.close(), e ? reject(e) : resolve()));
    });
  }),
);
await attempt('connect denied', () =>
  new Promise((resolve, reject) => {
    const connected = dgram.createSocket('udp4');
    connected.once('error', (err) => (connected.close(), reject(err)));
    connected.connect(Q, '127.0.0.1', (err) => {
      if (err) return reject(err);
      connected.send('connected-denied', () => (connected.close(), resolve()));
    });
  }),
);
socket.close();
report();
`;

describe('dgram', () => {
  let allowed: UdpListener;
  let denied: UdpListener;
  before(async () => {
    [allowed, denied] = await Promise.all([startUdpListener(), startUdpListener()]);
  });
  after(async () => {
    await Promise.all([allowed.close(), denied.close()]);
  });

  async function run(mode: string) {
    allowed.packets.length = 0;
    denied.packets.length = 0;
    const outcome = await runGuarded({
      policy: { mode, network: { allow: [`udp://127.0.0.1:${allowed.port}`] } },
      script: 'main.mjs',
      files: { 'main.mjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE },
      args: [String(allowed.port), String(denied.port)],
    });
    await sleep(50);
    return { ...outcome, probe: readProbe(outcome.stdout) };
  }

  test('block mode: allowed datagrams arrive, denied sends fail with ERR_PERIMETER_BLOCKED and send nothing', async () => {
    const r = await run('block');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.probe.results['send allowed'], 'ok');
    assert.equal(r.probe.results['connect allowed then send'], 'ok');
    for (const name of ['send denied', 'send denied, offset form', 'send denied, no callback', 'connect denied']) {
      assert.equal(r.probe.results[name], 'ERR_PERIMETER_BLOCKED', name);
    }
    assert.deepEqual(allowed.packets.sort(), ['connected-allowed', 'hello-allowed']);
    assert.deepEqual(denied.packets, [], 'a denied datagram arrived');
    assert.ok(r.events.some((e) => e.target === `udp://127.0.0.1:${denied.port}` && e.action === 'blocked'));
  });

  test('alert mode: datagrams are sent and recorded as alerted', async () => {
    const r = await run('alert');
    assert.equal(r.probe.results['send denied'], 'ok');
    assert.ok(denied.packets.includes('hello-denied'));
    assert.ok(r.events.length > 0);
    for (const event of r.events) assert.equal(event.action, 'alerted');
  });
});
