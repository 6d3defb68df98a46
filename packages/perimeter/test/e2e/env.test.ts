// Environment rules end to end: the default (baseline only), env.allow, alert mode, writes, events.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runGuarded } from '../helpers.js';

const SECRET = 'sk_test_FAKEenvE2E0123456789';

describe('env policy', () => {
  test('with no env section only the baseline is readable; the event names the variable and what to add', async () => {
    const run = await runGuarded({
      policy: { mode: 'block' },
      script: 'main.js',
      env: { STRIPE_API_KEY: SECRET, AWS_REGION: 'eu-west-1', LC_ALL: 'C.UTF-8' },
      files: {
        'main.js': `
          console.log(JSON.stringify({
            key: process.env.STRIPE_API_KEY ?? null,
            region: process.env.AWS_REGION,
            lc: process.env.LC_ALL,
            path: typeof process.env.PATH,
            missing: process.env.NOT_SET_AT_ALL ?? null,
          }));`,
      },
    });
    assert.deepEqual(JSON.parse(run.stdout), {
      key: null,
      region: 'eu-west-1',
      lc: 'C.UTF-8',
      path: 'string',
      missing: null,
    });
    const events = run.events.filter((e) => e.capability === 'env');
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(events[0]?.target, 'STRIPE_API_KEY');
    assert.equal(events[0]?.action, 'blocked');
    assert.equal(events[0]?.reason, 'no-rule');
    assert.doesNotMatch(run.stderr + JSON.stringify(run.events), new RegExp(SECRET));
  });

  test('env.allow lets the function read a name; alert mode returns the value and records it', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', env: { mode: 'alert', allow: ['STRIPE_API_KEY'] } },
      script: 'main.js',
      env: { STRIPE_API_KEY: SECRET, OTHER_SECRET: 'other-secret-value-1234' },
      files: {
        'main.js': `
          for (let i = 0; i < 50; i++) process.env.OTHER_SECRET;
          console.log(process.env.STRIPE_API_KEY === ${JSON.stringify(SECRET)}, process.env.OTHER_SECRET === 'other-secret-value-1234');`,
      },
    });
    assert.equal(run.stdout.trim(), 'true true');
    const events = run.events.filter((e) => e.capability === 'env' && e.type === 'violation');
    assert.equal(events[0]?.action, 'alerted');
    assert.equal(events[0]?.target, 'OTHER_SECRET');
    assert.ok(events.length <= 2, 'repeats are counted, not written one by one');
    assert.equal(
      run.events.filter((e) => e.type === 'drift' && e.target === 'OTHER_SECRET').length,
      1,
      'new behaviour is announced once',
    );
    assert.doesNotMatch(JSON.stringify(run.events), /other-secret-value/);
  });

  test('writes: TZ and new variables work, prototype methods still work, nothing is reported for them', async () => {
    const run = await runGuarded({
      policy: { mode: 'block' },
      script: 'main.js',
      env: { TZ: 'UTC' },
      files: {
        'main.js': `
          process.env.TZ = 'Asia/Tokyo';
          process.env.MY_SETTING = '42';
          const hour = new Date(Date.UTC(2024, 0, 1, 0, 0)).getHours();
          delete process.env.MY_SETTING;
          process.env.OTHER = 1;
          console.log(JSON.stringify({ hour, tz: process.env.TZ, gone: process.env.MY_SETTING ?? null, other: process.env.OTHER,
            own: process.env.hasOwnProperty('OTHER'), str: typeof process.env.toString }));`,
      },
    });
    assert.deepEqual(JSON.parse(run.stdout), {
      hour: 9,
      tz: 'Asia/Tokyo',
      gone: null,
      other: '1',
      own: true,
      str: 'function',
    });
    assert.deepEqual(
      run.events.filter((e) => e.capability === 'env'),
      [],
    );
  });

  test('env.mode allow leaves process.env untouched', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', env: { mode: 'allow' } },
      script: 'main.js',
      env: { STRIPE_API_KEY: SECRET },
      files: {
        'main.js': `console.log(require('util').types.isProxy(process.env), process.env.STRIPE_API_KEY === ${JSON.stringify(SECRET)});`,
      },
    });
    assert.equal(run.stdout.trim(), 'false true');
  });

  test('console.log(process.env) shows only what the caller may see', async () => {
    const run = await runGuarded({
      policy: { mode: 'block', env: { allow: ['VISIBLE_ONE'] } },
      script: 'main.js',
      env: { STRIPE_API_KEY: SECRET, VISIBLE_ONE: 'yes' },
      files: {
        'main.js': `console.log(process.env); console.log(require('util').inspect(process.env, { showProxy: true, customInspect: false }));`,
      },
    });
    assert.match(run.stdout, /VISIBLE_ONE: 'yes'/);
    assert.doesNotMatch(run.stdout, /STRIPE_API_KEY|sk_test/);
  });
});
