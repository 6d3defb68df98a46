// Child process rules end to end: what each spawn API does when denied, argument rules, alert mode, trusted
// shells, the guard travelling into node children (file policy and inline policy), and package narrowing.
import assert from 'node:assert/strict';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { NODE, REGISTER, runGuarded, tempDir } from '../helpers.js';

function scratch(): { dir: string; marker: string } {
  const dir = realpathSync(tempDir('perimeter-process-'));
  return { dir, marker: join(dir, 'marker') };
}

describe('process policy', () => {
  test('with no process rules every program is denied, each API failing its own way', async () => {
    const { dir, marker } = scratch();
    const run = await runGuarded({
      dir,
      policy: { mode: 'block' },
      script: 'main.js',
      files: {
        'main.js': `
          const cp = require('child_process');
          const m = ${JSON.stringify(marker)};
          const out = {};
          try { cp.execSync('touch ' + m); } catch (e) { out.execSync = e.code; }
          try { cp.execFileSync('touch', [m]); } catch (e) { out.execFileSync = e.code; }
          const r = cp.spawnSync('touch', [m]);
          out.spawnSync = [r.error && r.error.code, r.status, r.pid];
          const child = cp.spawn('touch', [m]);
          out.spawnReturns = typeof child.on === 'function' && child.stdout !== null;
          const events = [];
          child.on('error', (e) => events.push('error:' + e.code));
          child.on('close', (code) => {
            events.push('close');
            out.spawn = events;
            cp.exec('touch ' + m, (e) => {
              out.exec = e && e.code;
              cp.execFile('touch', [m], (e2) => {
                out.execFile = e2 && e2.code;
                const f = cp.fork(${JSON.stringify(join(dir, 'child.js'))});
                f.on('error', (e3) => { out.fork = e3.code; console.log(JSON.stringify(out)); });
              });
            });
          });`,
        'child.js': 'console.log("child ran")',
      },
    });
    const out = JSON.parse(run.stdout.trim());
    assert.deepEqual(out, {
      execSync: 'ERR_PERIMETER_BLOCKED',
      execFileSync: 'ERR_PERIMETER_BLOCKED',
      spawnSync: ['ERR_PERIMETER_BLOCKED', null, 0],
      spawnReturns: true,
      spawn: ['error:ERR_PERIMETER_BLOCKED', 'close'],
      exec: 'ERR_PERIMETER_BLOCKED',
      execFile: 'ERR_PERIMETER_BLOCKED',
      fork: 'ERR_PERIMETER_BLOCKED',
    });
    assert.equal(existsSync(marker), false);
    assert.doesNotMatch(run.stdout, /child ran/);
    const event = run.events.find((e) => e.capability === 'process');
    assert.equal(event?.action, 'blocked');
    assert.equal(event?.target, `/usr/bin/touch ${marker}`);
    assert.equal(event?.reason, 'no-rule');
    assert.match(run.stderr + JSON.stringify(run.events), /process/);
  });

  test('the blocked error says what to add to the policy', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', process: { allow: ['echo'] } },
      script: 'main.js',
      files: {
        'main.js': `try { require('child_process').execFileSync('touch', ['x']); } catch (e) { console.log(JSON.stringify({ code: e.code, key: e.key, hint: e.hint, capability: e.capability })); }`,
      },
    });
    assert.deepEqual(JSON.parse(run.stdout), {
      code: 'ERR_PERIMETER_BLOCKED',
      key: 'process.allow',
      hint: 'if this is expected, add "/usr/bin/touch" to process.allow',
      capability: 'process',
    });
  });

  test('argument globs: allowed invocations run, others are denied', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', process: { allow: ['echo safe *', 'printenv HOME'] } },
      script: 'main.js',
      files: {
        'main.js': `
          const { execFileSync } = require('child_process');
          const tryRun = (f, a) => { try { return String(execFileSync(f, a)).trim(); } catch (e) { return e.code; } };
          console.log(JSON.stringify([tryRun('echo', ['safe', 'one']), tryRun('echo', ['unsafe']), tryRun('echo', ['safe', 'a', 'b']), tryRun('printenv', ['HOME']), tryRun('printenv', ['PATH'])]));`,
      },
    });
    assert.deepEqual(JSON.parse(run.stdout), [
      'safe one',
      'ERR_PERIMETER_BLOCKED',
      'ERR_PERIMETER_BLOCKED',
      process.env.HOME ?? '/root',
      'ERR_PERIMETER_BLOCKED',
    ]);
  });

  test('alert mode lets the program run and records an alerted event', async () => {
    const { dir, marker } = scratch();
    const run = await runGuarded({
      dir,
      policy: { mode: 'block', process: { mode: 'alert' } },
      script: 'main.js',
      files: {
        'main.js': `require('child_process').execFileSync('touch', [${JSON.stringify(marker)}]); console.log('ok');`,
      },
    });
    assert.equal(run.stdout.trim(), 'ok');
    assert.equal(existsSync(marker), true);
    assert.ok(run.events.some((e) => e.capability === 'process' && e.action === 'alerted'));
  });

  test('a shell allowed with any arguments is trusted with any script', async () => {
    const { dir, marker } = scratch();
    const run = await runGuarded({
      dir,
      policy: { mode: 'block', process: { allow: ['/bin/sh'] } },
      script: 'main.js',
      files: {
        'main.js': `
          const { execSync } = require('child_process');
          execSync('x=touch; $x ${marker}');
          try { execSync('touch ${marker}.2', { shell: '/bin/bash' }); } catch (e) { console.log(e.code); }`,
      },
    });
    assert.equal(existsSync(marker), true, '/bin/sh is trusted');
    assert.equal(existsSync(`${marker}.2`), false, 'bash is another program');
    assert.equal(run.stdout.trim(), 'ERR_PERIMETER_BLOCKED');
  });

  test('shell strings: every command in the string must be allowed', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', process: { allow: ['echo', 'tr'] } },
      script: 'main.js',
      files: {
        'main.js': `
          const { execSync } = require('child_process');
          console.log(String(execSync('echo hello | tr a-z A-Z && echo "done; really"')).trim().replace(/\\n/g, ' '));
          try { execSync('echo hello | tr a-z A-Z | sort'); } catch (e) { console.log(e.code); }`,
      },
    });
    assert.deepEqual(run.stdout.trim().split('\n'), ['HELLO done; really', 'ERR_PERIMETER_BLOCKED']);
    assert.ok(run.events.some((e) => e.target === '/usr/bin/sort'));
  });

  test('a node child runs under the same policy file', async () => {
    const { dir, marker } = scratch();
    const run = await runGuarded({
      dir,
      policy: { mode: 'block', process: { allow: [NODE] } },
      script: 'main.js',
      files: {
        'main.js': `
          const r = require('child_process').spawnSync(${JSON.stringify(NODE)}, ['child.js'], { encoding: 'utf8' });
          console.log(r.stdout.trim());`,
        'child.js': `
          const guarded = Boolean(globalThis[Symbol.for('perimeter.guard')]);
          let spawn; try { require('child_process').execFileSync('touch', [${JSON.stringify(marker)}]); spawn = 'ran'; } catch (e) { spawn = e.code; }
          console.log(JSON.stringify({ guarded, spawn, nodeOptions: process.env.NODE_OPTIONS }));`,
      },
    });
    const child = JSON.parse(run.stdout);
    assert.equal(child.guarded, true);
    assert.equal(child.spawn, 'ERR_PERIMETER_BLOCKED');
    assert.ok(child.nodeOptions.startsWith('--require '), child.nodeOptions);
    assert.ok(child.nodeOptions.includes(REGISTER));
    assert.equal(existsSync(marker), false);
  });

  test('an inline policy given to guard() reaches node children through a private file', async () => {
    const { dir, marker } = scratch();
    const run = await runGuarded({
      dir,
      preload: 'none',
      script: 'main.js',
      files: {
        'main.js': `
          const { guard } = require(${JSON.stringify(join(REGISTER, '..', 'perimeter.js'))});
          guard({ mode: 'block', process: { allow: [${JSON.stringify(NODE)}] } });
          const r = require('child_process').spawnSync(${JSON.stringify(NODE)}, ['-e', "try { require('child_process').execFileSync('touch', [process.argv[1]]); console.log('ran') } catch (e) { console.log(e.code, process.env.PERIMETER_POLICY) }", ${JSON.stringify(marker)}], { encoding: 'utf8' });
          console.log(r.stdout.trim());`,
      },
    });
    const [code, file] = run.stdout.trim().split(' ');
    assert.equal(code, 'ERR_PERIMETER_BLOCKED');
    assert.match(file ?? '', /perimeter-policy-.*\/perimeter\.json$/);
    assert.equal(existsSync(marker), false);
  });

  test('process.unguardedNode lets node children run without the guard', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', process: { allow: [NODE], unguardedNode: true } },
      script: 'main.js',
      files: {
        'main.js': `
          const r = require('child_process').spawnSync(${JSON.stringify(NODE)}, ['-e', 'console.log(Boolean(globalThis[Symbol.for("perimeter.guard")]))'], { encoding: 'utf8', env: {} });
          console.log(r.stdout.trim());`,
      },
    });
    assert.equal(run.stdout.trim(), 'false');
  });

  test('packages["*"] narrows child processes for dependencies; a package with its own rule may run its program', async () => {
    const { dir, marker } = scratch();
    const run = await runGuarded({
      dir,
      policy: {
        mode: 'block',
        process: { allow: ['echo', 'touch'] },
        packages: { '*': { process: { allow: [] } }, thumbnailer: { process: { allow: ['touch'] } } },
      },
      script: 'main.js',
      files: {
        'node_modules/thumbnailer/index.js': `exports.run = (m) => require('child_process').execFileSync('touch', [m]);`,
        'node_modules/leftpad/index.js': `exports.run = () => { try { require('child_process').execFileSync('echo', ['x']); return 'ran'; } catch (e) { return e.code; } };`,
        'main.js': `
          require('thumbnailer').run(${JSON.stringify(marker)});
          console.log(require('leftpad').run(), String(require('child_process').execFileSync('echo', ['app'])).trim());`,
      },
    });
    assert.equal(existsSync(marker), true);
    assert.equal(run.stdout.trim(), 'ERR_PERIMETER_BLOCKED app');
    const event = run.events.find((e) => e.capability === 'process');
    assert.equal(event?.package, 'leftpad');
    assert.equal(event?.deniedBy, 'leftpad');
    assert.equal(event?.reason, 'package-rule');
  });
});
