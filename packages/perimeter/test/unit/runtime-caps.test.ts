// Decisions for workers, native addons and raw bindings (src/policy/runtime-caps.ts), and the pristine helpers
// those decisions rest on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as CapsModule from '../../src/policy/runtime-caps.js';
import type * as PristineModule from '../../src/pristine.js';

const caps = require('../../../dist/policy/runtime-caps.js') as typeof CapsModule;
const pristine = require('../../../dist/pristine.js') as typeof PristineModule;

test('workers: denied unless allow is true or the mode is allow', () => {
  assert.deepEqual(caps.evaluateWorker(caps.compileWorkerRules({}, 'block')), {
    allowed: false,
    reason: 'workers-not-allowed',
  });
  assert.equal(caps.evaluateWorker(caps.compileWorkerRules({ worker: { allow: true } }, 'block')).allowed, true);
  assert.equal(caps.evaluateWorker(caps.compileWorkerRules({}, 'allow')).allowed, true);
  assert.equal(caps.evaluateWorker(caps.compileWorkerRules({ worker: { mode: 'allow' } }, 'block')).allowed, true);
  // A truthy non-boolean is not `true` (the schema rejects it; the evaluator does not guess either).
  assert.equal(
    caps.evaluateWorker(caps.compileWorkerRules({ worker: { allow: 'yes' as any } }, 'block')).allowed,
    false,
  );
});

test('addons: globs matched against the real path, relative globs from the policy folder', () => {
  const rules = caps.compileAddonRules(
    { addon: { allow: ['native/*.node', '/opt/lib/**/sharp.node', '**/bcrypt_lib.node'] } },
    'block',
    '/srv/fn/perimeter.json',
  );
  assert.deepEqual(rules.patterns, ['/srv/fn/native/*.node', '/opt/lib/**/sharp.node', '**/bcrypt_lib.node']);
  const allowed = (file: string) => caps.evaluateAddon(rules, file).allowed;
  assert.equal(allowed('/srv/fn/native/a.node'), true);
  assert.equal(allowed('/srv/fn/native/sub/a.node'), false);
  assert.equal(allowed('/opt/lib/x/y/sharp.node'), true);
  assert.equal(allowed('/srv/fn/node_modules/bcrypt/lib/binding/bcrypt_lib.node'), true);
  assert.equal(allowed('/tmp/evil.node'), false);
  assert.equal(caps.evaluateAddon(caps.compileAddonRules({}, 'allow', '<inline>'), '/tmp/evil.node').allowed, true);
});

test('raw bindings: the I/O ones map to the capability they bypass, nothing else does', () => {
  assert.equal(caps.rawBindingCapability('tcp_wrap'), 'network');
  assert.equal(caps.rawBindingCapability('fs'), 'fs');
  assert.equal(caps.rawBindingCapability('spawn_sync'), 'process');
  assert.equal(caps.rawBindingCapability('inspector'), 'internals');
  for (const harmless of ['os', 'buffer', 'constants', 'util', 'zlib', 'natives']) {
    assert.equal(caps.rawBindingCapability(harmless), null, harmless);
  }
  // Names that exist on Object.prototype must not read as anything: the table has no prototype.
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    assert.equal(caps.rawBindingCapability(name), null, name);
  }
  assert.equal(caps.rawBindingMode({ fs: { mode: 'allow' } }, 'block', 'fs'), 'allow');
  assert.equal(caps.rawBindingMode({}, 'alert', 'internals'), 'alert');
});

test('worker flags that expose Node internals are found in every spelling', () => {
  assert.deepEqual(
    caps.forbiddenWorkerFlags(['--expose-internals', '--expose_internals=1', '--max-old-space-size=64']),
    ['--expose-internals', '--expose_internals=1'],
  );
  assert.deepEqual(caps.forbiddenWorkerFlags(['--allow-natives-syntax', 42, '--require', 'x']), [
    '--allow-natives-syntax',
  ]);
  assert.deepEqual(caps.forbiddenWorkerFlags([]), []);
});

test('pristine helpers keep working after the built-ins they came from are replaced', () => {
  const saved = {
    startsWith: String.prototype.startsWith,
    indexOf: String.prototype.indexOf,
    get: Map.prototype.get,
    call: Function.prototype.call,
  };
  try {
    String.prototype.startsWith = () => true;
    String.prototype.indexOf = () => -1;
    Map.prototype.get = () => 'forged';
    Function.prototype.call = () => 'forged';
    assert.equal(pristine.StringStartsWith('abc', 'x'), false);
    assert.deepEqual(pristine.splitString('a/b/c', '/'), ['a', 'b', 'c']);
    assert.equal(pristine.MapGet(new Map([['k', 1]]), 'k'), 1);
    assert.equal(pristine.MapGet(new Map(), 'k'), undefined);
  } finally {
    Object.assign(String.prototype, { startsWith: saved.startsWith, indexOf: saved.indexOf });
    Map.prototype.get = saved.get;
    Function.prototype.call = saved.call;
  }
  assert.deepEqual(pristine.splitString('', '/'), ['']);
  assert.deepEqual(pristine.splitString('abc', ''), ['abc']);
});
