import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runGuarded, startRecordingServer } from '../helpers.js';

// The harness itself: without the guard the request arrives; with a deny-all policy it does not.
test('baseline reaches the server, a deny-all policy stops it', async () => {
  const server = await startRecordingServer();
  try {
    const script = `const r = await fetch(process.argv[2]).then(r => r.status, e => e.code); console.log(r);`;
    const files = { 'main.mjs': script };
    const bare = await runGuarded({ script: 'main.mjs', files, preload: 'none', args: [`${server.url}/x`] });
    assert.equal(bare.stdout.trim(), '200');
    assert.equal(server.requests.length, 1);
    const guarded = await runGuarded({
      script: 'main.mjs',
      files,
      policy: { mode: 'block' },
      args: [`${server.url}/y`],
    });
    assert.equal(guarded.stdout.trim(), 'ERR_PERIMETER_BLOCKED');
    assert.equal(server.requests.length, 1, 'the blocked request must not reach the server');
    assert.equal(guarded.events[0]?.target, `GET ${server.url}/y`);
  } finally {
    await server.close();
  }
});
