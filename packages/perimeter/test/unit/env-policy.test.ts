// Environment decisions: the baseline, env.allow globs, and package narrowing, classified once per name.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as CompileModule from '../../src/policy/compile.js';
import type * as EnvModule from '../../src/policy/env.js';

const { classifyName, packageDenying, READABLE, NARROWED, DENIED, isBaseline } =
  require('../../../dist/policy/env.js') as typeof EnvModule;
const { compilePolicy } = require('../../../dist/policy/compile.js') as typeof CompileModule;

const compile = (document: Record<string, unknown>) => compilePolicy(document as any, '/x/perimeter.json').env;

describe('env policy', () => {
  test('no env section: only the baseline, in the global mode', () => {
    const env = compile({ mode: 'alert' });
    assert.equal(env.mode, 'alert');
    assert.equal(classifyName(env, 'PATH', false), READABLE);
    assert.equal(classifyName(env, 'LC_ALL', false), READABLE);
    assert.equal(classifyName(env, 'AWS_REGION', false), READABLE);
    assert.equal(classifyName(env, 'AWS_SECRET_ACCESS_KEY', false), DENIED);
    assert.equal(classifyName(env, 'AWS_ACCESS_KEY_ID', false), DENIED);
    assert.equal(classifyName(env, 'AWS_SESSION_TOKEN', false), DENIED);
    assert.equal(classifyName(env, 'STRIPE_API_KEY', false), DENIED);
  });

  test('credentials are not in the baseline', () => {
    for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'DATABASE_URL']) {
      assert.equal(isBaseline(name), false, name);
    }
  });

  test('env.allow: exact names and globs; env.mode overrides mode', () => {
    const env = compile({ mode: 'block', env: { mode: 'alert', allow: ['STRIPE_API_KEY', 'APP_*'] } });
    assert.equal(env.mode, 'alert');
    assert.equal(classifyName(env, 'STRIPE_API_KEY', false), READABLE);
    assert.equal(classifyName(env, 'APP_COLOR', false), READABLE);
    assert.equal(classifyName(env, 'APPX', false), DENIED);
  });

  test('a variable created after start is not a platform secret', () => {
    const env = compile({ env: { allow: [] } });
    assert.equal(classifyName(env, 'MADE_BY_CODE', true), READABLE);
  });

  test('only stripe may read STRIPE_API_KEY', () => {
    const env = compile({
      env: { allow: ['STRIPE_API_KEY', 'FEATURE_FLAG'] },
      packages: { '*': { env: { allow: ['FEATURE_FLAG'] } }, stripe: { env: { allow: ['STRIPE_API_KEY'] } } },
    });
    // Names every package may read need no stack.
    assert.equal(classifyName(env, 'PATH', false), READABLE);
    assert.equal(classifyName(env, 'STRIPE_API_KEY', false), NARROWED);
    assert.equal(classifyName(env, 'FEATURE_FLAG', false), NARROWED, 'stripe has its own list without it');
    assert.equal(packageDenying(env, 'STRIPE_API_KEY', []), null, 'the app');
    assert.equal(packageDenying(env, 'STRIPE_API_KEY', ['stripe']), null);
    assert.equal(packageDenying(env, 'STRIPE_API_KEY', ['left-pad']), 'left-pad');
    assert.equal(packageDenying(env, 'STRIPE_API_KEY', ['left-pad', 'stripe']), 'left-pad');
    assert.equal(packageDenying(env, 'FEATURE_FLAG', ['left-pad']), null);
  });
});
