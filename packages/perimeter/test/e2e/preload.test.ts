/**
 * Starting the guard: every preload form with ESM and CJS handlers, a double preload, the fail-closed stop on
 * an invalid or missing policy (before the handler's first line), PERIMETER_POLICY, the programmatic guard()
 * from the package, and the platform's runtime endpoint.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { PACKAGE_ROOT, REGISTER, runGuarded, startRecordingServer, tempDir } from '../helpers.js';

const MARKER = 'handler-ran';
// Only the handlers that must never run write the marker: under a valid policy the fs guard would judge it.
const MARKER_ESM = `import { writeFileSync } from 'node:fs';\nwriteFileSync(${JSON.stringify(MARKER)}, 'yes');\n`;
const MARKER_CJS = `require('node:fs').writeFileSync(${JSON.stringify(MARKER)}, 'yes');\n`;
const ESM_HANDLER = `const url = process.argv[2];
const outcome = await fetch(url).then((r) => 'ok:' + r.status, (e) => e.code);
console.log(outcome);
`;
const CJS_HANDLER = `const http = require('node:http');
const req = http.get(process.argv[2], (res) => { res.resume(); console.log('ok:' + res.statusCode); });
req.on('error', (e) => console.log(e.code));
`;

describe('preload and policy loading', () => {
  let server: Awaited<ReturnType<typeof startRecordingServer>>;
  before(async () => {
    server = await startRecordingServer();
  });
  after(async () => {
    await server.close();
  });

  for (const preload of ['import', 'require', 'node-options'] as const) {
    for (const [kind, handler] of [
      ['esm', ESM_HANDLER],
      ['cjs', CJS_HANDLER],
    ] as const) {
      test(`${preload} preload guards a ${kind} handler`, async () => {
        const script = kind === 'esm' ? 'handler.mjs' : 'handler.cjs';
        const seen = server.requests.length;
        const denied = await runGuarded({
          policy: { network: { allow: [`http://127.0.0.1:${server.port}/allowed/**`] } },
          script,
          preload,
          files: { [script]: handler },
          args: [`${server.url}/denied`],
        });
        assert.equal(denied.stdout.trim(), 'ERR_PERIMETER_BLOCKED', denied.stderr);
        assert.equal(denied.events.length, 1);
        const allowed = await runGuarded({
          policy: { network: { allow: [`http://127.0.0.1:${server.port}/allowed/**`] } },
          script,
          preload,
          files: { [script]: handler },
          args: [`${server.url}/allowed/x`],
        });
        assert.equal(allowed.stdout.trim(), 'ok:200', allowed.stderr);
        assert.deepEqual(
          server.requests.slice(seen).map((r) => r.url),
          ['/allowed/x'],
        );
      });
    }
  }

  test('NODE_OPTIONS and --import together install the guard once', async () => {
    const r = await runGuarded({
      policy: { mode: 'block' },
      script: 'handler.mjs',
      preload: 'import',
      env: { NODE_OPTIONS: `--import ${REGISTER}` },
      files: {
        'handler.mjs': `${ESM_HANDLER}
const guards = Object.getOwnPropertySymbols(globalThis).filter((s) => s.description === 'perimeter.guard');
console.log('guards:' + guards.length);`,
      },
      args: [`${server.url}/twice`],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['ERR_PERIMETER_BLOCKED', 'guards:1']);
    assert.equal(r.events.length, 1, 'one denial, one event: a second install would judge (and report) twice');
    assert.ok(!server.requests.some((q) => q.url === '/twice'));
  });

  test('perimeter/register: --import gets the ES entry, --require the CommonJS file, and both start one guard', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules', 'perimeter'), 'dir');
    const r = await runGuarded({
      dir,
      policy: { mode: 'block' },
      script: 'handler.mjs',
      preload: 'none',
      env: { NODE_OPTIONS: '--require perimeter/register --import perimeter/register' },
      files: {
        'handler.mjs': `import { createRequire } from 'node:module';
console.log(import.meta.resolve('perimeter/register').split('/').pop());
console.log(createRequire(import.meta.url).resolve('perimeter/register').split('/').pop());
${ESM_HANDLER}
const guards = Object.getOwnPropertySymbols(globalThis).filter((s) => s.description === 'perimeter.guard');
console.log('guards:' + guards.length);`,
      },
      args: [`${server.url}/by-name`],
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['register.mjs', 'register.js', 'ERR_PERIMETER_BLOCKED', 'guards:1']);
    assert.equal(r.events.length, 1, 'one denial, one event: a second install would judge (and report) twice');
    assert.ok(!server.requests.some((q) => q.url === '/by-name'));
  });

  test('--import of the CommonJS preload file itself (an absolute path to dist/register.js) guards too', async () => {
    const r = await runGuarded({
      policy: { mode: 'block' },
      script: 'handler.mjs',
      preload: 'none',
      env: { NODE_OPTIONS: `--import ${REGISTER}` },
      files: { 'handler.mjs': ESM_HANDLER },
      args: [`${server.url}/cjs-file`],
    });
    assert.equal(r.stdout.trim(), 'ERR_PERIMETER_BLOCKED', r.stderr);
    assert.equal(r.events.length, 1);
    assert.ok(!server.requests.some((q) => q.url === '/cjs-file'));
  });

  const INVALID: Array<{ name: string; text: string; code: string; key: RegExp }> = [
    {
      name: 'bad JSON',
      text: '{\n  "mode": "block",\n  "network": { "allow": [] },\n}\n',
      code: 'ERR_PERIMETER_POLICY_JSON',
      key: /line 4, column 1/,
    },
    {
      name: 'an unknown key (a typo)',
      text: JSON.stringify({ mode: 'block', netwrok: { allow: [] } }),
      code: 'ERR_PERIMETER_POLICY_INVALID',
      key: /netwrok/,
    },
    {
      name: 'a bad pattern',
      text: JSON.stringify({ network: { allow: ['https://ok.example', 'api.example.com/v1'] } }),
      code: 'ERR_PERIMETER_POLICY_PATTERN',
      key: /network\.allow\[1\]/,
    },
    {
      name: 'a wrong type',
      text: JSON.stringify({ network: { allow: 'https://api.example.com' } }),
      code: 'ERR_PERIMETER_POLICY_INVALID',
      key: /network\.allow/,
    },
    {
      name: 'a wrong mode',
      text: JSON.stringify({ mode: 'deny' }),
      code: 'ERR_PERIMETER_POLICY_INVALID',
      key: /mode/,
    },
  ];
  for (const preload of ['import', 'require'] as const) {
    for (const invalid of INVALID) {
      test(`${invalid.name} stops the function before the handler loads (--${preload})`, async () => {
        const script = preload === 'import' ? 'handler.mjs' : 'handler.cjs';
        const r = await runGuarded({
          script,
          preload,
          files: {
            'perimeter.json': invalid.text,
            [script]: preload === 'import' ? MARKER_ESM + ESM_HANDLER : MARKER_CJS + CJS_HANDLER,
          },
          args: [`${server.url}/never`],
        });
        assert.equal(r.code, 78, r.stderr);
        assert.ok(!existsSync(join(r.dir, MARKER)), "the handler's first line ran");
        assert.match(r.stderr, new RegExp(invalid.code));
        assert.ok(r.stderr.includes(join(r.dir, 'perimeter.json')), `stderr names the file:\n${r.stderr}`);
        assert.match(r.stderr, invalid.key, 'stderr names the key');
        assert.match(r.stderr, /hint: /);
        assert.match(r.stderr, /the function was not started/);
        const event = r.events.find((e) => e.type === 'policy-error');
        assert.ok(event, 'a policy-error event was written');
        assert.equal(event.reason, invalid.code);
        assert.equal(event.target, join(r.dir, 'perimeter.json'));
      });
    }
  }

  test('a missing policy stops the function with ERR_PERIMETER_POLICY_NOT_FOUND', async () => {
    const r = await runGuarded({
      script: 'handler.mjs',
      files: { 'handler.mjs': MARKER_ESM + ESM_HANDLER },
      args: [`${server.url}/never`],
    });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /ERR_PERIMETER_POLICY_NOT_FOUND/);
    assert.ok(r.stderr.includes(join(r.dir, 'perimeter.json')), 'stderr says where it looked');
    assert.ok(!existsSync(join(r.dir, MARKER)));
    assert.equal(r.events.find((e) => e.type === 'policy-error')?.reason, 'ERR_PERIMETER_POLICY_NOT_FOUND');
  });

  test('a PERIMETER_POLICY that does not exist stops the function too', async () => {
    const r = await runGuarded({
      policy: { mode: 'allow' },
      script: 'handler.mjs',
      files: { 'handler.mjs': ESM_HANDLER },
      env: { PERIMETER_POLICY: 'nowhere/policy.json' },
      args: [`${server.url}/never`],
    });
    assert.equal(r.code, 78);
    assert.match(r.stderr, /ERR_PERIMETER_POLICY_NOT_FOUND/);
    assert.match(r.stderr, /nowhere\/policy\.json/);
  });

  test('PERIMETER_POLICY replaces the perimeter.json beside the handler', async () => {
    const r = await runGuarded({
      policy: { mode: 'block' },
      script: 'handler.mjs',
      files: {
        'handler.mjs': ESM_HANDLER,
        'policies/wider.json': JSON.stringify({ network: { allow: [`http://127.0.0.1:${server.port}/env/**`] } }),
      },
      env: { PERIMETER_POLICY: 'policies/wider.json' },
      args: [`${server.url}/env/ok`],
    });
    assert.equal(r.stdout.trim(), 'ok:200', r.stderr);
    assert.ok(server.requests.some((q) => q.url === '/env/ok'));
  });

  for (const [kind, file, source] of [
    ['CommonJS', 'main.cjs', `const { guard } = require('perimeter');\n(async function main() {`],
    ['ESM', 'main.mjs', `import { guard } from 'perimeter';\nawait (async function main() {`],
  ] as const) {
    test(`guard(policy) from code (${kind}), and a second guard() with another policy is refused`, async () => {
      const dir = tempDir();
      mkdirSync(join(dir, 'node_modules'));
      symlinkSync(PACKAGE_ROOT, join(dir, 'node_modules', 'perimeter'));
      const policy = { network: { allow: [`http://127.0.0.1:${server.port}/code/**`] } };
      const script = `${source}
  const policy = ${JSON.stringify(policy)};
  const info = guard(policy);
  console.log('file:' + info.policyFile);
  const fetchOutcome = (url) => fetch(url).then((r) => 'ok:' + r.status, (e) => e.code);
  console.log(await fetchOutcome('${server.url}/code/ok'));
  console.log(await fetchOutcome('${server.url}/not-code'));
  try {
    guard({ mode: 'allow' });
    console.log('second guard accepted');
  } catch (e) {
    console.log(e.code);
  }
  guard(policy);
  console.log('same policy again: fine');
  console.log(await fetchOutcome('${server.url}/still-denied'));
})();
`;
      const r = await runGuarded({ dir, script: file, preload: 'none', files: { [file]: script } });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), [
        'file:<inline>',
        'ok:200',
        'ERR_PERIMETER_BLOCKED',
        'ERR_PERIMETER_ALREADY_GUARDED',
        'same policy again: fine',
        'ERR_PERIMETER_BLOCKED',
      ]);
      assert.ok(server.requests.some((q) => q.url === '/code/ok'));
      assert.ok(!server.requests.some((q) => q.url === '/not-code' || q.url === '/still-denied'));
    });
  }

  describe('platform runtime endpoint', () => {
    let runtimeApi: Awaited<ReturnType<typeof startRecordingServer>>;
    before(async () => {
      runtimeApi = await startRecordingServer();
    });
    after(async () => {
      await runtimeApi.close();
    });
    const script = `import http from 'node:http';
const [api, other] = process.argv.slice(2);
const viaHttp = (url) => new Promise((resolve) => {
  http.get(url, (res) => { res.resume(); resolve('ok:' + res.statusCode); }).on('error', (e) => resolve(e.code));
});
console.log(await viaHttp('http://' + api + '/2018-06-01/runtime/invocation/next'));
console.log(await fetch('http://' + api + '/2018-06-01/runtime/invocation/abc/response', { method: 'POST', body: '{}' }).then((r) => 'ok:' + r.status, (e) => e.code));
console.log(await fetch(other).then((r) => 'ok:' + r.status, (e) => e.code));
`;

    test('AWS_LAMBDA_RUNTIME_API keeps working under a deny-all policy', async () => {
      const seen = runtimeApi.requests.length;
      const r = await runGuarded({
        policy: { mode: 'block' },
        script: 'bootstrap.mjs',
        files: { 'bootstrap.mjs': script },
        env: { AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${runtimeApi.port}` },
        args: [`127.0.0.1:${runtimeApi.port}`, `${server.url}/from-lambda`],
      });
      assert.deepEqual(r.stdout.trim().split('\n'), ['ok:200', 'ok:200', 'ERR_PERIMETER_BLOCKED'], r.stderr);
      assert.equal(runtimeApi.requests.length - seen, 2);
      assert.ok(!server.requests.some((q) => q.url === '/from-lambda'));
    });

    test('network.platform: false blocks the runtime API like any other host', async () => {
      const seen = runtimeApi.requests.length;
      const connections = runtimeApi.connections;
      const r = await runGuarded({
        policy: { network: { platform: false } },
        script: 'bootstrap.mjs',
        files: { 'bootstrap.mjs': script },
        env: { AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${runtimeApi.port}` },
        args: [`127.0.0.1:${runtimeApi.port}`, `${server.url}/from-lambda`],
      });
      await sleep(20);
      assert.deepEqual(r.stdout.trim().split('\n'), [
        'ERR_PERIMETER_BLOCKED',
        'ERR_PERIMETER_BLOCKED',
        'ERR_PERIMETER_BLOCKED',
      ]);
      assert.equal(runtimeApi.requests.length, seen);
      assert.equal(runtimeApi.connections, connections);
    });
  });
});
