/**
 * WebSocket (a global from Node 22): judged as GET of its ws:// URL when constructed. A denied URL throws from the
 * constructor and no upgrade request is made, even when the host and port are allowed for another path.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded } from '../helpers.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';
import { startWebSocketServer, type WebSocketServer } from '../servers/websocket.js';

const SCRIPT = `import probe from './probe.cjs';
const { attempt, report } = probe;
const [W, X] = process.argv.slice(2).map(Number);
const talk = (url) =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(url);
    socket.onerror = (event) => reject(event.error ?? new Error('websocket error'));
    socket.onopen = () => socket.send('hi');
    socket.onmessage = (event) => {
      socket.close();
      resolve(event.data);
    };
  });
// 'cold' makes the very first thing the process does a WebSocket to a denied path (see the todo test below).
if (process.argv[4] !== 'cold') await fetch('data:,warm-up');
await attempt('denied path first', () => talk('ws://127.0.0.1:' + W + '/denied'));
await attempt('allowed', () => talk('ws://127.0.0.1:' + W + '/ok'));
await attempt('denied path', () => talk('ws://127.0.0.1:' + W + '/denied-later'));
await attempt('denied port', () => talk('ws://127.0.0.1:' + X + '/ok'));
await attempt('http spelling of a denied url', () => talk('http://127.0.0.1:' + W + '/denied-http'));
report();
`;

const major = Number(/v(\d+)/.exec(process.version)?.[1]);

describe('WebSocket', { skip: major < 22 ? 'Node 20 has no global WebSocket' : false }, () => {
  let allowed: WebSocketServer;
  let other: WebSocketServer;
  before(async () => {
    [allowed, other] = await Promise.all([startWebSocketServer(), startWebSocketServer()]);
  });
  after(async () => {
    await Promise.all([allowed.close(), other.close()]);
  });

  async function run(mode: string, cold = false) {
    allowed.upgrades.length = 0;
    const otherConnections = other.connections;
    const outcome = await runGuarded({
      policy: { mode, network: { allow: [`ws://127.0.0.1:${allowed.port}/ok`] } },
      script: 'main.mjs',
      files: { 'main.mjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE },
      args: [String(allowed.port), String(other.port), cold ? 'cold' : 'warm'],
    });
    await sleep(20);
    return {
      ...outcome,
      probe: readProbe(outcome.stdout),
      upgrades: [...allowed.upgrades],
      otherConnections: other.connections - otherConnections,
    };
  }

  test('block mode: the allowed URL exchanges a message; denied ones throw from the constructor', async () => {
    const r = await run('block');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.probe.results.allowed, 'ok:echo:hi', JSON.stringify(r.probe.errors));
    for (const name of ['denied path first', 'denied path', 'denied port', 'http spelling of a denied url']) {
      assert.equal(r.probe.results[name], 'ERR_PERIMETER_BLOCKED', name);
    }
    assert.deepEqual(r.upgrades, ['/ok'], 'only the allowed URL reached the handshake');
    assert.equal(r.otherConnections, 0);
    const targets = r.events.map((e) => e.target);
    assert.ok(targets.includes(`GET ws://127.0.0.1:${allowed.port}/denied`), targets.join('\n'));
  });

  // Known gap: Node defines the WebSocket global lazily and merely reading it loads undici (~20 ms of cold start),
  // so the guard wraps the constructor only once undici is in use (first fetch or first undici connection).
  // Until then a WebSocket is judged at the socket layer by host and port only: a denied *path* on an allowed
  // host and port gets through once. A denied host or port is still blocked (as an 'error' event).
  test('a denied path is blocked even when the first thing the process does is open a WebSocket', {
    todo: 'WebSocket is wrapped only once undici is loaded; see the comment above',
  }, async () => {
    const r = await run('block', true);
    assert.equal(r.probe.results['denied path first'], 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(r.upgrades, ['/ok']);
  });

  test('alert mode: denied URLs connect and are recorded as alerted', async () => {
    const r = await run('alert');
    assert.equal(r.probe.results['denied path'], 'ok:echo:hi');
    assert.ok(r.upgrades.includes('/denied-later'));
    for (const event of r.events) assert.equal(event.action, 'alerted');
  });
});
