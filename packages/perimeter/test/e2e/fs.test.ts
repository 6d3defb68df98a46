// The file system guard in a real guarded process: every API family is judged (sync, callback, promises,
// streams, open flags, copy/rename/link/symlink, metadata), denied calls fail the way the call normally fails
// and leave no trace on disk, allowed calls work, and the module loader works under a default policy.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { runGuarded, tempDir, writeTree } from '../helpers.js';

function parseLastLine(stdout: string): any {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!);
}

describe('module loading under a default policy', () => {
  test('an ESM app imports CJS and ESM packages, JSON and built-ins with no fs rules and no violations', async () => {
    const files = {
      'main.mjs': `
        import { createHash } from 'node:crypto';
        import path from 'node:path';
        import { readFileSync } from 'node:fs';
        import cjs from 'cjs-dep';
        import { greet } from 'esm-dep';
        import { deep } from 'esm-dep/deep';
        import data from './data.json' with { type: 'json' };
        import { createRequire } from 'node:module';
        const require = createRequire(import.meta.url);
        const scoped = require('@scope/tool');
        const own = readFileSync(new URL('./data.json', import.meta.url), 'utf8');
        const dynamic = await import('esm-dep/lazy.js');
        console.log(JSON.stringify({
          cjs: cjs.answer, greet: greet('x'), deep, data: data.n, scoped: scoped.version,
          own: JSON.parse(own).n, lazy: dynamic.lazy, hash: createHash('sha256').update('a').digest('hex').slice(0, 8),
          sep: path.sep,
        }));
      `,
      'data.json': '{"n": 7}',
      'node_modules/cjs-dep/package.json': '{"name":"cjs-dep","version":"1.0.0","main":"lib/index.js"}',
      'node_modules/cjs-dep/lib/index.js': `const cfg = require('../config.json'); module.exports = { answer: cfg.answer + require('./two') };`,
      'node_modules/cjs-dep/lib/two.js': 'module.exports = 2;',
      'node_modules/cjs-dep/config.json': '{"answer": 40}',
      'node_modules/esm-dep/package.json': JSON.stringify({
        name: 'esm-dep',
        type: 'module',
        exports: { '.': './index.js', './deep': './src/deep.js', './lazy.js': './lazy.js' },
      }),
      'node_modules/esm-dep/index.js': `import { helper } from 'inner-dep'; export const greet = (n) => 'hi ' + n + helper;`,
      'node_modules/esm-dep/src/deep.js': `import pkg from '../package.json' with { type: 'json' }; export const deep = pkg.name;`,
      'node_modules/esm-dep/lazy.js': 'export const lazy = true;',
      'node_modules/esm-dep/node_modules/inner-dep/package.json': '{"name":"inner-dep","type":"module","main":"i.js"}',
      'node_modules/esm-dep/node_modules/inner-dep/i.js': `export const helper = '!';`,
      'node_modules/@scope/tool/package.json': '{"name":"@scope/tool","version":"3.1.4"}',
      'node_modules/@scope/tool/index.js': `module.exports = { version: require('./package.json').version };`,
    };
    const run = await runGuarded({ script: 'main.mjs', files, policy: { mode: 'block' } });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(parseLastLine(run.stdout), {
      cjs: 42,
      greet: 'hi x!',
      deep: 'esm-dep',
      data: 7,
      scoped: '3.1.4',
      own: 7,
      lazy: true,
      hash: 'ca978112',
      sep: '/',
    });
    assert.deepEqual(
      run.events.filter((e) => e.capability === 'fs'),
      [],
    );
  });

  test('the same app with the preload given as --require and through NODE_OPTIONS', async () => {
    const files = {
      'main.cjs': `const dep = require('dep'); console.log(JSON.stringify({ v: dep.v, own: require('./own.json').x }));`,
      'own.json': '{"x": 1}',
      'node_modules/dep/index.js': `module.exports = { v: require('fs').readFileSync(__dirname + '/v.txt', 'utf8') };`,
      'node_modules/dep/v.txt': 'ok',
    };
    for (const preload of ['require', 'node-options'] as const) {
      const run = await runGuarded({ script: 'main.cjs', files, policy: { mode: 'block' }, preload });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(parseLastLine(run.stdout), { v: 'ok', own: 1 });
    }
  });
});

describe('linked packages', () => {
  test('a workspace package symlinked into node_modules from outside the code folder loads', async () => {
    const workspace = realpathSync(tempDir('perimeter-fs-workspace-'));
    writeTree(workspace, {
      'packages/shared/package.json': '{"name":"shared","main":"index.js"}',
      'packages/shared/index.js': `module.exports = require('fs').readFileSync(__dirname + '/data.txt', 'utf8');`,
      'packages/shared/data.txt': 'from the workspace',
    });
    const dir = tempDir();
    writeTree(dir, { 'main.cjs': `console.log(JSON.stringify({ shared: require('shared') }));` });
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(`${workspace}/packages/shared`, join(dir, 'node_modules/shared'));
    const run = await runGuarded({ dir, script: 'main.cjs', policy: { mode: 'block' } });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(parseLastLine(run.stdout), { shared: 'from the workspace' });
    // Only the linked package's folder was opened, not its neighbours.
    writeTree(workspace, { 'packages/other/secret.txt': 'x' });
    const probe = await runGuarded({
      dir,
      script: 'probe.cjs',
      files: {
        'probe.cjs': `try { require('fs').readFileSync(${JSON.stringify(`${workspace}/packages/other/secret.txt`)}); console.log('read'); } catch (e) { console.log(e.code); }`,
      },
      policy: { mode: 'block' },
    });
    assert.equal(probe.stdout.trim(), 'ERR_PERIMETER_BLOCKED');
  });
});

// One script tries every API family on a path outside the rules and on an allowed path, and prints what happened.
const API_SCRIPT = `
import fs from 'node:fs';
import fsp from 'node:fs/promises';
const [outside, allowedDir, readableDir] = process.argv.slice(2);
const secretFile = outside + '/secret.txt';
const results = {};
const code = (e) => (e && e.code) || (e ? String(e) : 'ok');
const sync = (name, f) => { try { f(); results[name] = 'ok'; } catch (e) { results[name] = code(e); } };
const cb = (name, f) => new Promise((done) => {
  try { f((e) => { results[name] = code(e); done(); }); } catch (e) { results[name] = 'threw ' + code(e); done(); }
});
const prom = async (name, f) => { try { await f(); results[name] = 'ok'; } catch (e) { results[name] = code(e); } };
const stream = (name, s) => new Promise((done) => {
  s.on('error', (e) => { results[name] = code(e); done(); });
  s.on('ready', () => { results[name] = 'ok'; s.destroy(); done(); });
});

sync('readFileSync', () => fs.readFileSync(secretFile));
sync('statSync', () => fs.statSync(secretFile));
sync('lstatSync', () => fs.lstatSync(secretFile));
sync('accessSync', () => fs.accessSync(secretFile));
results.existsSync = fs.existsSync(secretFile);
sync('readdirSync', () => fs.readdirSync(outside));
sync('opendirSync', () => fs.opendirSync(outside));
sync('realpathSync', () => fs.realpathSync(secretFile));
sync('realpathSync.native', () => fs.realpathSync.native(secretFile));
sync('openSync r', () => fs.openSync(secretFile, 'r'));
sync('openSync O_RDONLY|O_TRUNC', () => fs.openSync(secretFile, fs.constants.O_RDONLY | fs.constants.O_TRUNC));
sync('writeFileSync', () => fs.writeFileSync(outside + '/new.txt', 'x'));
sync('appendFileSync', () => fs.appendFileSync(secretFile, 'x'));
sync('readFileSync flag w', () => fs.readFileSync(readableDir + '/readonly.txt', { flag: 'w' }));
sync('openSync O_RDONLY|O_CREAT', () => fs.openSync(readableDir + '/created.txt', fs.constants.O_RDONLY | fs.constants.O_CREAT));
sync('truncateSync', () => fs.truncateSync(secretFile));
sync('mkdirSync', () => fs.mkdirSync(outside + '/dir'));
sync('mkdtempSync', () => fs.mkdtempSync(outside + '/tmp-'));
sync('rmSync', () => fs.rmSync(secretFile));
sync('unlinkSync', () => fs.unlinkSync(secretFile));
sync('chmodSync', () => fs.chmodSync(secretFile, 0o777));
sync('utimesSync', () => fs.utimesSync(secretFile, 1, 1));
sync('copyFileSync', () => fs.copyFileSync(secretFile, allowedDir + '/copy.txt'));
sync('cpSync', () => fs.cpSync(secretFile, allowedDir + '/cp.txt'));
sync('renameSync', () => fs.renameSync(secretFile, allowedDir + '/moved.txt'));
sync('linkSync', () => fs.linkSync(secretFile, allowedDir + '/hard.txt'));
sync('symlinkSync', () => fs.symlinkSync(secretFile, allowedDir + '/soft.txt'));
sync('watch', () => fs.watch(secretFile).close());
sync('watchFile', () => fs.watchFile(secretFile, () => {}));
if (fs.statfsSync) sync('statfsSync', () => fs.statfsSync(secretFile));
if (fs.globSync) sync('globSync', () => fs.globSync(outside + '/*'));
await cb('readFile', (done) => fs.readFile(secretFile, done));
await cb('stat', (done) => fs.stat(secretFile, done));
await cb('writeFile', (done) => fs.writeFile(outside + '/cb.txt', 'x', done));
await cb('open w', (done) => fs.open(outside + '/cb2.txt', 'w', done));
await cb('exists', (done) => fs.exists(secretFile, (found) => done(found ? null : { code: 'false' })));
await prom('promises.readFile', () => fsp.readFile(secretFile));
await prom('promises.writeFile', () => fsp.writeFile(outside + '/p.txt', 'x'));
await prom('promises.open', () => fsp.open(secretFile, 'r'));
await prom('promises.cp', () => fsp.cp(secretFile, allowedDir + '/pcp.txt'));
await prom('promises.watch', async () => { for await (const _ of fsp.watch(secretFile)) break; });
{
  // A promise API: the denial must be a rejection, not a synchronous throw.
  let returned;
  try { returned = fs.openAsBlob(secretFile); } catch (e) { results.openAsBlob = 'threw ' + code(e); }
  if (returned) await prom('openAsBlob', () => returned);
}
await stream('createReadStream', fs.createReadStream(secretFile));
await stream('createWriteStream', fs.createWriteStream(outside + '/stream.txt'));

const allowed = {};
fs.writeFileSync(allowedDir + '/w.txt', 'written');
allowed.write = fs.readFileSync(allowedDir + '/w.txt', 'utf8');
allowed.exists = fs.existsSync(allowedDir + '/w.txt');
allowed.openNoFlags = await new Promise((done) => fs.open(readableDir + '/readonly.txt', (e, fd) => done(e ? e.code : typeof fd)));
allowed.promises = await fsp.readFile(allowedDir + '/w.txt', 'utf8');
allowed.stream = await new Promise((done) => {
  let text = '';
  fs.createReadStream(allowedDir + '/w.txt', 'utf8').on('data', (d) => (text += d)).on('end', () => done(text));
});
fs.mkdirSync(allowedDir + '/sub/deeper', { recursive: true });
fs.renameSync(allowedDir + '/w.txt', allowedDir + '/sub/renamed.txt');
allowed.renamed = fs.readdirSync(allowedDir + '/sub').sort();
fs.rmSync(allowedDir + '/sub', { recursive: true });
allowed.removed = !fs.existsSync(allowedDir + '/sub');
console.log(JSON.stringify({ results, allowed }));
`;

describe('every API family', () => {
  test('is denied on a path outside the rules, fails the way the call fails, and leaves no trace', async () => {
    const outside = realpathSync(tempDir('perimeter-fs-outside-'));
    const allowedDir = realpathSync(tempDir('perimeter-fs-allowed-'));
    const readableDir = realpathSync(tempDir('perimeter-fs-readable-'));
    writeTree(outside, { 'secret.txt': 'SECRET-CONTENT' });
    writeTree(readableDir, { 'readonly.txt': 'keep me' });
    const run = await runGuarded({
      script: 'main.mjs',
      files: { 'main.mjs': API_SCRIPT },
      policy: {
        mode: 'block',
        fs: { read: [`${allowedDir}/**`, `${readableDir}/**`], write: [`${allowedDir}/**`] },
      },
      args: [outside, allowedDir, readableDir],
    });
    assert.equal(run.code, 0, run.stderr);
    const { results, allowed } = parseLastLine(run.stdout);
    const notBlocked = Object.entries(results).filter(([name, r]) => {
      if (name === 'existsSync') return r !== false;
      if (name === 'exists') return r !== 'false';
      return r !== 'ERR_PERIMETER_BLOCKED';
    });
    assert.deepEqual(notBlocked, [], 'every call on the outside path is blocked');
    assert.deepEqual(allowed, {
      write: 'written',
      exists: true,
      openNoFlags: 'number',
      promises: 'written',
      stream: 'written',
      renamed: ['deeper', 'renamed.txt'],
      removed: true,
    });
    // Nothing happened on disk.
    assert.equal(readFileSync(`${outside}/secret.txt`, 'utf8'), 'SECRET-CONTENT');
    assert.equal(readFileSync(`${readableDir}/readonly.txt`, 'utf8'), 'keep me', 'readFile with flag w truncated');
    assert.equal(existsSync(`${readableDir}/created.txt`), false, 'O_RDONLY|O_CREAT created a file');
    for (const name of ['new.txt', 'dir', 'cb.txt', 'cb2.txt', 'p.txt', 'stream.txt']) {
      assert.equal(existsSync(`${outside}/${name}`), false, `${name} was created`);
    }
    for (const name of ['copy.txt', 'cp.txt', 'moved.txt', 'hard.txt', 'soft.txt', 'pcp.txt']) {
      assert.equal(existsSync(`${allowedDir}/${name}`), false, `${name} was created`);
    }
    const fsEvents = run.events.filter((e) => e.capability === 'fs');
    assert.ok(fsEvents.length > 5);
    for (const event of fsEvents) {
      assert.equal(event.action, 'blocked');
      assert.match(event.target, /^(read|write) \//);
    }
    assert.ok(!JSON.stringify(run.events).includes('SECRET-CONTENT'));
  });

  test('alert mode reports and lets the call happen; fs.mode allow checks nothing', async () => {
    const outside = realpathSync(tempDir('perimeter-fs-outside-'));
    writeTree(outside, { 'secret.txt': 'visible' });
    const script = `import fs from 'node:fs'; console.log(fs.readFileSync(process.argv[2] + '/secret.txt', 'utf8'));`;
    const alert = await runGuarded({
      script: 'main.mjs',
      files: { 'main.mjs': script },
      policy: { mode: 'block', fs: { mode: 'alert' } },
      args: [outside],
    });
    assert.equal(alert.stdout.trim(), 'visible');
    const event = alert.events.find((e) => e.capability === 'fs');
    assert.equal(event?.action, 'alerted');
    assert.equal(event?.target, `read ${outside}/secret.txt`);
    assert.equal(event?.reason, 'no-rule');
    const off = await runGuarded({
      script: 'main.mjs',
      files: { 'main.mjs': script },
      policy: { mode: 'block', fs: { mode: 'allow' } },
      args: [outside],
    });
    assert.equal(off.stdout.trim(), 'visible');
    assert.deepEqual(
      off.events.filter((e) => e.capability === 'fs'),
      [],
    );
  });

  test('a package rule narrows what one dependency may read, and the event names it', async () => {
    const shared = realpathSync(tempDir('perimeter-fs-shared-'));
    writeTree(shared, { 'report.csv': 'a,b', 'keys.txt': 'k' });
    const files = {
      'main.mjs': `
        import fs from 'node:fs';
        import { read } from 'reporter';
        const dir = process.argv[2];
        const out = {};
        for (const name of ['report.csv', 'keys.txt']) {
          try { out['reporter ' + name] = read(dir + '/' + name); } catch (e) { out['reporter ' + name] = e.code; }
          out['app ' + name] = fs.readFileSync(dir + '/' + name, 'utf8');
        }
        console.log(JSON.stringify(out));
      `,
      'node_modules/reporter/package.json': '{"name":"reporter","type":"module","main":"index.js"}',
      'node_modules/reporter/index.js': `import fs from 'node:fs'; export const read = (p) => fs.readFileSync(p, 'utf8');`,
    };
    const run = await runGuarded({
      script: 'main.mjs',
      files,
      policy: {
        mode: 'block',
        fs: { read: [`${shared}/**`] },
        packages: { reporter: { fs: { read: [`${shared}/*.csv`] } } },
      },
      args: [shared],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(parseLastLine(run.stdout), {
      'reporter report.csv': 'a,b',
      'app report.csv': 'a,b',
      'reporter keys.txt': 'ERR_PERIMETER_BLOCKED',
      'app keys.txt': 'k',
    });
    const event = run.events.find((e) => e.capability === 'fs');
    assert.equal(event?.package, 'reporter');
    assert.equal(event?.deniedBy, 'reporter');
    assert.equal(event?.reason, 'package-rule');
  });
});
