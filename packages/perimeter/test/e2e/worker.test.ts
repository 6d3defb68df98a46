/**
 * worker_threads under the guard: denied by default, and an allowed worker runs under the very policy of the
 * thread that started it — also a policy given in code, which never was in a file or in env.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PACKAGE_ROOT, runGuarded, startRecordingServer } from '../helpers.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;
let server: Server;
before(async () => {
  server = await startRecordingServer();
});
after(async () => {
  await server.close();
});

const WORKER_FETCH = (url: string) =>
  `const { parentPort } = require('node:worker_threads');
(async () => {
  const out = [];
  for (const path of ['/allowed', '/denied']) {
    try { await (await fetch(${JSON.stringify(url)} + path)).text(); out.push(path + ' ok'); }
    catch (e) { out.push(path + ' ' + (e.cause?.code || e.code)); }
  }
  parentPort.postMessage(out.join(', '));
})();`;

test('a worker is denied unless the policy allows workers', async () => {
  const run = await runGuarded({
    policy: { mode: 'block' },
    script: 'main.js',
    files: {
      'main.js': `const { Worker } = require('node:worker_threads');
try { new Worker('console.log("WORKER RAN")', { eval: true }); console.log('started'); }
catch (e) { console.log('denied ' + e.code); }`,
    },
  });
  assert.match(run.stdout, /denied ERR_PERIMETER_BLOCKED/, run.stdout + run.stderr);
  assert.doesNotMatch(run.stdout, /WORKER RAN/);
  const event = run.events.find((e) => e.capability === 'worker');
  assert.equal(event?.action, 'blocked');
  assert.equal(event?.reason, 'workers-not-allowed');
});

test('an allowed worker runs under the same policy, whatever execArgv and env it gets', async () => {
  const since = server.requests.length;
  const run = await runGuarded({
    policy: { mode: 'block', worker: { allow: true }, network: { allow: [`GET ${server.url}/allowed`] } },
    script: 'main.mjs',
    files: {
      'worker.cjs': WORKER_FETCH(server.url),
      'main.mjs': `import { Worker, SHARE_ENV } from 'node:worker_threads';
const variants = { default: {}, execArgvEmpty: { execArgv: [] }, envEmpty: { env: {} }, shareEnv: { env: SHARE_ENV } };
for (const [name, options] of Object.entries(variants)) {
  const message = await new Promise((resolve, reject) => {
    const w = new Worker(new URL('./worker.cjs', import.meta.url), options);
    w.once('message', resolve);
    w.once('error', reject);
  });
  console.log(name + ': ' + message);
}`,
    },
  });
  for (const name of ['default', 'execArgvEmpty', 'envEmpty', 'shareEnv']) {
    assert.match(
      run.stdout,
      new RegExp(`${name}: /allowed ok, /denied ERR_PERIMETER_BLOCKED`),
      run.stdout + run.stderr,
    );
  }
  const seen = server.requests.slice(since).map((q) => q.url);
  assert.deepEqual(seen, ['/allowed', '/allowed', '/allowed', '/allowed']);
  // The worker's events reach the same events file and carry the function's name even with env: {}.
  const workerEvents = run.events.filter((e) => e.target === `GET ${server.url}/denied`);
  assert.ok(workerEvents.length >= 1, JSON.stringify(run.events));
  assert.ok(workerEvents.every((e) => e.function === 'main'));
});

test('a policy given in code reaches an eval worker with an empty env', async () => {
  const since = server.requests.length;
  const run = await runGuarded({
    preload: 'none',
    script: 'main.js',
    files: {
      'main.js': `const { guard } = require(${JSON.stringify(join(PACKAGE_ROOT, 'dist/perimeter.js'))});
guard({ mode: 'block', worker: { allow: true }, network: { allow: ['GET ${server.url}/allowed'] } });
const { Worker } = require('node:worker_threads');
const w = new Worker(${JSON.stringify(WORKER_FETCH(server.url))}, { eval: true, env: {}, execArgv: [] });
w.once('message', (m) => console.log('worker: ' + m));`,
    },
  });
  assert.match(run.stdout, /worker: \/allowed ok, \/denied ERR_PERIMETER_BLOCKED/, run.stdout + run.stderr);
  assert.deepEqual(
    server.requests.slice(since).map((q) => q.url),
    ['/allowed'],
  );
});
