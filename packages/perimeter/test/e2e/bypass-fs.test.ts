// Hostile packages that know Perimeter is there try to read secrets or write outside the rules through the file
// system. Each test: a fixture package `evil` really attempts the escape inside a guarded process; the test
// asserts the secret never reached the process (not printed, not in the events, not copied anywhere) or the
// forbidden write did not happen, and that a legitimate read right next to it still works.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { describe, test } from 'node:test';
import { type GuardedRun, NODE, runGuarded, tempDir, writeTree } from '../helpers.js';

const TOKEN = 'npm_FAKEfsBypassToken0123456789abcdefABCDEF';
const AWS_KEY = 'AKIAFAKEFSBYPASS0001';
const ENV_SECRET = 'env-secret-value-7f3a9c';

interface Scene {
  home: string;
  /** A folder the policy lets the function read and write (its /tmp). */
  scratch: string;
  run: GuardedRun;
  /** What `evil` returned, and what the legitimate read next to it returned. */
  stolen: unknown;
  legit: unknown;
}

/**
 * Runs `attack` (the body of an async function (ctx, fs) in the hostile package) in a guarded process whose
 * HOME holds a fake ~/.npmrc and ~/.aws/credentials.json. `prepare` may plant things (symlinks…) beforehand,
 * as a malicious tarball could.
 */
async function attack(
  body: string,
  options: { prepare?: (ctx: { home: string; scratch: string; dir: string }) => void; esm?: boolean } = {},
): Promise<Scene> {
  const home = realpathSync(tempDir('perimeter-bypass-home-'));
  const scratch = realpathSync(tempDir('perimeter-bypass-scratch-'));
  const dir = realpathSync(tempDir('perimeter-bypass-app-'));
  writeTree(home, {
    '.npmrc': `//registry.npmjs.org/:_authToken=${TOKEN}\n`,
    '.aws/credentials.json': JSON.stringify({ aws_access_key_id: AWS_KEY }),
  });
  writeTree(scratch, { 'legit.txt': 'legit-scratch' });
  options.prepare?.({ home, scratch, dir });
  const evil = options.esm
    ? {
        'node_modules/evil/package.json': '{"name":"evil","type":"module","main":"index.js"}',
        'node_modules/evil/index.js': `export async function run(ctx) {\n${body}\n}`,
      }
    : {
        'node_modules/evil/package.json': '{"name":"evil","main":"index.js"}',
        'node_modules/evil/index.js': `const fs = require('fs');\nexports.run = async function run(ctx) {\n${body}\n};`,
      };
  const run = await runGuarded({
    dir,
    script: 'main.mjs',
    files: {
      ...evil,
      'data/config.json': '{"legit":"code-data"}',
      'main.mjs': `
        import fs from 'node:fs';
        import { run } from 'evil';
        const ctx = { home: process.env.HOME, scratch: process.argv[2], pid: process.pid };
        let stolen;
        try { stolen = await run(ctx); } catch (e) { stolen = { error: e.code ?? String(e) }; }
        const legit = [
          fs.readFileSync(new URL('./data/config.json', import.meta.url), 'utf8'),
          fs.readFileSync(ctx.scratch + '/legit.txt', 'utf8'),
        ];
        console.log(JSON.stringify({ stolen: stolen === undefined ? null : stolen, legit }));
      `,
    },
    policy: { mode: 'block', fs: { read: [`${scratch}/**`], write: [`${scratch}/**`] } },
    env: { HOME: home, SECRET_TOKEN: ENV_SECRET },
    args: [scratch],
  });
  const last = run.stdout.trim().split('\n').pop() ?? '';
  let parsed: { stolen?: unknown; legit?: unknown } = {};
  try {
    parsed = JSON.parse(last);
  } catch {
    assert.fail(`the app did not finish: code ${run.code}\n${run.stdout}\n${run.stderr}`);
  }
  return { home, scratch, run, stolen: parsed.stolen, legit: parsed.legit };
}

/** The secret reached nobody: not the hostile code, not stdout/stderr, not the events, not a file in scratch. */
function assertNothingLeaked(scene: Scene): void {
  const everything = `${JSON.stringify(scene.stolen)}\n${scene.run.stdout}\n${scene.run.stderr}\n${JSON.stringify(scene.run.events)}`;
  for (const secret of [TOKEN, AWS_KEY, ENV_SECRET]) assert.ok(!everything.includes(secret), `leaked ${secret}`);
  for (const file of listFiles(scene.scratch)) {
    const content = readFileSafe(file);
    for (const secret of [TOKEN, AWS_KEY]) assert.ok(!content.includes(secret), `${file} holds ${secret}`);
  }
  assert.deepEqual(scene.legit, ['{"legit":"code-data"}', 'legit-scratch'], 'the legitimate reads failed');
  assert.ok(
    scene.run.events.some((e) => e.capability === 'fs' && e.action === 'blocked'),
    'the attempt was reported',
  );
}

function listFiles(root: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    const path = `${root}/${entry.name}`;
    // Symlinks are what the test planted; copies of the secret would be regular files.
    if (entry.isDirectory()) out.push(...listFiles(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function readFileSafe(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

const blocked = { error: 'ERR_PERIMETER_BLOCKED' };

describe('fs bypasses', () => {
  test('bypass: symlink in a readable temp folder pointing at ~/.npmrc', async () => {
    const scene = await attack(`return fs.readFileSync(ctx.scratch + '/innocent.txt', 'utf8');`, {
      prepare: ({ home, scratch }) => symlinkSync(`${home}/.npmrc`, `${scratch}/innocent.txt`),
    });
    assert.deepEqual(scene.stolen, blocked);
    assertNothingLeaked(scene);
    assert.match(scene.run.events.find((e) => e.capability === 'fs')?.target ?? '', /^read .*\/\.npmrc$/);
  });

  test('bypass: symlink created at run time in a writable folder, then read', async () => {
    const scene = await attack(`
      const out = {};
      try { fs.symlinkSync(ctx.home + '/.npmrc', ctx.scratch + '/made.txt'); out.made = 'ok'; } catch (e) { out.made = e.code; }
      try { out.read = fs.readFileSync(ctx.scratch + '/made.txt', 'utf8'); } catch (e) { out.read = e.code; }
      return out;
    `);
    assert.equal((scene.stolen as any).made, 'ERR_PERIMETER_BLOCKED');
    assert.notEqual((scene.stolen as any).read, undefined);
    assertNothingLeaked(scene);
    assert.equal(existsSync(`${scene.scratch}/made.txt`), false);
  });

  test('bypass: symlinked directory leading into ~/.aws', async () => {
    const scene = await attack(
      `return [fs.readdirSync(ctx.scratch + '/cache').join(','), fs.readFileSync(ctx.scratch + '/cache/credentials.json', 'utf8')];`,
      { prepare: ({ home, scratch }) => symlinkSync(`${home}/.aws`, `${scratch}/cache`) },
    );
    assert.deepEqual(scene.stolen, blocked);
    assertNothingLeaked(scene);
  });

  test('bypass: `..` traversal from an allowed folder and through a symlink', async () => {
    const scene = await attack(
      `
      const path = require('path');
      const out = [];
      const rel = path.relative(ctx.scratch, ctx.home + '/.npmrc');
      for (const p of [ctx.scratch + '/' + rel, ctx.scratch + '/sub/../' + rel, ctx.scratch + '/deep/../.npmrc']) {
        try { out.push(fs.readFileSync(p, 'utf8')); } catch (e) { out.push(e.code); }
      }
      return out;
    `,
      {
        prepare: ({ home, scratch }) => {
          mkdirSync(`${scratch}/sub`);
          mkdirSync(`${home}/.aws/deep`, { recursive: true });
          // scratch/deep → ~/.aws/deep, so scratch/deep/.. is ~/.aws for the kernel (not scratch).
          symlinkSync(`${home}/.aws/deep`, `${scratch}/deep`);
        },
      },
    );
    assert.deepEqual(scene.stolen, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
    assertNothingLeaked(scene);
  });

  test('bypass: Buffer and Uint8Array paths', async () => {
    const scene = await attack(`
      const out = [];
      const bytes = Buffer.from(ctx.home + '/.npmrc');
      for (const p of [bytes, new Uint8Array(bytes)]) {
        try { out.push(fs.readFileSync(p, 'utf8')); } catch (e) { out.push(e.code); }
      }
      return out;
    `);
    assert.deepEqual(scene.stolen, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
    assertNothingLeaked(scene);
  });

  test('bypass: file: URL path, and a URL-like object whose getters change', async () => {
    const scene = await attack(`
      const out = [];
      const { pathToFileURL } = require('url');
      try { out.push(fs.readFileSync(pathToFileURL(ctx.home + '/.npmrc'), 'utf8')); } catch (e) { out.push(e.code); }
      let reads = 0;
      const sneaky = {
        get href() { return reads++ < 1 ? 'http://x/' : pathToFileURL(ctx.home + '/.npmrc').href; },
        protocol: 'file:', hostname: '',
        get pathname() { return reads++ < 2 ? '/nonexistent' : ctx.home + '/.npmrc'; },
      };
      try { out.push(fs.readFileSync(sneaky, 'utf8')); } catch (e) { out.push(e.code); }
      return out;
    `);
    const [plain, sneaky] = scene.stolen as string[];
    assert.equal(plain, 'ERR_PERIMETER_BLOCKED');
    assert.notEqual(sneaky, undefined);
    assertNothingLeaked(scene);
  });

  test('bypass: /proc/self/environ', async () => {
    const scene = await attack(`return fs.readFileSync('/proc/self/environ', 'utf8');`);
    assert.deepEqual(scene.stolen, blocked);
    assertNothingLeaked(scene);
  });

  test('bypass: /proc/<pid>/environ, /proc/thread-self/environ, /proc/self/task/<tid> and /proc/self/cwd/..', async () => {
    const scene = await attack(`
      const out = [];
      const tries = [
        '/proc/' + ctx.pid + '/environ',
        '/proc/thread-self/environ',
        '/proc/self/task/' + ctx.pid + '/environ',
        '/proc/self/cwd/../../proc/self/environ',
        '/proc/self/root' + ctx.home + '/.npmrc',
        '/proc/' + process.ppid + '/environ',
      ];
      for (const p of tries) { try { out.push(fs.readFileSync(p, 'utf8')); } catch (e) { out.push(e.code); } }
      return out;
    `);
    assert.deepEqual(scene.stolen, Array(6).fill('ERR_PERIMETER_BLOCKED'));
    assertNothingLeaked(scene);
  });

  test('bypass: fs.promises, fs/promises and ESM named imports', async () => {
    const scene = await attack(
      `
      const { readFileSync } = await import('node:fs');
      const { readFile } = await import('node:fs/promises');
      const fsp = (await import('node:fs')).promises;
      const out = [];
      for (const f of [() => readFileSync(ctx.home + '/.npmrc', 'utf8'), () => readFile(ctx.home + '/.npmrc', 'utf8'),
                       () => fsp.readFile(ctx.home + '/.npmrc', 'utf8'), async () => (await fsp.open(ctx.home + '/.npmrc')).readFile('utf8')]) {
        try { out.push(await f()); } catch (e) { out.push(e.code); }
      }
      return out;
    `,
      { esm: true },
    );
    assert.deepEqual(scene.stolen, Array(4).fill('ERR_PERIMETER_BLOCKED'));
    assertNothingLeaked(scene);
  });

  test('bypass: createReadStream and fs.ReadStream', async () => {
    const scene = await attack(`
      const read = (s) => new Promise((done) => { let t = ''; s.on('data', (d) => (t += d)); s.on('end', () => done(t)); s.on('error', (e) => done(e.code)); });
      return [await read(fs.createReadStream(ctx.home + '/.npmrc', 'utf8')), await read(new fs.ReadStream(ctx.home + '/.npmrc'))];
    `);
    assert.deepEqual(scene.stolen, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
    assertNothingLeaked(scene);
  });

  test('bypass: open with numeric flags to write into the code folder', async () => {
    let appDir = '';
    const scene = await attack(
      `
      const { O_WRONLY, O_CREAT, O_TRUNC, O_RDONLY } = fs.constants;
      const out = [];
      const target = require('path').resolve(__dirname, '../../data/config.json');
      for (const [p, flags] of [[target, O_WRONLY | O_TRUNC], [target + '.new', O_WRONLY | O_CREAT], [target, O_RDONLY | O_TRUNC]]) {
        try { const fd = fs.openSync(p, flags); fs.writeSync(fd, 'pwned'); out.push('opened'); } catch (e) { out.push(e.code); }
      }
      return out;
    `,
      { prepare: ({ dir }) => (appDir = dir) },
    );
    assert.deepEqual(scene.stolen, Array(3).fill('ERR_PERIMETER_BLOCKED'));
    assert.equal(readFileSync(`${appDir}/data/config.json`, 'utf8'), '{"legit":"code-data"}');
    assert.equal(existsSync(`${appDir}/data/config.json.new`), false);
    assert.deepEqual(scene.legit, ['{"legit":"code-data"}', 'legit-scratch']);
  });

  test('bypass: copyFile, cp and a dereferencing recursive cp of the secret into the writable folder', async () => {
    const scene = await attack(
      `
      const out = [];
      const tries = [
        () => fs.copyFileSync(ctx.home + '/.npmrc', ctx.scratch + '/a.txt'),
        () => fs.cpSync(ctx.home + '/.npmrc', ctx.scratch + '/b.txt'),
        () => fs.promises.cp(ctx.home + '/.aws', ctx.scratch + '/c', { recursive: true }),
        () => fs.cpSync(ctx.scratch + '/tree', ctx.scratch + '/copy', { recursive: true, dereference: true }),
        () => fs.promises.cp(ctx.scratch + '/tree', ctx.scratch + '/copy2', { recursive: true, dereference: true }),
      ];
      for (const f of tries) { try { await f(); out.push('copied'); } catch (e) { out.push(e.code); } }
      return out;
    `,
      {
        prepare: ({ home, scratch }) => {
          writeTree(scratch, { 'tree/plain.txt': 'plain' });
          symlinkSync(`${home}/.npmrc`, `${scratch}/tree/link`);
        },
      },
    );
    assert.deepEqual(scene.stolen, Array(5).fill('ERR_PERIMETER_BLOCKED'));
    assertNothingLeaked(scene);
  });

  test('bypass: rename the secret into the writable folder', async () => {
    const scene = await attack(`
      const out = [];
      try { fs.renameSync(ctx.home + '/.npmrc', ctx.scratch + '/moved'); out.push('moved'); } catch (e) { out.push(e.code); }
      try { await fs.promises.rename(ctx.home + '/.aws', ctx.scratch + '/aws'); out.push('moved'); } catch (e) { out.push(e.code); }
      return out;
    `);
    assert.deepEqual(scene.stolen, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
    assert.ok(readFileSync(`${scene.home}/.npmrc`, 'utf8').includes(TOKEN), 'the secret was moved');
    assert.equal(existsSync(`${scene.scratch}/moved`), false);
    assertNothingLeaked(scene);
  });

  test('bypass: hard link to ~/.npmrc', async () => {
    const scene = await attack(`
      try { fs.linkSync(ctx.home + '/.npmrc', ctx.scratch + '/hard'); } catch (e) { return e.code; }
      return fs.readFileSync(ctx.scratch + '/hard', 'utf8');
    `);
    assert.equal(scene.stolen, 'ERR_PERIMETER_BLOCKED');
    assert.equal(existsSync(`${scene.scratch}/hard`), false);
    assertNothingLeaked(scene);
  });

  test('bypass: require() and import() of a secret JSON file', async () => {
    const scene = await attack(`
      const out = [];
      try { out.push(require(ctx.home + '/.aws/credentials.json')); } catch (e) { out.push(e.code); }
      try { out.push((await import(ctx.home + '/.aws/credentials.json', { with: { type: 'json' } })).default); } catch (e) { out.push(e.code); }
      try { out.push(require('module').createRequire(ctx.home + '/x.js')('./.aws/credentials.json')); } catch (e) { out.push(e.code); }
      return out;
    `);
    assert.deepEqual(scene.stolen, Array(3).fill('ERR_PERIMETER_BLOCKED'));
    assertNothingLeaked(scene);
  });

  test('bypass: process.getBuiltinModule("fs") and require("node:fs") copies', async (t) => {
    const probe = await import('node:child_process').then(({ spawnSync }) =>
      spawnSync(NODE, ['-p', 'typeof process.getBuiltinModule'], { encoding: 'utf8' }),
    );
    if (probe.stdout.trim() !== 'function') t.skip('this Node has no process.getBuiltinModule');
    const scene = await attack(`
      const out = [];
      for (const mod of [process.getBuiltinModule?.('fs'), process.getBuiltinModule?.('node:fs'), require('node:fs'), module.constructor._load('fs')]) {
        if (!mod) continue;
        try { out.push(mod.readFileSync(ctx.home + '/.npmrc', 'utf8')); } catch (e) { out.push(e.code); }
      }
      const fsp = process.getBuiltinModule?.('fs/promises');
      if (fsp) { try { out.push(await fsp.readFile(ctx.home + '/.npmrc', 'utf8')); } catch (e) { out.push(e.code); } }
      return out;
    `);
    assert.ok((scene.stolen as string[]).length >= 3);
    assert.ok((scene.stolen as string[]).every((r) => r === 'ERR_PERIMETER_BLOCKED'));
    assertNothingLeaked(scene);
  });

  test('bypass: write through a planted dangling symlink to create ~/.ssh/authorized_keys', async () => {
    const scene = await attack(
      `
      const out = [];
      try { fs.writeFileSync(ctx.scratch + '/log.txt', 'ssh-ed25519 AAAA attacker'); out.push('written'); } catch (e) { out.push(e.code); }
      try { fs.mkdirSync(ctx.scratch + '/sshdir/sub', { recursive: true }); out.push('made'); } catch (e) { out.push(e.code); }
      return out;
    `,
      {
        prepare: ({ home, scratch }) => {
          symlinkSync(`${home}/.ssh/authorized_keys`, `${scratch}/log.txt`);
          symlinkSync(`${home}/.ssh`, `${scratch}/sshdir`);
        },
      },
    );
    assert.deepEqual(scene.stolen, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
    assert.equal(existsSync(`${scene.home}/.ssh`), false, '~/.ssh was created');
    assertNothingLeaked(scene);
  });

  test('bypass: existence probing and directory listing of HOME', async () => {
    const scene = await attack(`
      const out = [];
      out.push(fs.existsSync(ctx.home + '/.npmrc'));
      try { out.push(fs.readdirSync(ctx.home)); } catch (e) { out.push(e.code); }
      try { fs.statSync(ctx.home + '/.aws/credentials.json'); out.push('stat'); } catch (e) { out.push(e.code); }
      try { fs.accessSync(ctx.home + '/.npmrc'); out.push('access'); } catch (e) { out.push(e.code); }
      return out;
    `);
    assert.deepEqual(scene.stolen, [false, 'ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
    assertNothingLeaked(scene);
  });

  test('bypass: replaced String, Array, Map and Stats prototypes to blind the path checks', async () => {
    const scene = await attack(
      `
      const saved = {
        startsWith: String.prototype.startsWith, includes: String.prototype.includes,
        slice: String.prototype.slice, iterator: Array.prototype[Symbol.iterator],
        arrayIncludes: Array.prototype.includes, mapGet: Map.prototype.get,
        isSymbolicLink: fs.Stats.prototype.isSymbolicLink, decode: TextDecoder.prototype.decode,
      };
      const out = [];
      try {
        String.prototype.startsWith = () => false;
        String.prototype.includes = () => true;
        Array.prototype.includes = () => false;
        Map.prototype.get = () => undefined;
        fs.Stats.prototype.isSymbolicLink = () => false;
        TextDecoder.prototype.decode = () => ctx.scratch + '/legit.txt';
        Array.prototype[Symbol.iterator] = function* () {};
        try { out.push(fs.readFileSync(ctx.home + '/.npmrc', 'utf8')); } catch (e) { out.push(e.code); }
        try { out.push(fs.readFileSync(Buffer.from(ctx.home + '/.npmrc'), 'utf8')); } catch (e) { out.push(e.code); }
        try { fs.writeFileSync(ctx.scratch + '/dangling', 'attacker key'); out.push('written'); } catch (e) { out.push(e.code); }
      } finally {
        Array.prototype[Symbol.iterator] = saved.iterator;
        String.prototype.startsWith = saved.startsWith;
        String.prototype.includes = saved.includes;
        Array.prototype.includes = saved.arrayIncludes;
        Map.prototype.get = saved.mapGet;
        fs.Stats.prototype.isSymbolicLink = saved.isSymbolicLink;
        TextDecoder.prototype.decode = saved.decode;
      }
      return out;
    `,
      { prepare: ({ home, scratch }) => symlinkSync(`${home}/.ssh/authorized_keys`, `${scratch}/dangling`) },
    );
    assert.deepEqual(scene.stolen, Array(3).fill('ERR_PERIMETER_BLOCKED'));
    assert.equal(existsSync(`${scene.home}/.ssh`), false, '~/.ssh was created');
    assertNothingLeaked(scene);
  });

  test('bypass: process.chdir() into HOME right after an asynchronous call with a relative path', async () => {
    // The call is judged against the current folder (the app, readable); the thread pool opens the file a moment
    // later. Without the guard handing Node the absolute path it judged, some of these opens land in HOME.
    const scene = await attack(`
      const app = process.cwd();
      const counts = { leaked: 0, missing: 0, other: 0 };
      for (let round = 0; round < 5 && counts.leaked === 0; round++) {
        const pending = [];
        for (let i = 0; i < 200; i++) {
          process.chdir(app);
          pending.push(new Promise((done) => fs.readFile('.npmrc', 'utf8', (e, d) => {
            if (d) { counts.leaked++; counts.sample = d; } else if (e && e.code === 'ENOENT') counts.missing++; else counts.other++;
            done();
          })));
          pending.push(fs.promises.readFile('.aws/credentials.json', 'utf8').then((d) => { counts.leaked++; counts.sample = d; }, () => {}));
          process.chdir(ctx.home);
        }
        await Promise.all(pending);
      }
      process.chdir(app);
      // Reported like any other attempt: the secret path itself, asked for directly.
      try { fs.readFileSync(ctx.home + '/.npmrc'); } catch {}
      return counts;
    `);
    assert.equal((scene.stolen as { leaked: number }).leaked, 0);
    assertNothingLeaked(scene);
  });
});
