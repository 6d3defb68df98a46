import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runGuarded, startRecordingServer } from '../helpers.js';

const EVIL = `module.exports = (url) => fetch(url).then((r) => r.status, (e) => e.code);`;

// In alert mode each new behaviour is announced once per process by a `drift` event, whoever repeats it and
// however many dedup windows pass; blocked operations never produce one.
test('alert mode: a drift event names the first occurrence of each new behaviour per package', async () => {
  const server = await startRecordingServer();
  try {
    const script = `
      import { createRequire } from 'node:module';
      const evil = createRequire(import.meta.url)('evil');
      const base = process.argv[2];
      await evil(base + '/collect');
      await new Promise((r) => setTimeout(r, 1100)); // past the violation dedup window
      await evil(base + '/collect');
      await fetch(base + '/collect').catch(() => {}); // the same target from the function's own code: new for 'app'
      await evil(base + '/other');
      console.log('done');
    `;
    const files = {
      'main.mjs': script,
      'node_modules/evil/index.js': EVIL,
      'node_modules/evil/package.json': '{"name":"evil"}',
    };
    const alerted = await runGuarded({ policy: { mode: 'alert' }, script: 'main.mjs', files, args: [server.url] });
    assert.equal(alerted.code, 0, alerted.stderr);
    assert.equal(server.requests.length, 4, 'alert mode lets every request through');
    const drift = alerted.events.filter((e) => e.type === 'drift').map((e) => `${e.package} ${e.target}`);
    assert.deepEqual(
      drift.sort(),
      [`app GET ${server.url}/collect`, `evil GET ${server.url}/collect`, `evil GET ${server.url}/other`].sort(),
    );
    const violations = alerted.events.filter(
      (e) => e.type === 'violation' && e.target === `GET ${server.url}/collect` && e.package === 'evil',
    );
    assert.ok(violations.length >= 2, 'the violation itself is reported again in a later window');

    const blocked = await runGuarded({ policy: { mode: 'block' }, script: 'main.mjs', files, args: [server.url] });
    assert.equal(blocked.code, 0, blocked.stderr);
    assert.equal(blocked.events.filter((e) => e.type === 'drift').length, 0);
  } finally {
    await server.close();
  }
});
