/**
 * `perimeter policy diff` (semantic: widenings exit 1, narrowings exit 0; text, JSON and SARIF) and
 * `perimeter policy check` (runtime validation → 2, broad rules → 1, unused rules with --events).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BIN, policy as policyModule } from './dist.js';

const { diffPolicies } = policyModule;

function files(docs: Record<string, unknown>): string {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-policy-')));
  for (const [name, doc] of Object.entries(docs)) {
    writeFileSync(join(root, name), typeof doc === 'string' ? doc : `${JSON.stringify(doc, null, 2)}\n`);
  }
  return root;
}

const cli = (root: string, args: string[]) =>
  spawnSync(process.execPath, [BIN, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env.PATH, NO_COLOR: '1' },
  });

describe('policy diff', () => {
  test('semantic: a broader rule is a widening, a narrower one is not, a removed package entry widens', () => {
    const old = {
      mode: 'block',
      network: { allow: ['GET https://api.example.com/v1/users/*', 'https://api.stripe.com'] },
      packages: { stripe: { network: { allow: ['https://api.stripe.com/v1/**'] } } },
    };
    const widened = diffPolicies(old, {
      ...old,
      network: { allow: ['GET,POST https://api.example.com/v1/**', 'POST https://api.stripe.com/v1/charges'] },
      packages: {},
    });
    assert.deepEqual(
      widened.map((change) => [change.kind, change.widening, change.package, change.rule]),
      [
        ['widened', true, null, 'GET,POST https://api.example.com/v1/**'],
        ['removed', false, null, 'https://api.stripe.com'],
        ['widened', true, 'stripe', '(no package rules)'],
      ],
    );
    const narrowed = diffPolicies(old, {
      ...old,
      network: { allow: ['GET https://api.example.com/v1/users/*'] },
      packages: { ...old.packages, '*': { network: { allow: [] } } },
    });
    assert.ok(
      narrowed.every((change) => !change.widening),
      JSON.stringify(narrowed),
    );
    const relaxed = diffPolicies(old, { ...old, network: { ...old.network, mode: 'alert' }, worker: { allow: true } });
    assert.deepEqual(
      relaxed.map((change) => [change.rule, change.widening]),
      [
        ['network: alert', true],
        ['worker.allow: true', true],
      ],
    );
  });

  test('exit codes and formats; SARIF points at the line of the new rule', () => {
    const oldDoc = { network: { allow: ['https://api.example.com'] } };
    const newDoc = { network: { allow: ['https://api.example.com', 'POST https://new.example.com/hook'] } };
    const root = files({ 'old.json': oldDoc, 'new.json': newDoc, 'bad.json': '{"netwrok": {}}' });
    const text = cli(root, ['policy', 'diff', 'old.json', 'new.json']);
    assert.equal(text.status, 1);
    assert.match(text.stdout, /WIDENS .*"POST https:\/\/new\.example\.com\/hook" added/);
    assert.equal(cli(root, ['policy', 'diff', 'new.json', 'old.json']).status, 0);
    assert.equal(cli(root, ['policy', 'diff', 'old.json', 'old.json']).status, 0);
    const json = JSON.parse(cli(root, ['policy', 'diff', 'old.json', 'new.json', '--format', 'json']).stdout);
    assert.equal(json.widening, true);
    const sarif = JSON.parse(cli(root, ['policy', 'diff', 'old.json', 'new.json', '--format', 'sarif']).stdout);
    assert.equal(sarif.version, '2.1.0');
    const [result] = sarif.runs[0].results;
    assert.equal(result.ruleId, 'policy-rule-added');
    assert.equal(result.properties.jsonPointer, '/network/allow/1');
    assert.equal(result.locations[0].physicalLocation.artifactLocation.uri, 'new.json');
    assert.equal(result.locations[0].physicalLocation.region.startLine, 5);
    const invalid = cli(root, ['policy', 'diff', 'old.json', 'bad.json']);
    assert.equal(invalid.status, 2);
    assert.match(invalid.stderr, /netwrok/);
  });
});

describe('policy check', () => {
  test('broad rules are errors (exit 1), with SARIF; a tight policy passes (exit 0)', () => {
    const root = files({
      'broad.json': {
        network: { allow: ['https://*', 'https://*.com', 'https://api.example.com'] },
        fs: { read: ['/**'], write: ['/tmp/**'] },
        process: { allow: ['/bin/sh', 'git status'] },
        env: { allow: ['*'] },
      },
      'tight.json': { network: { allow: ['https://api.example.com'] }, env: { allow: ['API_KEY'] } },
      'invalid.json': { network: { allow: ['api.example.com'] } },
    });
    const broad = cli(root, ['policy', 'check', 'broad.json', '--format', 'json']);
    assert.equal(broad.status, 1);
    const findings = JSON.parse(broad.stdout).findings.map((f: any) => `${f.level} ${f.ruleId} ${f.pointer}`);
    assert.deepEqual(findings, [
      'error broad-network /network/allow/0',
      'warning broad-network /network/allow/1',
      'error broad-fs /fs/read/0',
      'error shell-allowed /process/allow/0',
      'error broad-env /env/allow/0',
    ]);
    const sarif = JSON.parse(cli(root, ['policy', 'check', 'broad.json', '--format', 'sarif']).stdout);
    assert.equal(sarif.runs[0].results.length, 5);
    const ok = cli(root, ['policy', 'check', 'tight.json']);
    assert.equal(ok.status, 0, ok.stdout);
    assert.match(ok.stdout, /valid; 0 error\(s\)/);
    const invalid = cli(root, ['policy', 'check', 'invalid.json']);
    assert.equal(invalid.status, 2);
    assert.match(invalid.stderr, /ERR_PERIMETER_POLICY_PATTERN|network\.allow/);
  });

  test('with --events: rules no event used are reported', () => {
    const event = (target: string, capability = 'network') =>
      JSON.stringify({
        perimeter: 1,
        time: '2026-11-23T14:00:00.000Z',
        type: 'violation',
        capability,
        action: 'alerted',
        target,
        package: 'app',
        function: 'f',
        invocation: null,
        reason: 'no-rule',
      });
    const root = files({
      'perimeter.json': {
        network: {
          allow: ['GET https://api.example.com/v1/users/*', 'https://old.example.com', 'tcp://db.internal:5432'],
        },
        env: { allow: ['API_KEY', 'OLD_KEY'] },
      },
      'events.jsonl': `${[
        event('GET https://api.example.com/v1/users/7?x=1'),
        event('tcp://db.internal:5432'),
        event('API_KEY', 'env'),
      ].join('\n')}\n`,
    });
    const result = cli(root, ['policy', 'check', 'perimeter.json', '--events', 'events.jsonl', '--format', 'json']);
    assert.equal(result.status, 0, result.stderr);
    const unused = JSON.parse(result.stdout)
      .findings.filter((f: any) => f.ruleId === 'unused-rule')
      .map((f: any) => f.pointer);
    assert.deepEqual(unused, ['/network/allow/1', '/env/allow/1']);
  });
});
