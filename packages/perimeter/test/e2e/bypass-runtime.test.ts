/**
 * Bypass suite, runtime internals: a hostile package (node_modules/evil) tries to get around the guard through
 * Node's raw bindings, vm, worker threads and native addons. Each test checks that the escape failed (the
 * server saw nothing, the marker file was not written) and that the legitimate operation beside it still works.
 * Where it is cheap, the same fixture first runs without the guard to prove the technique is real.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixtureResults, runGuarded, startRecordingServer, tempDir } from '../helpers.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

const REPORT = `
function report(name, fn) {
  return Promise.resolve().then(fn).then(
    () => console.log('RESULT ' + name + ' ok'),
    (e) => console.log('RESULT ' + name + ' ' + (e && (e.code || e.message))),
  );
}
module.exports = { report };
`;

function evil(source: string): Record<string, string> {
  return {
    'node_modules/evil/package.json': '{"name":"evil","version":"1.0.0","main":"index.js"}',
    'node_modules/evil/index.js': source,
    'report.js': REPORT,
  };
}

let server: Server;
before(async () => {
  server = await startRecordingServer();
});
after(async () => {
  await server.close();
});

function basePolicy(extra: Record<string, unknown> = {}) {
  return { mode: 'block', network: { allow: [`GET ${server.url}/allowed`] }, ...extra };
}

const RAW_TCP = `
const { report } = require('../../report.js');
module.exports = (port) => report('raw-tcp', () => new Promise((resolve, reject) => {
  const { TCP, TCPConnectWrap, constants } = process.binding('tcp_wrap');
  const handle = new TCP(constants.SOCKET);
  const req = new TCPConnectWrap();
  req.oncomplete = (status) => (status === 0 ? resolve() : reject(new Error('status ' + status)));
  const err = handle.connect(req, '127.0.0.1', port);
  if (err) reject(new Error('connect ' + err));
}));
`;

describe('bypass suite: runtime internals', () => {
  test('bypass: raw tcp_wrap connect through process.binding', async () => {
    const files = {
      ...evil(RAW_TCP),
      'main.js': `const { report } = require('./report.js');
const port = Number(process.argv[2]);
(async () => {
  await report('allowed', () => fetch('${server.url}/allowed').then((r) => r.text()));
  await require('evil')(port);
  setTimeout(() => {}, 200);
})();`,
    };
    // Baseline: without the guard the raw connect reaches the server.
    const baseline = await runGuarded({ preload: 'none', script: 'main.js', files, args: [String(server.port)] });
    assert.equal(fixtureResults(baseline)['raw-tcp'], 'ok', baseline.stdout + baseline.stderr);
    const before = server.requests.length;
    const run = await runGuarded({ policy: basePolicy(), script: 'main.js', files, args: [String(server.port)] });
    const r = fixtureResults(run);
    assert.equal(r.allowed, 'ok', run.stdout + run.stderr);
    assert.equal(r['raw-tcp'], 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(
      server.requests.slice(before).map((q) => q.url),
      ['/allowed'],
    );
    const event = run.events.find((e) => e.target === "process.binding('tcp_wrap')");
    assert.equal(event?.capability, 'network');
    assert.equal(event?.package, 'evil');
  });

  test('bypass: raw spawn_sync binding runs a program', async () => {
    const dir = tempDir();
    const marker = join(dir, 'pwned');
    const files = {
      ...evil(`const { report } = require('../../report.js');
module.exports = (marker) => report('spawn-sync', () => {
  const r = process.binding('spawn_sync').spawn({
    file: '/bin/sh', args: ['sh', '-c', 'echo pwned > ' + marker], envPairs: [], cwd: process.cwd(),
    stdio: [{ type: 'ignore' }, { type: 'ignore' }, { type: 'ignore' }],
  });
  if (r.error) throw new Error('spawn error ' + r.error);
});`),
      'main.js': `const { report } = require('./report.js');
(async () => {
  await report('allowed', () => require('node:os').hostname());
  await require('evil')(process.argv[2]);
})();`,
    };
    const baseline = await runGuarded({ preload: 'none', script: 'main.js', files, args: [marker], dir });
    assert.equal(fixtureResults(baseline)['spawn-sync'], 'ok', baseline.stdout + baseline.stderr);
    assert.ok(existsSync(marker), 'baseline: the raw spawn ran');
    const dir2 = tempDir();
    const marker2 = join(dir2, 'pwned');
    const run = await runGuarded({ policy: basePolicy(), script: 'main.js', files, args: [marker2], dir: dir2 });
    assert.equal(fixtureResults(run).allowed, 'ok');
    assert.equal(fixtureResults(run)['spawn-sync'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(existsSync(marker2), false);
  });

  test('bypass: raw fs binding reads a file the JS layer would judge', async () => {
    const run = await runGuarded({
      policy: basePolicy(),
      script: 'main.js',
      files: {
        ...evil(`const { report } = require('../../report.js');
module.exports = () => report('raw-fs', () => {
  const fs = process.binding('fs');
  if (typeof fs.open !== 'function') throw new Error('no open');
});`),
        'main.js': `const { report } = require('./report.js');
(async () => {
  await report('allowed', () => process.binding('os') && process.binding('constants'));
  await require('evil')();
  await report('linked', () => process._linkedBinding('fs'));
})();`,
      },
    });
    const r = fixtureResults(run);
    assert.equal(r.allowed, 'ok', run.stdout + run.stderr);
    assert.equal(r['raw-fs'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r.linked, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: binding name whose toString changes between check and load', async () => {
    const run = await runGuarded({
      policy: basePolicy(),
      script: 'main.js',
      files: {
        ...evil(`const { report } = require('../../report.js');
module.exports = () => report('toctou', () => {
  let n = 0;
  const name = { toString: () => (n++ === 0 ? 'os' : 'tcp_wrap') };
  const b = process.binding(name);
  if (typeof b.TCP === 'function') return;
  throw new Error('got ' + Object.keys(b).slice(0, 3));
});`),
        'main.js': `require('evil')();`,
      },
    });
    // Converted once: the guard judged 'os' and Node loaded 'os', so no TCP constructor came back.
    assert.match(fixtureResults(run).toctou ?? '', /^got /, run.stdout + run.stderr);
  });

  test('bypass: vm context escape to reach pristine modules', async () => {
    const run = await runGuarded({
      policy: basePolicy(),
      script: 'main.js',
      files: {
        ...evil(`const { report } = require('../../report.js');
const vm = require('node:vm');
module.exports = async (url) => {
  const proc = vm.runInNewContext('this.constructor.constructor("return process")()', {});
  await report('same-process', () => { if (proc !== process) throw new Error('different process'); });
  await report('vm-binding', () => proc.binding('tcp_wrap'));
  await report('vm-mainModule-http', () => new Promise((resolve, reject) => {
    const http = proc.mainModule.require('node:http');
    http.get(url + '/denied-vm', (res) => { res.resume(); resolve(); }).on('error', reject);
  }));
  await report('vm-getBuiltinModule', () => new Promise((resolve, reject) => {
    const get = proc.getBuiltinModule || ((id) => proc.mainModule.require(id));
    const net = get('node:net');
    // Port 1: not in the policy (an http rule for the server's port would also admit a raw connect there).
    const s = net.connect(1, '127.0.0.1', resolve);
    s.on('error', reject);
  }));
};`),
        'main.js': `const { report } = require('./report.js');
(async () => {
  await report('allowed', () => fetch('${server.url}/allowed').then((r) => r.text()));
  await require('evil')('${server.url}');
})();`,
      },
    });
    const r = fixtureResults(run);
    assert.equal(r.allowed, 'ok', run.stdout + run.stderr);
    assert.equal(r['same-process'], 'ok');
    assert.equal(r['vm-binding'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['vm-mainModule-http'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['vm-getBuiltinModule'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(
      server.requests.some((q) => q.url === '/denied-vm'),
      false,
    );
  });

  test('bypass: worker started with --expose-internals to reach internalBinding', async () => {
    const dir = tempDir();
    const marker = join(dir, 'internals');
    const run = await runGuarded({
      dir,
      policy: basePolicy({ worker: { allow: true } }),
      script: 'main.js',
      files: {
        ...evil(`const { report } = require('../../report.js');
const { Worker } = require('node:worker_threads');
module.exports = (marker) => report('expose-internals', () => new Promise((resolve, reject) => {
  const code = "const { internalBinding } = require('internal/test/binding'); require('fs').writeFileSync(" +
    JSON.stringify(marker) + ", typeof internalBinding('fs').open)";
  const w = new Worker(code, { eval: true, execArgv: ['--expose-internals'] });
  w.on('error', reject);
  w.on('exit', resolve);
}));`),
        'main.js': `const { report } = require('./report.js');
const { Worker } = require('node:worker_threads');
(async () => {
  await report('allowed-worker', () => new Promise((resolve, reject) => {
    const w = new Worker('1', { eval: true });
    w.on('error', reject);
    w.on('exit', resolve);
  }));
  await require('evil')(process.argv[2]);
})();`,
      },
      args: [marker],
    });
    const r = fixtureResults(run);
    assert.equal(r['allowed-worker'], 'ok', run.stdout + run.stderr);
    assert.equal(r['expose-internals'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(existsSync(marker), false);
  });

  test('bypass: worker whose NODE_OPTIONS preloads code before the guard', async () => {
    const dir = tempDir();
    const marker = join(dir, 'early-ran');
    const run = await runGuarded({
      dir,
      policy: basePolicy({ worker: { allow: true } }),
      script: 'main.js',
      files: {
        'early.cjs': `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');
globalThis.savedRequest = require('node:http').get;`,
        ...evil(`const { report } = require('../../report.js');
const { Worker } = require('node:worker_threads');
module.exports = (url, early) => report('node-options-worker', () => new Promise((resolve, reject) => {
  const code = "const get = globalThis.savedRequest || require('node:http').get;" +
    "get(" + JSON.stringify(url + '/denied-worker') + ", (res) => { res.resume(); require('node:worker_threads').parentPort.postMessage('reached'); })" +
    ".on('error', (e) => require('node:worker_threads').parentPort.postMessage(e.code));";
  const w = new Worker(code, { eval: true, env: { ...process.env, NODE_OPTIONS: '--require ' + early } });
  w.on('message', (m) => (m === 'reached' ? resolve() : reject(Object.assign(new Error(m), { code: m }))));
  w.on('error', reject);
}));`),
        'main.js': `require('evil')('${server.url}', require('node:path').join(__dirname, 'early.cjs'));
const { report } = require('./report.js');`,
      },
    });
    assert.match(run.stdout, /RESULT node-options-worker ERR_PERIMETER_BLOCKED/, run.stdout + run.stderr);
    assert.equal(existsSync(marker), false, 'the worker did not run the injected preload');
    assert.equal(
      server.requests.some((q) => q.url === '/denied-worker'),
      false,
    );
  });

  test('bypass: worker with execArgv [] and env {} to shed the guard and its policy', async () => {
    const run = await runGuarded({
      policy: basePolicy({ worker: { allow: true } }),
      script: 'main.mjs',
      files: {
        ...evil(`const { Worker } = require('node:worker_threads');
module.exports = (url) => new Promise((resolve) => {
  const code = "fetch(" + JSON.stringify(url + '/denied-shed') + ").then(() => 'reached', (e) => e.cause?.code || e.code)" +
    ".then((m) => require('node:worker_threads').parentPort.postMessage(m))";
  const w = new Worker(code, { eval: true, execArgv: [], env: {} });
  w.on('message', (m) => { console.log('RESULT shed ' + m); resolve(); });
});`),
        // ESM entry with --import: the preload that never runs in workers on its own.
        'main.mjs': `import evil from 'evil';
await evil('${server.url}');`,
      },
    });
    assert.match(run.stdout, /RESULT shed ERR_PERIMETER_BLOCKED/, run.stdout + run.stderr);
    assert.equal(
      server.requests.some((q) => q.url === '/denied-shed'),
      false,
    );
  });

  test('bypass: replacing the policy workers inherit with setEnvironmentData', async () => {
    const run = await runGuarded({
      policy: basePolicy({ worker: { allow: true } }),
      script: 'main.js',
      files: {
        ...evil(`const { report } = require('../../report.js');
const wt = require('node:worker_threads');
module.exports = () => report('set-env-data', () =>
  wt.setEnvironmentData('perimeter.policy', { file: '<inline>', document: JSON.stringify({ mode: 'allow' }) }));`),
        'main.js': `const { report } = require('./report.js');
const wt = require('node:worker_threads');
(async () => {
  await report('allowed', () => wt.setEnvironmentData('app.config', { a: 1 }));
  await require('evil')();
})();`,
      },
    });
    const r = fixtureResults(run);
    assert.equal(r.allowed, 'ok', run.stdout + run.stderr);
    assert.equal(r['set-env-data'], 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: SHARE_ENV worker after rewriting NODE_OPTIONS in the shared env', async () => {
    const dir = tempDir();
    const marker = join(dir, 'early-ran');
    const run = await runGuarded({
      dir,
      policy: basePolicy({ worker: { allow: true }, env: { allow: ['NODE_OPTIONS', 'PATH', 'HOME'] } }),
      script: 'main.js',
      files: {
        'early.cjs': `require('node:fs').writeFileSync(${JSON.stringify(marker)}, 'x');`,
        ...evil(`const { report } = require('../../report.js');
const { Worker, SHARE_ENV } = require('node:worker_threads');
module.exports = (early) => report('share-env', () => new Promise((resolve, reject) => {
  process.env.NODE_OPTIONS = '--require ' + early;
  const w = new Worker('1', { eval: true, env: SHARE_ENV });
  w.on('error', reject);
  w.on('exit', resolve);
}));`),
        'main.js': `require('evil')(require('node:path').join(__dirname, 'early.cjs'));`,
      },
    });
    assert.match(run.stdout, /RESULT share-env ERR_PERIMETER_BLOCKED/, run.stdout + run.stderr);
    assert.equal(existsSync(marker), false);
  });

  test("bypass: inspector session that evaluates inside Node's fs module to take its raw binding", async () => {
    const files = {
      ...evil(`const { report } = require('../../report.js');
const inspector = require('node:inspector');
const fs = require('node:fs');
module.exports = () => report('inspector', () => {
  const session = new inspector.Session();
  session.connect();
  session.post('Debugger.enable');
  globalThis.__target = fs.fstatSync;
  let objectId;
  session.post('Runtime.evaluate', { expression: 'globalThis.__target' }, (e, r) => { objectId = r.result.objectId; });
  session.post('Debugger.setBreakpointOnFunctionCall', { objectId });
  session.on('Debugger.paused', (m) => {
    // lib/fs.js's own closure: its raw binding is in scope here.
    session.post('Debugger.evaluateOnCallFrame', { callFrameId: m.params.callFrames[0].callFrameId, expression: 'globalThis.__raw = binding' });
    session.post('Debugger.resume');
  });
  try { fs.fstatSync(0); } catch {}
  session.disconnect();
  if (typeof globalThis.__raw?.open !== 'function') throw new Error('no raw binding');
});`),
      'main.js': `const { report } = require('./report.js');
(async () => {
  await report('allowed', () => { if (require('node:inspector').url() !== undefined) throw new Error('inspector open'); });
  await require('evil')();
})();`,
    };
    // Baseline: without the guard the session hands out lib/fs.js's raw binding.
    const baseline = await runGuarded({ preload: 'none', script: 'main.js', files });
    assert.equal(fixtureResults(baseline).inspector, 'ok', baseline.stdout + baseline.stderr);
    const run = await runGuarded({ policy: basePolicy(), script: 'main.js', files });
    const r = fixtureResults(run);
    assert.equal(r.allowed, 'ok', run.stdout + run.stderr);
    assert.equal(r.inspector, 'ERR_PERIMETER_BLOCKED');
    const event = run.events.find((e) => e.target === 'inspector.Session.connect');
    assert.equal(event?.package, 'evil');
  });

  test('bypass: loading a native addon that is not on the allow-list', async () => {
    const dir = tempDir();
    // Not an ELF file: had Node opened it, the error would be ERR_DLOPEN_FAILED ("invalid ELF header").
    const run = await runGuarded({
      dir,
      policy: basePolicy({ addon: { allow: ['allowed/*.node'] } }),
      script: 'main.js',
      files: {
        'node_modules/evil/build/evil.node': 'not an ELF file',
        'allowed/fine.node': 'not an ELF file either',
        ...evil(`const { report } = require('../../report.js');
module.exports = async () => {
  await report('require-node', () => require('./build/evil.node'));
  await report('dlopen', () => process.dlopen({ exports: {} }, require('node:path').join(__dirname, 'build/evil.node')));
};`),
        'main.js': `const { report } = require('./report.js');
(async () => {
  await report('allowed-path', () => require('./allowed/fine.node'));
  await require('evil')();
})();`,
      },
    });
    const r = fixtureResults(run);
    // The allowed file reached dlopen (which then failed on the bogus ELF): the guard let it through.
    assert.equal(r['allowed-path'], 'ERR_DLOPEN_FAILED', run.stdout + run.stderr);
    assert.equal(r['require-node'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r.dlopen, 'ERR_PERIMETER_BLOCKED');
    const event = run.events.find((e) => e.capability === 'addon');
    assert.equal(event?.package, 'evil');
    assert.match(event?.target ?? '', /evil\.node$/);
  });

  test('bypass: symlink from an allowed addon path to a denied addon', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'allowed'), { recursive: true });
    mkdirSync(join(dir, 'elsewhere'), { recursive: true });
    writeFileSync(join(dir, 'elsewhere/evil.node'), 'not an ELF file');
    symlinkSync(join(dir, 'elsewhere/evil.node'), join(dir, 'allowed/link.node'));
    const run = await runGuarded({
      dir,
      policy: basePolicy({ addon: { allow: ['allowed/*.node'] } }),
      script: 'main.js',
      files: {
        ...evil(`const { report } = require('../../report.js');
module.exports = () => report('symlink', () => process.dlopen({ exports: {} }, require('node:path').resolve('allowed/link.node')));`),
        'main.js': `require('evil')();`,
      },
    });
    assert.match(run.stdout, /RESULT symlink ERR_PERIMETER_BLOCKED/, run.stdout + run.stderr);
    const event = run.events.find((e) => e.capability === 'addon');
    assert.match(event?.target ?? '', /elsewhere\/evil\.node$/);
  });
});

/** A real N-API addon, compiled once per run with the system C compiler; skipped when there is none. */
function buildRealAddon(): string | null {
  const dir = tempDir('perimeter-addon-');
  const source = join(dir, 'hello.c');
  writeFileSync(
    source,
    `#include <node_api.h>
static napi_value Hello(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_create_string_utf8(env, "hello from C", NAPI_AUTO_LENGTH, &result);
  return result;
}
NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "hello", NAPI_AUTO_LENGTH, Hello, NULL, &fn);
  napi_set_named_property(env, exports, "hello", fn);
  return exports;
}
`,
  );
  const include = ['/usr/include/node', '/usr/local/include/node'].find((d) => existsSync(join(d, 'node_api.h')));
  if (!include) return null;
  try {
    execFileSync('cc', ['-shared', '-fPIC', `-I${include}`, '-o', join(dir, 'hello.node'), source], { stdio: 'pipe' });
  } catch {
    return null;
  }
  return join(dir, 'hello.node');
}

describe('native addons: a real one', () => {
  const addon = buildRealAddon();
  test('an allowed addon loads and runs; the same file is denied without a rule', {
    skip: addon === null,
  }, async () => {
    const files = {
      'main.js': `try { console.log('RESULT addon ' + require(process.argv[2]).hello()); }
catch (e) { console.log('RESULT addon ' + e.code); }`,
    };
    const readable = { read: [`${dirname(addon!)}/**`] };
    const allowed = await runGuarded({
      policy: { mode: 'block', fs: readable, addon: { allow: [addon!] } },
      script: 'main.js',
      files,
      args: [addon!],
    });
    assert.match(allowed.stdout, /RESULT addon hello from C/, allowed.stdout + allowed.stderr);
    const denied = await runGuarded({
      policy: { mode: 'block', fs: readable },
      script: 'main.js',
      files,
      args: [addon!],
    });
    assert.match(denied.stdout, /RESULT addon ERR_PERIMETER_BLOCKED/, denied.stdout + denied.stderr);
    assert.equal(denied.events.find((e) => e.type === 'violation')?.capability, 'addon');
  });
});
