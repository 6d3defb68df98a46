// Reads of files the function may also write (its /tmp) are remembered, to spare a realpath per call. A hostile
// package that knows this reads an allowed file so that the answer is remembered, swaps the file for a symlink to
// a secret, and reads again, hoping to be answered from memory. Each scenario below really does it, with real
// files and real symlinks, through one way of changing the tree; the second read must be denied and the secret
// must reach nobody. The last part checks each namespace-changing call on its own: the swap is made by this test
// process (another process, which the guard cannot see), and the call must still make the guard forget.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { realpathSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { NODE, REGISTER, readEvents, runGuarded, tempDir, writeTree } from '../helpers.js';

const TOKEN = 'npm_FAKEremembered0123456789abcdefABCDEF';

interface Places {
  home: string;
  scratch: string;
  dir: string;
}

function places(): Places {
  // Siblings in the temp folder: the forged link below counts on HOME being next to scratch.
  const home = realpathSync(tempDir('perimeter-remembered-home-'));
  const scratch = realpathSync(tempDir('perimeter-remembered-scratch-'));
  const dir = realpathSync(tempDir('perimeter-remembered-app-'));
  writeTree(home, { '.npmrc': `//registry.npmjs.org/:_authToken=${TOKEN}\n` });
  writeTree(scratch, { 'x.txt': 'legit-v1', 'd/x.txt': 'legit-v1' });
  return { home, scratch, dir };
}

/**
 * What every hostile body can use. `forge` makes a symlink to HOME (or a file in it) with calls the guard allows:
 * a relative link is judged where it is made, one folder down in scratch, where `../<home>` is still inside
 * scratch; moved up one level (into scratch itself) the same text leads out of scratch into HOME. No link planted
 * beforehand, nothing outside the fs API: the move that arms it is the swap.
 */
const PRELUDE = `
const fs = require('fs');
const read = (p) => { try { const t = fs.readFileSync(p, 'utf8'); return t.includes('_authToken') ? 'SECRET' : t; } catch (e) { return e.code; } };
let forged = 0;
function forge(ctx, leaf, depth = 1) {
  const folder = ctx.scratch + '/forge-' + ++forged + '/a/b'.slice(0, 2 * (depth - 1));
  fs.mkdirSync(folder, { recursive: true });
  fs.symlinkSync('../'.repeat(depth) + ctx.homeBase + leaf, folder + '/w');
  return folder + '/w';
}
`;

interface Outcome {
  result: Record<string, unknown>;
  stdout: string;
  stderr: string;
  events: Array<Record<string, any>>;
}

/** Runs `body` (an async function body with ctx, fs, read, forge) inside the hostile package, guarded. */
async function hostile(body: string, policyExtra: Record<string, unknown> = {}): Promise<Outcome & Places> {
  const where = places();
  const run = await runGuarded({
    dir: where.dir,
    script: 'main.js',
    files: {
      'node_modules/evil/package.json': '{"name":"evil","main":"index.js"}',
      'node_modules/evil/index.js': `${PRELUDE}\nexports.run = async function run(ctx) {\n${body}\n};`,
      'main.js': `
        const ctx = { home: process.env.HOME, homeBase: require('path').basename(process.env.HOME), scratch: process.argv[2] };
        require('evil').run(ctx).then(
          (result) => console.log(JSON.stringify(result)),
          (e) => console.log(JSON.stringify({ failed: String(e && e.stack || e) })),
        );
      `,
    },
    policy: { mode: 'block', fs: { read: [`${where.scratch}/**`], write: [`${where.scratch}/**`] }, ...policyExtra },
    env: { HOME: where.home },
    args: [where.scratch],
  });
  const last = run.stdout.trim().split('\n').pop() ?? '';
  let result: Record<string, unknown>;
  try {
    result = JSON.parse(last);
  } catch {
    assert.fail(`the app did not finish: code ${run.code}\n${run.stdout}\n${run.stderr}`);
  }
  return { ...where, result, stdout: run.stdout, stderr: run.stderr, events: run.events };
}

/** The swap happened (the file is now a link to the secret), the read after it was denied, nothing leaked. */
function assertSwapDenied(outcome: Outcome & Places, swapped: string): void {
  const { result } = outcome;
  assert.deepEqual(
    [result.before, result.again],
    ['legit-v1', 'legit-v1'],
    `the allowed reads: ${JSON.stringify(result)} ${outcome.stderr}`,
  );
  assert.equal(result.after, 'ERR_PERIMETER_BLOCKED', JSON.stringify(result));
  // The attack itself worked on disk: only the guard stood between it and the secret.
  assert.equal(realpathSync(swapped), `${outcome.home}/.npmrc`);
  const everything = `${outcome.stdout}\n${outcome.stderr}\n${JSON.stringify(outcome.events)}`;
  assert.ok(!everything.includes(TOKEN), 'the secret leaked');
  assert.ok(
    outcome.events.some((e) => e.capability === 'fs' && e.action === 'blocked' && /\.npmrc$/.test(e.target)),
    'the read was reported',
  );
}

describe('fs bypasses: swapping a remembered file', () => {
  test('bypass: remembered /tmp file swapped by unlinkSync, then symlinkSync (target filled by a rename)', async () => {
    // symlinkSync judges its target: a link straight to the secret is refused. So the link points at a name that
    // does not exist yet, and a forged link to HOME is moved there afterwards.
    const outcome = await hostile(`
      const x = ctx.scratch + '/x.txt';
      const out = { before: read(x), again: read(x) };
      fs.unlinkSync(x);
      fs.symlinkSync('slot/.npmrc', x);
      fs.renameSync(forge(ctx, ''), ctx.scratch + '/slot');
      out.after = read(x);
      return out;
    `);
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('bypass: remembered /tmp file replaced by fs.promises.rename of a symlink over it', async () => {
    const outcome = await hostile(`
      const weapon = forge(ctx, '/.npmrc');
      const x = ctx.scratch + '/x.txt';
      const out = { before: read(x), again: read(x) };
      await fs.promises.rename(weapon, x);
      out.after = read(x);
      return out;
    `);
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('bypass: remembered /tmp file replaced by renameSync of a symlink over it', async () => {
    const outcome = await hostile(`
      const weapon = forge(ctx, '/.npmrc');
      const x = ctx.scratch + '/x.txt';
      const out = { before: read(x), again: read(x) };
      fs.renameSync(weapon, x);
      out.after = read(x);
      return out;
    `);
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('bypass: remembered /tmp file swapped by callback fs.unlink, fs.symlink and fs.rename', async () => {
    const outcome = await hostile(`
      const { promisify } = require('util');
      const x = ctx.scratch + '/x.txt';
      const out = { before: read(x), again: read(x) };
      await new Promise((resolve, reject) => fs.unlink(x, (e) => (e ? reject(e) : resolve())));
      await new Promise((resolve, reject) => fs.symlink('slot/.npmrc', x, (e) => (e ? reject(e) : resolve())));
      const weapon = forge(ctx, '');
      await new Promise((resolve, reject) => fs.rename(weapon, ctx.scratch + '/slot', (e) => (e ? reject(e) : resolve())));
      out.after = read(x);
      return out;
    `);
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('bypass: remembered file in a /tmp folder replaced by cpSync of a folder holding a relative symlink', async () => {
    // The link is copied verbatim one level up, where its text leads into HOME. Where cpSync copies in C++
    // (Node 22.?+) no wrapper judges the new link; elsewhere Node's JS cp calls the guarded symlinkSync.
    const outcome = await hostile(`
      const weapon = forge(ctx, '/.npmrc', 2);
      fs.renameSync(weapon, require('path').dirname(weapon) + '/x.txt');
      const x = ctx.scratch + '/d/x.txt';
      const out = { before: read(x), again: read(x) };
      fs.rmSync(ctx.scratch + '/d', { recursive: true });
      try { fs.cpSync(require('path').dirname(weapon), ctx.scratch + '/d', { recursive: true, verbatimSymlinks: true }); out.cp = 'copied'; }
      catch (e) { out.cp = e.code; }
      out.after = read(x);
      return out;
    `);
    console.log('cpSync:', outcome.result.cp);
    if (outcome.result.cp === 'copied') assertSwapDenied(outcome, `${outcome.scratch}/d/x.txt`);
    else {
      assert.equal(outcome.result.cp, 'ERR_PERIMETER_BLOCKED');
      assert.notEqual(outcome.result.after, 'SECRET');
    }
  });

  test('bypass: remembered /tmp file swapped by an allowed child process (ln -sf)', async () => {
    const outcome = await hostile(
      `
      const x = ctx.scratch + '/x.txt';
      const out = { before: read(x), again: read(x) };
      require('child_process').execFileSync('ln', ['-sf', ctx.home + '/.npmrc', x]);
      out.after = read(x);
      return out;
    `,
      { process: { allow: ['ln'] } },
    );
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('bypass: remembered /tmp file swapped by a worker thread (renameSync there)', async () => {
    const outcome = await hostile(
      `
      const weapon = forge(ctx, '/.npmrc');
      const x = ctx.scratch + '/x.txt';
      const out = { before: read(x), again: read(x) };
      const { Worker } = require('worker_threads');
      await new Promise((resolve, reject) => {
        const w = new Worker('require("fs").renameSync(' + JSON.stringify(weapon) + ', ' + JSON.stringify(x) + ')', { eval: true });
        w.on('error', reject);
        w.on('exit', resolve);
      });
      out.after = read(x);
      return out;
    `,
      { worker: { allow: true } },
    );
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('bypass: a worker thread reads a /tmp file twice while the main thread swaps it', async () => {
    const outcome = await hostile(
      `
      const weapon = forge(ctx, '/.npmrc');
      const x = ctx.scratch + '/x.txt';
      const { Worker } = require('worker_threads');
      const code = \`
        const { parentPort, workerData } = require('worker_threads');
        const fs = require('fs');
        const read = (p) => { try { const t = fs.readFileSync(p, 'utf8'); return t.includes('_authToken') ? 'SECRET' : t; } catch (e) { return e.code; } };
        const out = { before: read(workerData), again: read(workerData) };
        parentPort.once('message', () => { out.after = read(workerData); parentPort.postMessage(out); });
        parentPort.postMessage('ready');
      \`;
      return await new Promise((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: x });
        w.on('error', reject);
        w.on('message', (m) => {
          if (m === 'ready') { fs.renameSync(weapon, x); w.postMessage('go'); }
          else resolve(m);
        });
      });
    `,
      { worker: { allow: true } },
    );
    assertSwapDenied(outcome, `${outcome.scratch}/x.txt`);
  });

  test('the legitimate cycle: write, read, rewrite, atomic rename, delete and recreate a /tmp file', async () => {
    const outcome = await hostile(`
      const x = ctx.scratch + '/cycle.txt';
      const out = [];
      fs.writeFileSync(x, 'one'); out.push(read(x), read(x));
      fs.writeFileSync(x, 'two'); out.push(read(x));
      fs.appendFileSync(x, '+'); out.push(read(x));
      fs.writeFileSync(x + '.tmp', 'three'); fs.renameSync(x + '.tmp', x); out.push(read(x), read(x));
      await fs.promises.writeFile(x + '.tmp', 'four'); await fs.promises.rename(x + '.tmp', x); out.push(read(x));
      fs.unlinkSync(x); out.push(read(x));
      fs.writeFileSync(x, 'five'); out.push(read(x), fs.existsSync(x), fs.statSync(x).size);
      fs.mkdirSync(ctx.scratch + '/sub'); fs.writeFileSync(ctx.scratch + '/sub/f', 'six'); out.push(read(ctx.scratch + '/sub/f'));
      fs.rmSync(ctx.scratch + '/sub', { recursive: true }); out.push(read(ctx.scratch + '/sub/f'));
      return { out };
    `);
    assert.deepEqual(outcome.result.out, [
      'one',
      'one',
      'two',
      'two+',
      'three',
      'three',
      'four',
      'ENOENT',
      'five',
      true,
      4,
      'six',
      'ENOENT',
    ]);
    assert.deepEqual(
      outcome.events.filter((e) => e.action === 'blocked'),
      [],
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Each call on its own. The fixture remembers a /tmp file, asks this test to swap it for a link to the secret
// (a change the guard cannot see: another process), makes one namespace-changing call on unrelated files, and
// reads again. The call must have made the guard forget. The control (no call) shows the test can tell: there
// the remembered answer stands, the documented limit for other processes.

const OPS = `
const ops = {
  none: () => {},
  'writeFileSync (creates a file: not a namespace change that matters)': (d) => fs.writeFileSync(d + '/new', 'x'),
  mkdirSync: (d) => fs.mkdirSync(d + '/m'),
  mkdir: (d) => cb((k) => fs.mkdir(d + '/m', k)),
  'promises.mkdir': (d) => fs.promises.mkdir(d + '/m'),
  mkdtempSync: (d) => fs.mkdtempSync(d + '/t-'),
  mkdtemp: (d) => cb((k) => fs.mkdtemp(d + '/t-', k)),
  'promises.mkdtemp': (d) => fs.promises.mkdtemp(d + '/t-'),
  symlinkSync: (d) => fs.symlinkSync('f', d + '/l'),
  symlink: (d) => cb((k) => fs.symlink('f', d + '/l', k)),
  'promises.symlink': (d) => fs.promises.symlink('f', d + '/l'),
  linkSync: (d) => fs.linkSync(d + '/f', d + '/h'),
  link: (d) => cb((k) => fs.link(d + '/f', d + '/h', k)),
  'promises.link': (d) => fs.promises.link(d + '/f', d + '/h'),
  renameSync: (d) => fs.renameSync(d + '/f', d + '/g'),
  rename: (d) => cb((k) => fs.rename(d + '/f', d + '/g', k)),
  'promises.rename': (d) => fs.promises.rename(d + '/f', d + '/g'),
  unlinkSync: (d) => fs.unlinkSync(d + '/f'),
  unlink: (d) => cb((k) => fs.unlink(d + '/f', k)),
  'promises.unlink': (d) => fs.promises.unlink(d + '/f'),
  rmSync: (d) => fs.rmSync(d + '/e', { recursive: true }),
  rm: (d) => cb((k) => fs.rm(d + '/e', { recursive: true }, k)),
  'promises.rm': (d) => fs.promises.rm(d + '/e', { recursive: true }),
  rmdirSync: (d) => fs.rmdirSync(d + '/e'),
  rmdir: (d) => cb((k) => fs.rmdir(d + '/e', k)),
  'promises.rmdir': (d) => fs.promises.rmdir(d + '/e'),
  cpSync: (d) => fs.cpSync(d + '/f', d + '/c'),
  cp: (d) => cb((k) => fs.cp(d + '/f', d + '/c', k)),
  'promises.cp': (d) => fs.promises.cp(d + '/f', d + '/c'),
  copyFileSync: (d) => fs.copyFileSync(d + '/f', d + '/c'),
  copyFile: (d) => cb((k) => fs.copyFile(d + '/f', d + '/c', k)),
  'promises.copyFile': (d) => fs.promises.copyFile(d + '/f', d + '/c'),
};
if (fs.mkdtempDisposableSync) ops.mkdtempDisposableSync = (d) => fs.mkdtempDisposableSync(d + '/t-');
if (fs.promises.mkdtempDisposable) ops['promises.mkdtempDisposable'] = (d) => fs.promises.mkdtempDisposable(d + '/t-');
function cb(start) {
  return new Promise((resolve, reject) => start((e) => (e ? reject(e) : resolve())));
}
`;

const PROTOCOL = `
const fs = require('fs');
const read = (p) => { try { const t = fs.readFileSync(p, 'utf8'); return t.includes('_authToken') ? 'SECRET' : t; } catch (e) { return e.code; } };
// Blocks this thread until the test has swapped the file: nothing else runs here meanwhile, not even the
// completion of a call in flight.
function swapped(path) {
  process.stdout.write('swap ' + path + '\\n');
  const buf = Buffer.alloc(8);
  let got = '';
  while (!got.includes('\\n')) {
    const n = fs.readSync(0, buf, 0, buf.length, null);
    if (n === 0) throw new Error('stdin closed');
    got += buf.toString('utf8', 0, n);
  }
}
let round = 0;
function remembered(scratch) {
  const d = scratch + '/op-' + ++round;
  fs.mkdirSync(d + '/e', { recursive: true });
  fs.writeFileSync(d + '/f', 'f');
  const target = scratch + '/t-' + round;
  fs.writeFileSync(target, 'legit');
  read(target);
  read(target);
  swapped(target);
  return { d, target };
}
`;

function hasSqlite(): boolean {
  try {
    require('node:sqlite');
    return true;
  } catch {
    return false;
  }
}

/** Runs a guarded script that asks for swaps on stdout ("swap <path>"); each is made here, then acknowledged. */
async function runWithSwaps(
  script: string,
  policyExtra: Record<string, unknown> = {},
  files: Record<string, string> = {},
): Promise<{ result: Record<string, string>; stdout: string; stderr: string; home: string }> {
  const where = places();
  writeTree(where.dir, { 'main.js': script, ...files });
  writeFileSync(
    join(where.dir, 'perimeter.json'),
    JSON.stringify({
      mode: 'block',
      fs: { read: [`${where.scratch}/**`], write: [`${where.scratch}/**`] },
      ...policyExtra,
    }),
  );
  const eventsFile = join(where.dir, 'events.jsonl');
  const child = spawn(NODE, ['--import', REGISTER, 'main.js', where.scratch], {
    cwd: where.dir,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: where.home, PERIMETER_EVENTS_FILE: eventsFile },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout.on('data', (chunk) => {
    stdout += chunk;
    pending += chunk;
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      const line = pending.slice(0, newline);
      pending = pending.slice(newline + 1);
      if (line.startsWith('swap ')) {
        const path = line.slice(5);
        unlinkSync(path);
        symlinkSync(`${where.home}/.npmrc`, path);
        child.stdin.write('ok\n');
      }
      newline = pending.indexOf('\n');
    }
  });
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await new Promise((done) => child.on('close', done));
  clearTimeout(timer);
  const last = stdout.trim().split('\n').pop() ?? '';
  let result: Record<string, string>;
  try {
    result = JSON.parse(last);
  } catch {
    assert.fail(`the fixture did not finish\n${stdout}\n${stderr}`);
  }
  const events = readEvents(eventsFile);
  assert.ok(!JSON.stringify(events).includes(TOKEN) && !stderr.includes(TOKEN), 'the secret reached the output');
  return { result, stdout, stderr, home: where.home };
}

describe('every namespace-changing fs call forgets remembered /tmp reads', () => {
  test('sync, callback and promise forms of symlink, link, rename, unlink, rm, rmdir, mkdir, mkdtemp, cp, copyFile', async () => {
    const { result, stderr } = await runWithSwaps(`${PROTOCOL}${OPS}
      (async () => {
        const out = {};
        for (const [name, op] of Object.entries(ops)) {
          const { d, target } = remembered(process.argv[2]);
          await op(d);
          out[name] = read(target);
        }
        console.log(JSON.stringify(out));
      })();
    `);
    const names = Object.keys(result);
    assert.ok(names.length >= 32, `${names.length} calls tried\n${stderr}`);
    for (const name of names) {
      if (name === 'none' || name.startsWith('writeFileSync')) continue;
      assert.equal(result[name], 'ERR_PERIMETER_BLOCKED', `${name}: ${JSON.stringify(result)}`);
    }
    // The control: with no namespace change in this process the remembered answer stands. This is the
    // documented limit (another process changed the tree), and the proof that the checks above can fail.
    assert.equal(result.none, 'SECRET');
    // Creating a regular file cannot put a symlink where a remembered path runs, so it does not forget.
    assert.equal(result['writeFileSync (creates a file: not a namespace change that matters)'], 'SECRET');
  });

  test('nothing is remembered while a callback or promise call is still in flight', async () => {
    const { result } = await runWithSwaps(`${PROTOCOL}${OPS}
      (async () => {
        const out = {};
        for (const name of ['rename', 'promises.rename', 'cp', 'promises.mkdir']) {
          const d = process.argv[2] + '/flight-' + name;
          fs.mkdirSync(d + '/e', { recursive: true });
          fs.writeFileSync(d + '/f', 'f');
          const target = process.argv[2] + '/flight-target-' + name;
          fs.writeFileSync(target, 'legit');
          const running = ops[name](d);
          // Its completion cannot run before this synchronous stretch ends.
          read(target);
          read(target);
          swapped(target);
          out[name] = read(target);
          await running;
        }
        console.log(JSON.stringify(out));
      })();
    `);
    assert.deepEqual(result, {
      rename: 'ERR_PERIMETER_BLOCKED',
      'promises.rename': 'ERR_PERIMETER_BLOCKED',
      cp: 'ERR_PERIMETER_BLOCKED',
      'promises.mkdir': 'ERR_PERIMETER_BLOCKED',
    });
  });

  for (const [name, start, policy] of [
    ['a child process', `require('child_process').spawnSync('true')`, { process: { allow: ['true'] } }],
    [
      'a worker thread',
      `await new Promise((resolve) => new (require('worker_threads').Worker)('0', { eval: true }).on('exit', resolve))`,
      { worker: { allow: true } },
    ],
    ['loading node:wasi', `require('node:wasi')`, {}],
    [
      'module.register (hooks on a thread of their own)',
      `require('node:module').register?.('data:text/javascript,export%20{}')`,
      { worker: { allow: true } },
    ],
    [
      'module.register taken from an import() of node:module',
      `(await import('node:module')).register('data:text/javascript,export%20{}')`,
      { worker: { allow: true } },
    ],
    ['loading node:sqlite (it can load native extensions)', `require('node:sqlite')`, {}],
  ] as const) {
    const skip = name.includes('sqlite') && !hasSqlite() ? 'no node:sqlite on this Node' : false;
    test(`after ${name}, /tmp reads are judged afresh for good`, { skip }, async () => {
      const { result } = await runWithSwaps(
        `${PROTOCOL}
        process.removeAllListeners('warning');
        (async () => {
          const out = {};
          const first = remembered(process.argv[2]);
          ${start};
          out.first = read(first.target);
          const second = remembered(process.argv[2]);
          out.second = read(second.target);
          console.log(JSON.stringify(out));
        })();
      `,
        policy,
      );
      assert.deepEqual(result, { first: 'ERR_PERIMETER_BLOCKED', second: 'ERR_PERIMETER_BLOCKED' });
    });
  }

  test('a worker thread never remembers /tmp reads: the thread that started it changes the tree unseen', async () => {
    const { result } = await runWithSwaps(
      `
      const { Worker } = require('worker_threads');
      const w = new Worker(require('path').join(__dirname, 'worker.js'), { workerData: process.argv[2] });
      w.on('message', (m) => console.log(JSON.stringify(m)));
    `,
      { worker: { allow: true } },
      {
        'worker.js': `${PROTOCOL}${OPS}
          const { parentPort, workerData } = require('worker_threads');
          const { target } = remembered(workerData);
          parentPort.postMessage({ worker: read(target) });
        `,
      },
    );
    assert.deepEqual(result, { worker: 'ERR_PERIMETER_BLOCKED' });
  });
});
