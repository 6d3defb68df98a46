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

// The platform's endpoints (the Lambda Runtime API) are allowed for the runtime and the app only. A remembered
// decision must not carry that allowance over to a dependency fetching the very same URL string, over a
// keep-alive socket the socket layer never sees again.
test('a remembered fetch decision never carries the platform allowance over to a dependency', async () => {
  const runtimeApi = await startRecordingServer();
  try {
    const next = `${runtimeApi.url}/2018-06-01/runtime/invocation/next`;
    const run = await runGuarded({
      policy: { mode: 'block' },
      env: { AWS_LAMBDA_RUNTIME_API: runtimeApi.url.replace('http://', '') },
      script: 'main.mjs',
      files: {
        'node_modules/dep/package.json': '{"name":"dep"}',
        'node_modules/dep/index.js': 'module.exports = (u) => fetch(u).then((r) => r.status, (e) => e.code);',
        'main.mjs': `
          import { createRequire } from 'node:module';
          const url = process.argv[2];
          console.log('app', (await fetch(url)).status);
          console.log('app again', (await fetch(url)).status);
          console.log('dep', await createRequire(import.meta.url)('dep')(url));
        `,
      },
      args: [next],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.stdout.trim().split('\n'), ['app 200', 'app again 200', 'dep ERR_PERIMETER_BLOCKED']);
    assert.equal(runtimeApi.requests.length, 2, 'the dependency never reached the Runtime API');
  } finally {
    await runtimeApi.close();
  }
});
