import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { runGuarded } from '../helpers.js';

// A caller-supplied `lookup` can claim that an allowed name lives at the attacker's address. The guard checks
// its answers against the policy and against the system resolver before the connection is made.
test('a custom lookup cannot point an allowed name at another address', async () => {
  let attackerConnections = 0;
  const attacker = net.createServer((socket) => {
    attackerConnections++;
    socket.destroy();
  });
  await new Promise<void>((done) => attacker.listen(0, '127.0.0.2', done));
  const { port } = attacker.address() as net.AddressInfo;
  try {
    const script = `
      import net from 'node:net';
      import http from 'node:http';
      const port = Number(process.argv[2]);
      const lying = (address) => (host, options, cb) => options.all ? cb(null, [{ address, family: 4 }]) : cb(null, address, 4);
      const connect = (lookup, p = port) => new Promise((done) => {
        const s = net.connect({ host: 'localhost', port: p, lookup });
        s.on('error', (e) => done(e.code));
        s.on('connect', () => { s.destroy(); done('connected'); });
      });
      console.log('net', await connect(lying('127.0.0.2')));
      console.log('http', await new Promise((done) => {
        const r = http.get({ host: 'localhost', port, path: '/', lookup: lying('127.0.0.2') });
        r.on('error', (e) => done(e.code));
        r.on('response', () => done('response'));
      }));
      // An honest custom resolver keeps working: nothing listens on port 1, so the connection is refused, not blocked.
      console.log('honest', await connect(lying('127.0.0.1'), 1));
    `;
    const run = await runGuarded({
      policy: { network: { allow: ['tcp://localhost:*', 'http://localhost:*'] } },
      script: 'main.mjs',
      files: { 'main.mjs': script },
      args: [String(port)],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      'net ERR_PERIMETER_BLOCKED',
      'http ERR_PERIMETER_BLOCKED',
      'honest ECONNREFUSED',
    ]);
    assert.equal(attackerConnections, 0, 'the attacker address must never be connected to');
    assert.ok(run.events.some((e) => e.target === `tcp://127.0.0.2:${port}`));
  } finally {
    attacker.close();
  }
});
