// A callback or promise read is judged when it is called, but Node opens the file later, on the thread pool. A
// hostile package that knows this starts a read of a file it may read, in a folder it may write, and at once
// renames over that file a symlink to ~/.npmrc (forged from allowed calls: a relative link made one folder down,
// then moved up). Each attempt below really races; the test runs the same loop without the guard first, to show
// the race is won on this machine, then guarded, where the secret must never come back. On Linux the guard judges
// what the descriptor really opened (/proc/self/fd/<fd>) before any byte reaches the caller.
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { describe, test } from 'node:test';
import { type GuardedRun, runGuarded, tempDir, writeTree } from '../helpers.js';

const TOKEN = 'npm_FAKEraceToken0123456789abcdefABCDEF';

const WAYS = ['readFile', 'promises.readFile', 'createReadStream', 'open', 'promises.open'] as const;

/**
 * The hostile package. `race(way, attempts, enough)` makes up to `attempts` attempts and stops early once the
 * secret came back `enough` times (the baseline only needs to show the race can be won).
 */
const EVIL = `
const fs = require('fs');
const path = require('path');
const classify = (text) => (text.includes('_authToken') ? 'secret' : text === 'legit' ? 'legit' : 'other:' + text);
const outcome = (e) => 'error:' + (e && e.code);
const readFd = (fd) => { try { return classify(fs.readFileSync(fd, 'utf8')); } finally { fs.closeSync(fd); } };

const starts = {
  readFile: (x) => new Promise((done) => fs.readFile(x, 'utf8', (e, t) => done(e ? outcome(e) : classify(t)))),
  'promises.readFile': (x) => fs.promises.readFile(x, 'utf8').then(classify, outcome),
  createReadStream: (x, swap) => new Promise((done) => {
    let text = '';
    // Streams open through fs.open; this one swaps right after its open is dispatched.
    const opener = { open: (...a) => { fs.open(...a); swap(); }, read: fs.read, close: fs.close };
    fs.createReadStream(x, { encoding: 'utf8', fs: opener })
      .on('data', (d) => (text += d))
      .on('error', (e) => done(outcome(e)))
      .on('end', () => done(classify(text)));
  }),
  open: (x) => new Promise((done) => fs.open(x, 'r', (e, fd) => done(e ? outcome(e) : readFd(fd)))),
  'promises.open': (x) => fs.promises.open(x).then(async (h) => { try { return classify(await h.readFile('utf8')); } finally { await h.close(); } }, outcome),
};

exports.race = async function race(ctx, way, attempts, enough) {
  const x = ctx.scratch + '/x.txt';
  const forge = ctx.scratch + '/forge-' + way;
  fs.mkdirSync(forge);
  const weapon = forge + '/w';
  const swap = () => fs.renameSync(weapon, x);
  const tally = { attempts: 0 };
  for (let i = 0; i < attempts && (tally.secret ?? 0) < enough; i++) {
    try { fs.unlinkSync(x); } catch {}
    fs.writeFileSync(x, 'legit');
    // Judged where it is made: ../<home>/.npmrc from scratch/forge-<way> is still inside scratch. Renamed over
    // scratch/x.txt, the same text leads out of scratch into HOME.
    fs.symlinkSync('../' + path.basename(ctx.home) + '/.npmrc', weapon);
    const reading = way === 'createReadStream' ? starts[way](x, swap) : starts[way](x);
    if (way !== 'createReadStream') swap();
    const got = await reading;
    tally[got] = (tally[got] ?? 0) + 1;
    tally.attempts++;
  }
  return tally;
};
`;

async function raceRun(
  guarded: boolean,
  attempts: number,
  enough: number,
): Promise<{ run: GuardedRun; home: string; result: Record<string, Record<string, number>> }> {
  const home = realpathSync(tempDir('perimeter-race-home-'));
  const scratch = realpathSync(tempDir('perimeter-race-scratch-'));
  const dir = realpathSync(tempDir('perimeter-race-app-'));
  writeTree(home, { '.npmrc': `//registry.npmjs.org/:_authToken=${TOKEN}\n` });
  const run = await runGuarded({
    dir,
    script: 'main.js',
    preload: guarded ? 'import' : 'none',
    files: {
      'node_modules/evil/package.json': '{"name":"evil","main":"index.js"}',
      'node_modules/evil/index.js': EVIL,
      'main.js': `
        const ctx = { home: process.env.HOME, scratch: process.argv[2] };
        (async () => {
          const result = {};
          for (const way of ${JSON.stringify(WAYS)}) result[way] = await require('evil').race(ctx, way, ${attempts}, ${enough});
          console.log(JSON.stringify(result));
        })().catch((e) => console.log(JSON.stringify({ failed: String(e && e.stack || e) })));
      `,
    },
    policy: { mode: 'block', fs: { read: [`${scratch}/**`], write: [`${scratch}/**`] } },
    env: { HOME: home },
    args: [scratch],
    timeoutMs: 120_000,
  });
  const last = run.stdout.trim().split('\n').pop() ?? '';
  let result: Record<string, Record<string, number>>;
  try {
    result = JSON.parse(last);
  } catch {
    assert.fail(`the app did not finish: code ${run.code}\n${run.stdout}\n${run.stderr}`);
  }
  assert.equal((result as { failed?: string }).failed, undefined, JSON.stringify(result));
  return { run, home, result };
}

describe('fs bypasses: racing an asynchronous read', { skip: process.platform !== 'linux' }, () => {
  test('bypass: a symlink renamed over the path right after fs.readFile, fs.promises.readFile, createReadStream, fs.open and fs.promises.open', async () => {
    // Without the guard the same loop wins the race on this machine (it stops at the first few wins).
    const baseline = await raceRun(false, 6000, 3);
    console.log('without the guard:', JSON.stringify(baseline.result));
    for (const way of WAYS) {
      assert.ok((baseline.result[way]!.secret ?? 0) > 0, `${way}: the race was never won without the guard`);
    }
    const guarded = await raceRun(true, 600, Number.POSITIVE_INFINITY);
    console.log('guarded:', JSON.stringify(guarded.result));
    for (const way of WAYS) {
      const tally = guarded.result[way]!;
      assert.equal(tally.attempts, 600, way);
      assert.equal(tally.secret, undefined, `${way}: the secret came back ${tally.secret} times`);
      // Every attempt read the legitimate file (the read won) or was blocked (the swap won): nothing else.
      assert.equal(
        (tally.legit ?? 0) + (tally['error:ERR_PERIMETER_BLOCKED'] ?? 0),
        600,
        `${way}: ${JSON.stringify(tally)}`,
      );
      assert.ok((tally.legit ?? 0) > 0, `${way}: the legitimate read never worked`);
    }
    const everything = `${guarded.run.stdout}\n${guarded.run.stderr}\n${JSON.stringify(guarded.run.events)}`;
    assert.ok(!everything.includes(TOKEN), 'the secret leaked');
    assert.ok(
      guarded.run.events.some(
        (e) => e.capability === 'fs' && e.action === 'blocked' && e.target === `read ${guarded.home}/.npmrc`,
      ),
      'the opened secret was reported as the read it is',
    );
  });
});

/** Asynchronous reads of allowed files, and their failures, as a function sees them. */
const LEGIT = `
const fs = require('fs');
const { promisify } = require('util');
const shape = (e) => (e ? { name: e.name, code: e.code, message: e.message, path: e.path, syscall: e.syscall, errno: e.errno } : e);
const cb = (f) => new Promise((done) => { try { f((e, v) => done(e ? { error: shape(e) } : { value: Buffer.isBuffer(v) ? 'buffer:' + v.toString() : v })); } catch (e) { done({ threw: shape(e) }); } });
const pr = (f) => { try { return f().then((v) => ({ value: Buffer.isBuffer(v) ? 'buffer:' + v.toString() : v }), (e) => ({ error: shape(e) })); } catch (e) { return { threw: shape(e) }; } };
const stream = (p, o) => new Promise((done) => { let t = ''; const s = fs.createReadStream(p, o); s.on('data', (d) => (t += d)).on('error', (e) => done({ error: shape(e) })).on('end', () => done({ value: t })); });
(async () => {
  const d = process.argv[2];
  fs.writeFileSync(d + '/a.txt', 'alpha');
  fs.mkdirSync(d + '/dir');
  fs.symlinkSync('a.txt', d + '/link');
  const aborted = AbortSignal.abort();
  const out = {
    cb: await cb((k) => fs.readFile(d + '/a.txt', k)),
    cbUtf8: await cb((k) => fs.readFile(d + '/a.txt', 'utf8', k)),
    cbOptions: await cb((k) => fs.readFile(d + '/a.txt', { encoding: 'utf8', flag: 'r' }, k)),
    cbLink: await cb((k) => fs.readFile(d + '/link', 'utf8', k)),
    cbRelative: await cb((k) => fs.readFile('a.txt', 'utf8', k)),
    cbCallbackLast: await cb((k) => fs.readFile(d + '/a.txt', k, undefined)),
    cbMissing: await cb((k) => fs.readFile(d + '/none.txt', k)),
    cbDir: await cb((k) => fs.readFile(d + '/dir', k)),
    cbBadEncoding: await cb((k) => fs.readFile(d + '/a.txt', 'nope', k)),
    cbAborted: await cb((k) => fs.readFile(d + '/a.txt', { signal: aborted }, k)),
    cbAppend: await cb((k) => fs.readFile(d + '/a.txt', { encoding: 'utf8', flag: 'a+' }, k)),
    promisified: await pr(() => promisify(fs.readFile)(d + '/a.txt', 'utf8')),
    pr: await pr(() => fs.promises.readFile(d + '/a.txt')),
    prUtf8: await pr(() => fs.promises.readFile(d + '/a.txt', 'utf8')),
    prLink: await pr(() => fs.promises.readFile(d + '/link', { encoding: 'utf8' })),
    prMissing: await pr(() => fs.promises.readFile(d + '/none.txt')),
    prDir: await pr(() => fs.promises.readFile(d + '/dir')),
    prBadEncoding: await pr(() => fs.promises.readFile(d + '/a.txt', 'nope')),
    prAborted: await pr(() => fs.promises.readFile(d + '/a.txt', { signal: aborted })),
    open: await cb((k) => fs.open(d + '/a.txt', (e, fd) => k(e, e ? fd : fs.readFileSync(fd, 'utf8')))),
    openNumeric: await cb((k) => fs.open(d + '/link', fs.constants.O_RDONLY, (e, fd) => k(e, e ? fd : fs.readFileSync(fd, 'utf8')))),
    openMissing: await cb((k) => fs.open(d + '/none.txt', 'r', k)),
    openReadWrite: await cb((k) => fs.open(d + '/a.txt', 'r+', (e, fd) => k(e, e ? fd : fs.readFileSync(fd, 'utf8')))),
    handle: await pr(async () => { const h = await fs.promises.open(d + '/link'); try { return await h.readFile('utf8'); } finally { await h.close(); } }),
    handleMissing: await pr(() => fs.promises.open(d + '/none.txt')),
    stream: await stream(d + '/a.txt', { encoding: 'utf8', start: 1, end: 3 }),
    streamMissing: await stream(d + '/none.txt'),
  };
  console.log(JSON.stringify(out).split(d).join('<d>'));
})();
`;

describe('asynchronous reads of allowed files, judged on what they opened', () => {
  test('results, errors and streams are what Node gives without the guard', async () => {
    const outputs: string[] = [];
    for (const preload of ['none', 'import'] as const) {
      const dir = realpathSync(tempDir('perimeter-race-legit-'));
      const run = await runGuarded({
        dir,
        script: 'main.js',
        preload,
        files: { 'main.js': LEGIT },
        policy: { mode: 'block', fs: { read: [`${dir}/**`], write: [`${dir}/**`] } },
        args: [dir],
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(
        run.events.filter((e) => e.action === 'blocked'),
        [],
      );
      outputs.push(run.stdout.trim());
    }
    const [plain, guarded] = outputs.map((o) => JSON.parse(o!));
    assert.deepEqual(guarded, plain);
    assert.equal(guarded.cbLink.value, 'alpha');
    assert.equal(guarded.stream.value, 'lph');
    assert.equal(guarded.cbMissing.error.code, 'ENOENT');
  });
});
