/**
 * Bypass suite, side doors: a hostile package (node_modules/evil) reaches files and programs through Node APIs
 * outside `fs` and `child_process`: module.register's loader thread, process.execve, heap snapshots, diagnostic
 * reports, the compile cache, .env loading, node:sqlite and node:wasi. Each test runs the same fixture without
 * the guard first where that proves the technique is real, then guarded: the escape fails with
 * ERR_PERIMETER_BLOCKED, the secret is not printed, the file is not written, and the legitimate use beside it
 * still works. APIs a Node major lacks are skipped on that major, saying so.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixtureResults, NODE_MAJOR, runGuarded, tempDir, writeTree } from '../helpers.js';

const TOKEN = 'npm_FAKEsidedoor0123456789abcdefABCDEF';
const nodeRequire = createRequire(__filename);

const REPORT = `
function report(name, fn) {
  return Promise.resolve().then(fn).then(
    () => console.log('RESULT ' + name + ' ok'),
    (e) => console.log('RESULT ' + name + ' ' + (e && (e.code || e.message))),
  );
}
module.exports = { report };
`;

interface Places {
  home: string;
  writable: string;
  dir: string;
}

function places(): Places {
  const home = realpathSync(tempDir('perimeter-side-home-'));
  const writable = realpathSync(tempDir('perimeter-side-out-'));
  const dir = realpathSync(tempDir('perimeter-side-app-'));
  writeTree(home, { '.npmrc': `//registry.npmjs.org/:_authToken=${TOKEN}\n` });
  return { home, writable, dir };
}

/** Runs main.js, which hands `ctx` ({ home, writable, dir }) to the hostile package's exported async function. */
async function hostile(
  body: string,
  options: { policy?: Record<string, unknown>; guarded?: boolean; mjs?: boolean; where?: Places } = {},
) {
  const where = options.where ?? places();
  const files: Record<string, string> = {
    'node_modules/evil/package.json': '{"name":"evil","version":"1.0.0","main":"index.js"}',
    'node_modules/evil/index.js': `const { report } = require('../../report.js');
module.exports = async (ctx) => {
${body}
};`,
    'report.js': REPORT,
    'main.js': `process.removeAllListeners('warning');
const ctx = { home: process.env.HOME, writable: process.argv[2], dir: __dirname };
require('evil')(ctx).then(() => setTimeout(() => {}, 300));`,
  };
  if (options.mjs) {
    files['node_modules/evil/index.mjs'] = `import { createRequire } from 'node:module';
const { report } = createRequire(import.meta.url)('../../report.js');
export default async (ctx) => {
${body}
};`;
    files['main.mjs'] = `process.removeAllListeners('warning');
const { default: evil } = await import('evil/index.mjs');
await evil({ home: process.env.HOME, writable: process.argv[2], dir: import.meta.dirname ?? process.cwd() });`;
  }
  const policy = {
    mode: 'block',
    fs: { write: [`${where.writable}/**`], read: [`${where.writable}/**`] },
    ...options.policy,
  };
  const run = await runGuarded({
    policy: options.guarded === false ? undefined : policy,
    preload: options.guarded === false ? 'none' : 'import',
    script: options.mjs ? 'main.mjs' : 'main.js',
    files,
    dir: where.dir,
    args: [where.writable],
    env: { HOME: where.home },
  });
  return { ...run, results: fixtureResults(run), where };
}

function hasSqlite(): boolean {
  try {
    nodeRequire('node:sqlite');
    return true;
  } catch {
    return false;
  }
}

const noExecve =
  typeof (process as any).execve === 'function' ? false : `process.execve does not exist on ${process.version}`;
const noSqlite = hasSqlite() ? false : `node:sqlite does not exist on ${process.version}`;
const noCompileCache =
  typeof (nodeRequire('node:module') as any).enableCompileCache === 'function'
    ? false
    : `module.enableCompileCache does not exist on ${process.version}`;
const noRegisterHooks =
  typeof (nodeRequire('node:module') as any).registerHooks === 'function'
    ? false
    : `module.registerHooks does not exist on ${process.version}`;

/** A loader hook module that steals ~/.npmrc into the writable folder the moment its thread loads it. */
const STEALING_HOOKS = `
const hooks = (file) => 'data:text/javascript,' + encodeURIComponent(
  "import fs from 'node:fs'; fs.writeFileSync(" + JSON.stringify(ctx.writable + '/') + " + " + JSON.stringify(file) +
  ", fs.readFileSync(" + JSON.stringify(ctx.home + '/.npmrc') + ", 'utf8'));");
const settle = () => new Promise((resolve) => setTimeout(resolve, 300));
`;

describe('bypass suite: side doors', () => {
  test('bypass: module.register starts loader hooks on a thread without the guard (every way to reach it)', async () => {
    const body = `${STEALING_HOOKS}
  const mod = require('node:module');
  await report('require', () => { mod.register(hooks('require')); return settle(); });
  await report('constructor', () => { module.constructor.register(hooks('constructor')); return settle(); });
  await report('getBuiltinModule', () => { process.getBuiltinModule('node:module').register(hooks('builtin')); return settle(); });
  await report('import', async () => { (await import('node:module')).register(hooks('import')); await settle(); });
  await report('import-default', async () => { (await import('node:module')).default.register(hooks('default')); await settle(); });`;
    // Without the guard the hook thread reads the secret.
    const baseline = await hostile(body, { guarded: false });
    assert.equal(baseline.results.require, 'ok', baseline.stdout + baseline.stderr);
    assert.ok(existsSync(join(baseline.where.writable, 'require')), 'baseline: the loader thread stole the token');
    const run = await hostile(body);
    for (const way of ['require', 'constructor', 'getBuiltinModule', 'import', 'import-default']) {
      assert.equal(run.results[way], 'ERR_PERIMETER_BLOCKED', `${way}: ${run.stdout}${run.stderr}`);
    }
    assert.deepEqual(readdirSync(run.where.writable), [], 'no hook thread wrote anything');
    const event = run.events.find((e) => e.reason === 'loader-hooks');
    assert.equal(event?.capability, 'worker');
    assert.equal(event?.package, 'evil');
    assert.match(event?.target, /^module\.register\(data:/);
  });

  test('bypass: ESM named import of register from node:module', async () => {
    const where = places();
    const run = await hostile(
      `${STEALING_HOOKS}
  const { register } = await import('node:module');
  await report('named', () => { register(hooks('named')); return settle(); });`,
      { mjs: true, where },
    );
    assert.equal(run.results.named, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(where.writable), []);
  });

  test('module.register works where workers are allowed; registerHooks (same thread) always works', async () => {
    const run = await hostile(
      `const mod = require('node:module');
  await report('register', () => { mod.register('data:text/javascript,export%20{}'); });
  if (typeof mod.registerHooks === 'function') {
    await report('registerHooks', () => { mod.registerHooks({ resolve: (s, c, next) => next(s, c) }); require('node:os'); });
  }`,
      { policy: { worker: { allow: true } } },
    );
    assert.equal(run.results.register, 'ok', run.stdout + run.stderr);
    const hooks = await hostile(
      `const mod = require('node:module');
  await report('registerHooks', () => { mod.registerHooks({ resolve: (s, c, next) => next(s, c) }); require('node:os'); });`,
    );
    if (!noRegisterHooks) assert.equal(hooks.results.registerHooks, 'ok', hooks.stdout + hooks.stderr);
  });

  test('bypass: process.execve replaces the process with a denied program', { skip: noExecve }, async () => {
    const body = `
  await report('sh', () => process.execve('/bin/sh', ['sh', '-c', 'cat "$HOME/.npmrc" > ' + ctx.writable + '/stolen']));
  await report('relative', () => { process.chdir('/bin'); process.execve('sh', ['sh', '-c', 'cat "$HOME/.npmrc" > ' + ctx.writable + '/stolen2']); });
  await report('node', () => process.execve(process.execPath, [process.execPath, '-e', 'require("fs").copyFileSync(process.env.HOME + "/.npmrc", process.argv[1])', ctx.writable + '/stolen3']));`;
    const baseline = await hostile(body, { guarded: false });
    assert.ok(existsSync(join(baseline.where.writable, 'stolen')), `baseline: execve ran the shell ${baseline.stderr}`);
    const run = await hostile(body);
    assert.equal(run.results.sh, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.relative, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.node, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(run.where.writable), []);
    const event = run.events.find((e) => e.capability === 'process');
    assert.equal(event?.package, 'evil');
    assert.equal(event?.action, 'blocked');
  });

  test('process.execve of an allowed program runs it; an allowed node image still carries the guard', {
    skip: noExecve,
  }, async () => {
    const echo = await hostile(`await report('echo', () => process.execve('/bin/echo', ['echo', 'REPLACED']));`, {
      policy: { process: { allow: ['/bin/echo'] } },
    });
    assert.match(echo.stdout, /^REPLACED$/m);
    const node = await hostile(
      `process.execve(process.execPath, [process.execPath, '-e', 'try { require("fs").readFileSync(process.env.HOME + "/.npmrc", "utf8"); console.log("LEAKED") } catch (e) { console.log("CHILD " + e.code) }'], { HOME: ctx.home, PATH: process.env.PATH });`,
      { policy: { process: { allow: [realpathSync(process.execPath)] } } },
    );
    assert.match(node.stdout, /^CHILD ERR_PERIMETER_BLOCKED$/m, node.stdout + node.stderr);
    assert.doesNotMatch(node.stdout, /LEAKED/);
  });

  test('bypass: heap snapshots, diagnostic reports and trace logs written outside fs.write', async () => {
    const body = `
  const v8 = require('node:v8');
  await report('snapshot', () => v8.writeHeapSnapshot(ctx.home + '/snap.heapsnapshot'));
  await report('snapshot-default', () => v8.writeHeapSnapshot());
  await report('near-limit', () => v8.setHeapSnapshotNearHeapLimit(1));
  await report('report', () => process.report.writeReport(ctx.home + '/report.json'));
  await report('report-directory', () => { process.report.directory = ctx.home; });
  await report('report-filename', () => { process.report.filename = ctx.home + '/r.json'; });
  await report('report-on-signal', () => { process.report.reportOnSignal = true; });
  await report('snapshot-ok', () => v8.writeHeapSnapshot(ctx.writable + '/ok.heapsnapshot'));
  await report('report-ok', () => { process.report.directory = ctx.writable; process.report.writeReport('ok.json'); });
  const tracing = require('node:trace_events').createTracing({ categories: ['node.perf'] });
  await report('trace', () => tracing.enable());
  process.chdir(ctx.writable);
  await report('trace-ok', () => { tracing.enable(); performance.mark('x'); tracing.disable(); });`;
    const run = await hostile(body);
    for (const name of [
      'snapshot',
      'snapshot-default',
      'near-limit',
      'report',
      'report-directory',
      'report-filename',
      'report-on-signal',
      'trace',
    ]) {
      assert.equal(run.results[name], 'ERR_PERIMETER_BLOCKED', `${name}: ${run.stdout}${run.stderr}`);
    }
    assert.equal(run.results['snapshot-ok'], 'ok', run.stdout + run.stderr);
    assert.equal(run.results['report-ok'], 'ok', run.stdout + run.stderr);
    assert.equal(run.results['trace-ok'], 'ok', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(run.where.home), ['.npmrc']);
    assert.deepEqual(
      readdirSync(run.where.dir).filter((f) => /heapsnapshot|^report\..*json$|^node_trace/.test(f)),
      [],
      'nothing written in the code folder',
    );
    assert.deepEqual(
      readdirSync(run.where.writable)
        .filter((f) => !f.startsWith('node_trace'))
        .sort(),
      ['ok.heapsnapshot', 'ok.json'],
    );
    const event = run.events.find((e) => e.target === `write ${run.where.home}/report.json`);
    assert.equal(event?.capability, 'fs');
    assert.equal(event?.package, 'evil');
  });

  test('bypass: ESM import of node:v8 writes a heap snapshot', {
    skip: NODE_MAJOR < 22 ? 'Node 20: an ESM import of node:v8 is not seen (docs/threat-model.md)' : false,
  }, async () => {
    const where = places();
    const run = await hostile(
      `const { writeHeapSnapshot } = await import('node:v8');
  await report('named', () => writeHeapSnapshot(ctx.home + '/snap.heapsnapshot'));`,
      { mjs: true, where },
    );
    assert.equal(run.results.named, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(where.home), ['.npmrc']);
  });

  test('bypass: v8.setFlagsFromString turns on V8 intrinsics at run time', async () => {
    const body = `
  const v8 = require('node:v8');
  await report('natives', () => { v8.setFlagsFromString('--allow-natives-syntax'); new Function('return %GetOptimizationStatus(function(){})')(); });
  await report('underscore', () => { v8.setFlagsFromString('--expose-gc  --ALLOW_NATIVES_SYNTAX=true'); new Function('return %DebugPrint(1)')(); });
  await report('harmless', () => { v8.setFlagsFromString('--stack-size=984'); });`;
    // Without the guard the flag takes effect: % syntax compiles.
    const baseline = await hostile(body, { guarded: false });
    assert.equal(baseline.results.natives, 'ok', baseline.stdout + baseline.stderr);
    const run = await hostile(body);
    assert.equal(run.results.natives, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.underscore, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.harmless, 'ok');
    const event = run.events.find((e) => e.reason === 'forbidden-flag');
    assert.equal(event?.capability, 'internals');
    assert.equal(event?.package, 'evil');
  });

  test('bypass: process.loadEnvFile reads a secret file into the environment', async () => {
    const run = await hostile(
      `await report('npmrc', () => process.loadEnvFile(ctx.home + '/.npmrc'));
  await report('default', () => { process.chdir(ctx.home); process.loadEnvFile(); });
  process.chdir(ctx.dir);
  require('fs').writeFileSync(ctx.writable + '/ok.env', 'OK_VAR=1\\n');
  await report('ok', () => process.loadEnvFile(ctx.writable + '/ok.env'));`,
      { policy: { env: { allow: ['OK_VAR'] } } },
    );
    assert.equal(run.results.npmrc, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.default, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.ok, 'ok', run.stdout + run.stderr);
    const event = run.events.find((e) => e.target === `read ${run.where.home}/.npmrc`);
    assert.equal(event?.package, 'evil');
  });

  test('bypass: module.enableCompileCache writes cache files outside fs.write', { skip: noCompileCache }, async () => {
    const run = await hostile(
      `const mod = require('node:module');
  await report('home', () => { mod.enableCompileCache(ctx.home + '/cache'); });
  await report('object', () => { mod.enableCompileCache({ directory: ctx.home + '/cache2' }); });
  await report('ok', () => { mod.enableCompileCache(ctx.writable + '/cache'); });`,
    );
    assert.equal(run.results.home, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.object, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.ok, 'ok', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(run.where.home), ['.npmrc']);
  });

  test('bypass: node:sqlite opens, creates, attaches and backs up files outside the policy', {
    skip: noSqlite,
  }, async () => {
    const body = `
  const sqlite = require('node:sqlite');
  const { DatabaseSync } = sqlite;
  await report('open-secret', () => new DatabaseSync(ctx.home + '/.npmrc'));
  await report('create', () => new DatabaseSync(ctx.home + '/new.db').exec('create table t(x)'));
  await report('url', () => new DatabaseSync(new URL('file://' + ctx.home + '/url.db')).exec('create table t(x)'));
  await report('constructor', () => new (new DatabaseSync(':memory:').constructor)(ctx.home + '/ctor.db').exec('create table t(x)'));
  await report('attach', () => new DatabaseSync(':memory:').exec("ATTACH '" + ctx.home + "/att.db' AS a; create table a.t(x)"));
  await report('attach-bound', () => new DatabaseSync(':memory:').prepare('attach ? as a').run(ctx.home + '/att2.db'));
  await report('vacuum-into', () => new DatabaseSync(':memory:').exec("VACUUM INTO '" + ctx.home + "/vac.db'"));
  if (typeof sqlite.backup === 'function') await report('backup', () => sqlite.backup(new DatabaseSync(':memory:'), ctx.home + '/backup.db'));
  await report('extension', () => new DatabaseSync(':memory:', { allowExtension: true }).loadExtension(ctx.writable + '/evil.so'));
  await report('ok', () => {
    const db = new DatabaseSync(ctx.writable + '/ok.db');
    db.exec('create table t(x); insert into t values (42)');
    if (db.prepare('select x from t').get().x !== 42) throw new Error('wrong');
    new DatabaseSync(':memory:').exec('select 1');
  });`;
    const baseline = await hostile(body, { guarded: false });
    assert.equal(baseline.results.create, 'ok', baseline.stdout + baseline.stderr);
    assert.equal(baseline.results.attach, 'ok', baseline.stdout + baseline.stderr);
    const run = await hostile(body);
    for (const name of ['create', 'url', 'constructor', 'attach', 'attach-bound', 'vacuum-into', 'extension']) {
      assert.equal(run.results[name], 'ERR_PERIMETER_BLOCKED', `${name}: ${run.stdout}${run.stderr}`);
    }
    assert.equal(run.results['open-secret'], 'ERR_PERIMETER_BLOCKED');
    if (run.results.backup !== undefined) assert.equal(run.results.backup, 'ERR_PERIMETER_BLOCKED');
    assert.equal(run.results.ok, 'ok', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(run.where.home), ['.npmrc']);
    assert.ok(run.events.some((e) => e.capability === 'addon' && e.package === 'evil'));
    assert.ok(run.events.some((e) => e.reason === 'sqlite-attach' && e.package === 'evil'));
  });

  test('bypass: a server listening on a Unix socket path creates a file outside fs.write', async () => {
    const body = `
  const net = require('node:net');
  const listen = (server, ...args) => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...args, () => server.close(resolve));
  });
  await report('net', () => listen(net.createServer(), ctx.home + '/net.sock'));
  await report('http-options', () => listen(require('node:http').createServer(), { path: ctx.home + '/http.sock' }));
  await report('getter', () => listen(net.createServer(), new (class { get path() { return ctx.home + '/g.sock'; } })()));
  await report('ok', () => listen(net.createServer(), ctx.writable + '/ok.sock'));
  await report('port', () => listen(net.createServer(), 0, '127.0.0.1'));`;
    const run = await hostile(body);
    assert.equal(run.results.net, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results['http-options'], 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.notEqual(run.results.getter, 'ok', run.stdout + run.stderr);
    assert.equal(run.results.ok, 'ok', run.stdout + run.stderr);
    assert.equal(run.results.port, 'ok', run.stdout + run.stderr);
    assert.deepEqual(readdirSync(run.where.home), ['.npmrc']);
    const event = run.events.find((e) => e.target === `write ${run.where.home}/net.sock`);
    assert.equal(event?.package, 'evil');
  });

  test('bypass: node:wasi preopens a denied host directory', async () => {
    const body = `
  const { WASI } = require('node:wasi');
  await report('home', () => new WASI({ version: 'preview1', preopens: { '/h': ctx.home } }));
  await report('root', () => new WASI({ version: 'preview1', preopens: { '/': '/' } }));
  await report('parent-of-home', () => new WASI({ version: 'preview1', preopens: { '/p': require('path').dirname(ctx.home) } }));
  await report('ok', () => new WASI({ version: 'preview1', preopens: { '/o': ctx.writable } }));`;
    const run = await hostile(body);
    assert.equal(run.results.home, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.root, 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results['parent-of-home'], 'ERR_PERIMETER_BLOCKED', run.stdout + run.stderr);
    assert.equal(run.results.ok, 'ok', run.stdout + run.stderr);
    // Where the folder itself may be read and written, an always-denied area inside it (HOME) still denies it.
    const parent = join(run.where.home, '..');
    const wide = await hostile(body, { policy: { fs: { read: [`${parent}/**`], write: [`${parent}/**`] } } });
    assert.equal(wide.results.ok, 'ok', wide.stdout + wide.stderr);
    assert.equal(wide.results['parent-of-home'], 'ERR_PERIMETER_BLOCKED', wide.stdout + wide.stderr);
    assert.ok(wide.events.some((e) => e.reason === 'sensitive-path' && e.package === 'evil'));
  });
});
