// Policy validation: the shipped schema, interpreted at load time, names every mistake with a key and a hint.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as LoadModule from '../../src/policy/load.js';
import type * as SchemaModule from '../../src/policy/schema.js';
import type * as ValidateModule from '../../src/policy/validate.js';

const { validateAgainstSchema } = require('../../../dist/policy/validate.js') as typeof ValidateModule;
const { policySchema } = require('../../../dist/policy/schema.js') as typeof SchemaModule;
const { parsePolicy } = require('../../../dist/policy/load.js') as typeof LoadModule;

function issuesOf(document: unknown) {
  return validateAgainstSchema(document, policySchema as any);
}

function onlyIssue(document: unknown) {
  const issues = issuesOf(document);
  assert.equal(issues.length, 1, `exactly one issue expected, got ${JSON.stringify(issues)}`);
  return issues[0]!;
}

describe('valid policies', () => {
  test('the PRODUCT.md example (network part) and an empty policy are valid', () => {
    assert.deepEqual(issuesOf({}), []);
    assert.deepEqual(
      issuesOf({
        $schema: './node_modules/perimeter/schema/perimeter.schema.json',
        mode: 'block',
        network: {
          mode: 'alert',
          platform: true,
          allow: [
            'POST https://api.stripe.com/v1/charges',
            'GET https://api.github.com/repos/**',
            'https://*.s3.amazonaws.com',
          ],
        },
        packages: {
          stripe: { network: { allow: ['https://api.stripe.com/**'] } },
          '*': { network: { allow: [] } },
        },
      }),
      [],
    );
  });
  test('every mode is accepted', () => {
    for (const mode of ['block', 'alert', 'allow']) assert.deepEqual(issuesOf({ mode, network: { mode } }), []);
  });
});

describe('unknown keys', () => {
  test('a typo gets a did-you-mean', () => {
    assert.deepEqual(onlyIssue({ netwrok: {} }), {
      key: 'netwrok',
      message: 'unknown key "netwrok"',
      hint: 'did you mean "network"?',
    });
    assert.deepEqual(onlyIssue({ network: { alow: [] } }), {
      key: 'network.alow',
      message: 'unknown key "alow"',
      hint: 'did you mean "allow"?',
    });
    assert.equal(onlyIssue({ Mode: 'block' }).hint, 'did you mean "mode"?');
    assert.equal(onlyIssue({ network: { platfrom: false } }).hint, 'did you mean "platform"?');
    assert.equal(onlyIssue({ packages: { stripe: { netwrk: {} } } }).key, 'packages.stripe.netwrk');
    assert.equal(onlyIssue({ packages: { stripe: { netwrk: {} } } }).hint, 'did you mean "network"?');
  });
  test('a key that resembles nothing lists the allowed keys', () => {
    const issue = onlyIssue({ network: { whitelist: [] } });
    assert.equal(issue.key, 'network.whitelist');
    assert.match(issue.hint, /^allowed keys here: .*\bmode\b.*\ballow\b.*\bplatform\b/);
  });
  test('a package may not set its own mode (packages only narrow)', () => {
    const issue = onlyIssue({ packages: { stripe: { network: { mode: 'allow' } } } });
    assert.equal(issue.key, 'packages.stripe.network.mode');
    assert.equal(issue.message, 'unknown key "mode"');
  });
});

describe('wrong types, bad enums, empty strings', () => {
  test('a string where a list belongs', () => {
    assert.deepEqual(onlyIssue({ network: { allow: 'https://api.example.com' } }), {
      key: 'network.allow',
      message: 'expected array, got string',
      hint: 'write a list, e.g. ["https://api.example.com/**"]',
    });
  });
  test('a number in a list, with its index', () => {
    const issue = onlyIssue({ network: { allow: ['https://a.example.com', 443] } });
    assert.equal(issue.key, 'network.allow[1]');
    assert.equal(issue.message, 'expected string, got integer');
  });
  test('the wrong type at the top level and for an object', () => {
    assert.deepEqual(onlyIssue([]), {
      key: '(top level)',
      message: 'expected object, got array',
      hint: 'write an object',
    });
    assert.equal(onlyIssue(null).message, 'expected object, got null');
    assert.equal(onlyIssue('block').message, 'expected object, got string');
    assert.deepEqual(onlyIssue({ network: true }), {
      key: 'network',
      message: 'expected object, got boolean',
      hint: 'write an object',
    });
    assert.equal(onlyIssue({ packages: { stripe: 'https://api.stripe.com' } }).key, 'packages.stripe');
  });
  test('platform must be a boolean, not the string "false"', () => {
    assert.deepEqual(onlyIssue({ network: { platform: 'false' } }), {
      key: 'network.platform',
      message: 'expected boolean, got string',
      hint: 'write a boolean',
    });
  });
  test('a mode outside the enum, with a suggestion when it is close', () => {
    assert.deepEqual(onlyIssue({ mode: 'blok' }), {
      key: 'mode',
      message: '"blok" is not one of "block", "alert", "allow"',
      hint: 'did you mean "block"?',
    });
    assert.equal(onlyIssue({ network: { mode: 'deny' } }).hint, 'use one of block, alert, allow');
    assert.equal(onlyIssue({ mode: 'BLOCK' }).hint, 'did you mean "block"?', 'enums are case-sensitive');
    assert.equal(onlyIssue({ mode: 1 }).message, 'expected string, got integer');
  });
  test('an empty pattern', () => {
    assert.deepEqual(onlyIssue({ network: { allow: ['https://a.example.com', ''] } }), {
      key: 'network.allow[1]',
      message: 'must not be empty',
      hint: 'remove the empty entry',
    });
  });
});

describe('several issues are reported together', () => {
  test('every issue, in document order, and the error names the first', () => {
    const document = {
      netwrok: {},
      mode: 'blok',
      network: { alow: [], allow: ['', 5], platform: 'yes' },
      packages: { stripe: { network: { allow: 'https://api.stripe.com' } } },
    };
    const keys = issuesOf(document).map((issue) => issue.key);
    assert.deepEqual(keys, [
      'netwrok',
      'mode',
      'network.alow',
      'network.allow[0]',
      'network.allow[1]',
      'network.platform',
      'packages.stripe.network.allow',
    ]);
    assert.throws(
      () => parsePolicy(document, '/srv/fn/perimeter.json'),
      (error: any) => {
        assert.equal(error.code, 'ERR_PERIMETER_POLICY_INVALID');
        assert.equal(error.file, '/srv/fn/perimeter.json');
        assert.equal(error.key, 'netwrok');
        assert.equal(error.hint, 'did you mean "network"?');
        assert.equal(error.issues.length, 7);
        for (const key of keys) assert.ok(error.message.includes(`  - ${key}: `), `the message lists ${key}`);
        assert.match(error.message, /^Invalid policy: netwrok: unknown key "netwrok"\n/);
        assert.match(error.message, /\(\/srv\/fn\/perimeter\.json: netwrok\)\n {2}hint: did you mean "network"\?$/);
        return true;
      },
    );
  });
  test('one issue gives a one-line message', () => {
    assert.throws(
      () => parsePolicy({ mode: 'blok' }),
      (error: any) => {
        assert.equal(
          error.message.split('\n')[0],
          'Invalid policy: mode: "blok" is not one of "block", "alert", "allow" (<inline>: mode)',
        );
        assert.equal(error.file, '<inline>');
        return true;
      },
    );
  });
});

describe('patterns are checked after the schema', () => {
  test('a bad pattern in a package rule names the package key', () => {
    assert.throws(
      () => parsePolicy({ packages: { stripe: { network: { allow: ['api.stripe.com'] } } } }, '/p.json'),
      (error: any) => {
        assert.equal(error.code, 'ERR_PERIMETER_POLICY_PATTERN');
        assert.equal(error.key, 'packages.stripe.network.allow[0]');
        assert.equal(error.file, '/p.json');
        return true;
      },
    );
  });
  test('defaults after compiling: block, platform endpoints on, modes inherited', () => {
    const empty = parsePolicy({});
    assert.equal(empty.mode, 'block');
    assert.equal(empty.network.mode, 'block');
    assert.equal(empty.network.platform, true);
    assert.equal(empty.packageNetworkRules, false);
    assert.equal(parsePolicy({ mode: 'alert' }).network.mode, 'alert');
    assert.equal(parsePolicy({ mode: 'alert', network: { mode: 'block' } }).network.mode, 'block');
  });
});
