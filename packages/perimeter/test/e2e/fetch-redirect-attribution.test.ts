import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runGuarded, startRecordingServer } from '../helpers.js';

// A redirect hop happens after an await, off the caller's stack. With package rules, fetch keeps the caller's
// frames (captured, not yet read) so each hop is judged for the package that asked, whether it awaited the
// fetch or chained `.then()` (whose hop would otherwise look like the app that awaits further up).
test('redirect hops are judged for the package that asked, however it awaited', async () => {
  const target = await startRecordingServer();
  const redirector = await startRecordingServer((req, res) => {
    if (req.url !== '/go') return false;
    res.writeHead(302, { location: `${target.url}/landed` });
    res.end();
    return true;
  });
  try {
    const files = {
      'node_modules/awaiter/package.json': '{"name":"awaiter"}',
      'node_modules/awaiter/index.js': `module.exports = async (u) => { try { return (await fetch(u)).status; } catch (e) { return e.code; } };`,
      'node_modules/thenner/package.json': '{"name":"thenner"}',
      'node_modules/thenner/index.js': `module.exports = (u) => fetch(u).then((r) => r.status, (e) => e.code);`,
      'main.mjs': `
        import { createRequire } from 'node:module';
        const require = createRequire(import.meta.url);
        const go = process.argv[2] + '/go';
        console.log('awaiter', await require('awaiter')(go));
        console.log('thenner', await require('thenner')(go));
        console.log('app', (await fetch(go)).status);
      `,
    };
    const run = await runGuarded({
      policy: {
        network: { allow: [`${redirector.url}/**`, `${target.url}/**`] },
        // Dependencies may reach the redirector only: following it to the target is the app's privilege.
        packages: { '*': { network: { allow: [`${redirector.url}/**`] } } },
      },
      script: 'main.mjs',
      files,
      args: [redirector.url],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      'awaiter ERR_PERIMETER_BLOCKED',
      'thenner ERR_PERIMETER_BLOCKED',
      'app 200',
    ]);
    assert.deepEqual(
      target.requests.map((r) => r.url),
      ['/landed'],
      'only the app reached the redirect target',
    );
    const hops = run.events.filter((e) => e.target === `GET ${target.url}/landed`);
    assert.deepEqual(hops.map((e) => e.package).sort(), ['awaiter', 'thenner']);
  } finally {
    await target.close();
    await redirector.close();
  }
});
