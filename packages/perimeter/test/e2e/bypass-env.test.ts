// Hostile packages that know Perimeter is there try to read a secret from the environment. Each test: the fixture
// package `evil` really tries, inside a guarded process started with STRIPE_API_KEY and AWS_SECRET_ACCESS_KEY in
// its environment; the test asserts neither value appears anywhere in the output (stdout, stderr, events) and
// that the legitimate read next to it (the app reading STRIPE_API_KEY, which the policy allows) works.
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import { describe, test } from 'node:test';
import { type GuardedRun, NODE, runGuarded, tempDir } from '../helpers.js';

const STRIPE = 'sk_test_FAKEenvBypass0123456789';
const AWS_SECRET = 'aws-secret-FAKE-0123456789abcdef';
const SECRETS = { STRIPE_API_KEY: STRIPE, AWS_SECRET_ACCESS_KEY: AWS_SECRET };

/** The function may read STRIPE_API_KEY; dependencies may not (packages["*"]), except the stripe package. */
const POLICY = {
  mode: 'block',
  env: { allow: ['STRIPE_API_KEY', 'FEATURE_FLAG'] },
  process: { allow: ['printenv', 'env'] },
  packages: { '*': { env: { allow: ['FEATURE_FLAG'] } }, stripe: { env: { allow: ['STRIPE_API_KEY'] } } },
};

interface Scene {
  run: GuardedRun;
  stolen: unknown;
  legit: unknown;
}

async function attack(
  body: string,
  options: { policy?: unknown; files?: Record<string, string> } = {},
): Promise<Scene> {
  const dir = realpathSync(tempDir('perimeter-bypass-env-'));
  const run = await runGuarded({
    dir,
    script: 'main.js',
    policy: options.policy ?? POLICY,
    env: { ...SECRETS, FEATURE_FLAG: 'on' },
    files: {
      ...options.files,
      'node_modules/evil/package.json': '{"name":"evil","version":"1.0.0","main":"index.js"}',
      'node_modules/evil/index.js': `module.exports = async function attack() {\n${body}\n};`,
      'main.js': `
        const attack = require('evil');
        (async () => {
          let stolen;
          try { stolen = await attack(); } catch (e) { stolen = { threw: e.code || String(e) }; }
          const legit = process.env.STRIPE_API_KEY === ${JSON.stringify(STRIPE)} ? 'app-reads-key' : 'app-lost-key';
          console.log(JSON.stringify({ stolen, legit }));
        })();`,
    },
  });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  let parsed: { stolen: unknown; legit: unknown };
  try {
    parsed = JSON.parse(line);
  } catch {
    assert.fail(`no result line; code ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  }
  return { run, ...parsed };
}

function assertNoLeak(scene: Scene): void {
  const everything = `${scene.run.stdout}\n${scene.run.stderr}\n${JSON.stringify(scene.run.events)}`;
  assert.ok(!everything.includes(STRIPE), 'the Stripe key leaked');
  assert.ok(!everything.includes(AWS_SECRET), 'the AWS secret leaked');
  assert.equal(scene.legit, 'app-reads-key', 'the app itself still reads the key it is allowed');
}

describe('bypass: environment', () => {
  test('bypass: enumerating process.env (Object.keys, JSON.stringify, spread, for…in, Object.entries, assign)', async () => {
    const scene = await attack(`
      const names = [];
      for (const k in process.env) names.push(k);
      return {
        keys: Object.keys(process.env).filter((k) => /STRIPE|AWS_SECRET/.test(k)),
        json: JSON.stringify(process.env),
        spread: { ...process.env },
        forIn: names.filter((k) => /STRIPE|AWS_SECRET/.test(k)),
        entries: Object.entries(process.env),
        assigned: Object.assign({}, process.env),
        inspected: require('util').inspect(process.env),
        flag: process.env.FEATURE_FLAG,
      };`);
    assertNoLeak(scene);
    const stolen = scene.stolen as Record<string, any>;
    assert.deepEqual(stolen.keys, []);
    assert.deepEqual(stolen.forIn, []);
    assert.equal(stolen.flag, 'on', 'a name every package may read is still there');
    assert.ok(stolen.json.includes('FEATURE_FLAG'));
  });

  test('bypass: Reflect.ownKeys, getOwnPropertyDescriptor(s), `in` and hasOwnProperty', async () => {
    const scene = await attack(`
      return {
        own: Reflect.ownKeys(process.env).filter((k) => /STRIPE|AWS_SECRET/.test(String(k))),
        descriptor: Object.getOwnPropertyDescriptor(process.env, 'STRIPE_API_KEY') ?? null,
        descriptors: Object.keys(Object.getOwnPropertyDescriptors(process.env)).filter((k) => /STRIPE/.test(k)),
        has: 'STRIPE_API_KEY' in process.env,
        hasOwn: Object.prototype.hasOwnProperty.call(process.env, 'AWS_SECRET_ACCESS_KEY'),
        direct: process.env.STRIPE_API_KEY ?? null,
        reflect: Reflect.get(process.env, 'AWS_SECRET_ACCESS_KEY') ?? null,
      };`);
    assertNoLeak(scene);
    assert.deepEqual(scene.stolen, {
      own: [],
      descriptor: null,
      descriptors: [],
      has: false,
      hasOwn: false,
      direct: null,
      reflect: null,
    });
    const denied = scene.run.events.filter((e) => e.capability === 'env' && e.package === 'evil');
    assert.ok(
      denied.some((e) => e.target === 'STRIPE_API_KEY' && e.deniedBy === 'evil' && e.reason === 'package-rule'),
    );
    assert.ok(denied.some((e) => e.target === 'AWS_SECRET_ACCESS_KEY' && e.reason === 'no-rule'));
  });

  test('bypass: a child started by the package inherits the environment (printenv, env, explicit env copy)', async () => {
    const scene = await attack(`
      const { execFileSync } = require('child_process');
      return {
        printenv: String(execFileSync('printenv')),
        env: String(execFileSync('env', [], { env: { ...process.env } })),
        one: (() => { try { return String(execFileSync('printenv', ['STRIPE_API_KEY'])); } catch (e) { return 'status ' + e.status; } })(),
      };`);
    assertNoLeak(scene);
    const stolen = scene.stolen as { printenv: string; one: string };
    assert.match(stolen.printenv, /FEATURE_FLAG=on/, 'the child did run and got the allowed variables');
    assert.equal(stolen.one, 'status 1', 'printenv found no STRIPE_API_KEY');
  });

  test('bypass: packages["*"] narrows a dependency while packages.stripe may read STRIPE_API_KEY', async () => {
    const scene = await attack(
      `
      const viaStripe = require('stripe').key();
      return { direct: process.env.STRIPE_API_KEY ?? null, viaStripe: viaStripe === ${JSON.stringify(STRIPE)} };`,
      {
        files: {
          'node_modules/stripe/package.json': '{"name":"stripe","version":"1.0.0","main":"index.js"}',
          'node_modules/stripe/index.js': 'exports.key = () => process.env.STRIPE_API_KEY;',
        },
      },
    );
    assertNoLeak(scene);
    // evil is still on the stack when it calls into stripe: both must allow the name, so the read is denied.
    assert.deepEqual(scene.stolen, { direct: null, viaStripe: false });
    const run2 = await runGuarded({
      script: 'main.js',
      policy: POLICY,
      env: SECRETS,
      files: {
        'node_modules/stripe/package.json': '{"name":"stripe","version":"1.0.0","main":"index.js"}',
        'node_modules/stripe/index.js': 'exports.key = () => process.env.STRIPE_API_KEY;',
        'main.js': `console.log(require('stripe').key() === ${JSON.stringify(STRIPE)} ? 'stripe-reads-key' : 'no');`,
      },
    });
    assert.equal(run2.stdout.trim(), 'stripe-reads-key', 'stripe, called by the app, reads its key');
  });

  test('bypass: overwriting or deleting a variable it may not read (swap the key for its own)', async () => {
    const scene = await attack(`
      const results = [];
      for (const attempt of [
        () => { process.env.STRIPE_API_KEY = 'sk_test_attacker'; },
        () => { delete process.env.STRIPE_API_KEY; },
        () => { Object.defineProperty(process.env, 'STRIPE_API_KEY', { value: 'sk_test_attacker', enumerable: true, configurable: true, writable: true }); },
      ]) {
        try { attempt(); results.push('done'); } catch (e) { results.push(e.code); }
      }
      // Creating a new variable is allowed (under packages["*"] evil still may not read it back).
      try { process.env.EVIL_NEW_VAR = 'mine'; results.push('created'); } catch (e) { results.push(e.code); }
      return results;`);
    assertNoLeak(scene);
    assert.deepEqual(scene.stolen, [
      'ERR_PERIMETER_BLOCKED',
      'ERR_PERIMETER_BLOCKED',
      'ERR_PERIMETER_BLOCKED',
      'created',
    ]);
  });

  test('bypass: replacing or redefining process.env itself', async () => {
    const scene = await attack(`
      const results = [];
      try { process.env = { STRIPE_API_KEY: 'sk_test_attacker' }; results.push('assigned'); } catch (e) { results.push(e.code); }
      try { Object.defineProperty(process, 'env', { value: {} }); results.push('redefined'); } catch (e) { results.push(e.name); }
      try { delete process.env; results.push(typeof process.env); } catch (e) { results.push(e.name); }
      results.push(process.env.STRIPE_API_KEY ?? null);
      return results;`);
    assertNoLeak(scene);
    assert.deepEqual(scene.stolen, ['ERR_PERIMETER_BLOCKED', 'TypeError', 'object', null]);
  });

  test('bypass: reading /proc/self/environ and /proc/<pid>/environ (the fs guard)', async () => {
    const scene = await attack(`
      const fs = require('fs');
      const results = [];
      for (const file of ['/proc/self/environ', '/proc/' + process.pid + '/environ', '/proc/thread-self/environ']) {
        try { results.push(fs.readFileSync(file, 'latin1')); } catch (e) { results.push(e.code); }
      }
      return results;`);
    assertNoLeak(scene);
    for (const result of scene.stolen as string[]) assert.equal(result, 'ERR_PERIMETER_BLOCKED');
  });

  test('bypass: a node child started with env: {} reads the secret from its own environment', async () => {
    const scene = await attack(
      `
      const { spawnSync } = require('child_process');
      const r = spawnSync(process.execPath, ['-e', 'console.log(String(process.env.SMUGGLED))'], {
        env: { SMUGGLED: 'given-by-code' },
      });
      return String(r.stdout).trim();`,
      { policy: { ...POLICY, process: { allow: [NODE] } } },
    );
    assertNoLeak(scene);
    // The child's own guard treats SMUGGLED as one of its platform variables: not in env.allow, so undefined.
    assert.equal(scene.stolen, 'undefined');
  });
});
