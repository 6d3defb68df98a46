import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PACKAGE_ROOT, runGuarded, startRecordingServer, tempDir } from '../helpers.js';

// fetch remembers "METHOD url" strings a rule allowed. The memory must never answer for a caller or a scope
// it was not made for: a withPolicy narrowing and a package rule still decide on a URL fetched before.
test('a remembered fetch decision does not outlive a narrowing scope or bypass package rules', async () => {
  const server = await startRecordingServer();
  try {
    const dir = tempDir();
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules/perimeter'));
    const script = `
      import { withPolicy } from 'perimeter';
      const url = process.argv[2];
      const attempt = () => fetch(url).then((r) => r.status, (e) => e.code);
      console.log('first', await attempt());
      console.log('second', await attempt());
      console.log('narrowed', await withPolicy({ network: { allow: [] } }, attempt));
      console.log('after', await attempt());
    `;
    const run = await runGuarded({
      dir,
      policy: { network: { allow: [`${server.url}/**`] } },
      script: 'main.mjs',
      files: { 'main.mjs': script },
      args: [`${server.url}/x`],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), [
      'first 200',
      'second 200',
      'narrowed ERR_PERIMETER_BLOCKED',
      'after 200',
    ]);
    assert.equal(server.requests.length, 3, 'the narrowed attempt never reached the server');
  } finally {
    await server.close();
  }
});
