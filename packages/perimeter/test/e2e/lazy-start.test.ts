// The guard defers work off the cold start: `fs.promises` is patched when first handed out, the system resolver
// that checks a caller-supplied `lookup` is read when first needed. These tests make each way in the FIRST
// access in a fresh process, so a route that hands out the unpatched object (or an attacker-replaced resolver)
// before the patch would leak.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { describe, test } from 'node:test';
import { NODE_MAJOR, REGISTER, runGuarded, tempDir, writeTree } from '../helpers.js';

const REGISTER_DIR = dirname(REGISTER);

const SECRET = 'lazy-start-secret-4b1d';

describe('fs.promises is guarded whichever way it is first reached', () => {
  const outside = tempDir('perimeter-lazy-secret-');
  writeTree(outside, { 'secret.txt': SECRET });
  const secretPath = `${outside}/secret.txt`;

  // Each: a script whose first touch of the promises API is the route named, reading the secret then a code file.
  const routes: Record<string, { script: string; source: string }> = {
    'static ESM import of node:fs/promises': {
      script: 'main.mjs',
      source: `import { readFile } from 'node:fs/promises';
        const api = { readFile };`,
    },
    'ESM import { promises } from node:fs': {
      script: 'main.mjs',
      source: `import { promises } from 'node:fs';
        const api = promises;`,
    },
    "require('fs').promises": { script: 'main.cjs', source: `const api = require('fs').promises;` },
    "require('fs/promises')": { script: 'main.cjs', source: `const api = require('node:fs/promises');` },
    "process.getBuiltinModule('fs/promises')": {
      script: 'main.cjs',
      source: `const api = process.getBuiltinModule ? process.getBuiltinModule('fs/promises') : require('fs/promises');`,
    },
    'the fs.promises getter called directly': {
      script: 'main.cjs',
      source: `const api = Object.getOwnPropertyDescriptor(require('fs'), 'promises').get.call({});`,
    },
    'a redefined fs.promises getter': {
      script: 'main.cjs',
      source: `const fs = require('fs');
        try { Object.defineProperty(fs, 'promises', { get: () => null }); } catch {}
        try { delete fs.promises; } catch {}
        // Where the redefinition succeeds (Node 20 patches eagerly and leaves the getter alone) the caller only
        // broke its own view; the module itself is still the guarded one.
        const api = fs.promises ?? require('fs/promises');`,
    },
  };

  for (const [name, { script, source }] of Object.entries(routes)) {
    test(name, async () => {
      const esm = script.endsWith('.mjs');
      const run = await runGuarded({
        policy: { mode: 'block' },
        script,
        files: {
          'data.txt': 'code-data',
          [script]: `${source}
            ${esm ? '' : '(async () => {'}
            const out = [];
            for (const file of [${JSON.stringify(secretPath)}, ${esm ? "new URL('./data.txt', import.meta.url)" : "__dirname + '/data.txt'"}]) {
              try { out.push(await api.readFile(file, 'utf8')); } catch (e) { out.push(e.code); }
            }
            console.log(JSON.stringify(out));
            ${esm ? '' : '})();'}`,
        },
      });
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout.trim()), ['ERR_PERIMETER_BLOCKED', 'code-data']);
      assert.ok(!run.stdout.includes(SECRET) && !JSON.stringify(run.events).includes(SECRET));
      assert.ok(run.events.some((e) => e.capability === 'fs' && e.action === 'blocked'));
    });
  }

  test('the promises API is not loaded at start where registerHooks makes it safe to wait', async (t) => {
    if (NODE_MAJOR < 22) t.skip('patched eagerly where ESM imports of built-ins are invisible');
    const run = await runGuarded({
      policy: { mode: 'block' },
      script: 'main.cjs',
      preload: 'require',
      files: {
        'main.cjs': `const m = require('module');
          console.log(JSON.stringify({ hooks: typeof m.registerHooks === 'function',
            loaded: process.moduleLoadList.includes('NativeModule internal/fs/promises') }));`,
      },
    });
    assert.equal(run.code, 0, run.stderr);
    const { hooks, loaded } = JSON.parse(run.stdout.trim());
    if (!hooks) t.skip('this Node has no module.registerHooks');
    else assert.equal(loaded, false);
  });
});

test('a dependency that replaces dns.lookup cannot vouch for a lying custom lookup', async () => {
  let attackerConnections = 0;
  const attacker = net.createServer((socket) => {
    attackerConnections++;
    socket.destroy();
  });
  await new Promise<void>((done) => attacker.listen(0, '127.0.0.2', done));
  const { port } = attacker.address() as net.AddressInfo;
  try {
    const run = await runGuarded({
      policy: { network: { allow: ['tcp://localhost:*'] } },
      script: 'main.mjs',
      files: {
        'node_modules/evil/package.json': '{"name":"evil","main":"index.js"}',
        'node_modules/evil/index.js': `
          const dns = require('dns');
          const liar = (host, options, cb) => options && options.all ? cb(null, [{ address: '127.0.0.2', family: 4 }]) : cb(null, '127.0.0.2', 4);
          try { dns.lookup = liar; } catch {}
          exports.liar = liar;`,
        'main.mjs': `
          import evil from 'evil';
          import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
          const s = net.connect({ host: 'localhost', port: Number(process.argv[2]), lookup: evil.liar });
          s.on('error', (e) => console.log(e.code));
          s.on('connect', () => { s.destroy(); console.log('connected'); });`,
      },
      args: [String(port)],
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), 'ERR_PERIMETER_BLOCKED');
    assert.equal(attackerConnections, 0, 'the attacker address must never be connected to');
  } finally {
    attacker.close();
  }
});

test('the child-process guard loads at first use from what was captured at start, not through require', async () => {
  const marker = `${tempDir('perimeter-lazy-cp-')}/ran`;
  const run = await runGuarded({
    policy: { mode: 'block', process: { allow: ['/bin/echo'] } },
    script: 'main.cjs',
    preload: 'require',
    files: {
      'node_modules/evil/package.json': '{"name":"evil","main":"index.js"}',
      // Plants a do-nothing "guard" everywhere a require()-based or vm-based loader would get it from.
      'node_modules/evil/index.js': `
        const Module = require('module');
        const path = require('path');
        const fake = { patchChildProcess() {} };
        for (const file of ['process-guard.js', 'intercept/child_process.js']) {
          const full = path.join(${JSON.stringify(REGISTER_DIR)}, file);
          const m = new Module(full);
          m.loaded = true;
          m.exports = fake;
          require.cache[full] = m;
        }
        const load = Module._load;
        Module._load = function (request, ...rest) {
          return /process-guard|child_process\\.js/.test(String(request)) ? fake : load.call(this, request, ...rest);
        };
        const vm = require('vm');
        try { vm.compileFunction = () => function () { this.patchChildProcess = () => {}; }; } catch {}`,
      'main.cjs': `
        require('evil');
        const cp = require('child_process');
        const out = [];
        try { cp.execSync('touch ${marker}'); out.push('ran'); } catch (e) { out.push(e.code); }
        out.push(cp.execFileSync('/bin/echo', ['allowed']).toString().trim());
        console.log(JSON.stringify(out));`,
    },
  });
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout.trim()), ['ERR_PERIMETER_BLOCKED', 'allowed']);
  assert.equal(existsSync(marker), false, 'the denied command must not have run');
});
