/**
 * Generalisation and merging on realistic observations: REST ids, UUIDs, Stripe ids, GitHub API paths, S3 keys
 * and presigned URLs, hosts with many path shapes, sockets and DNS-only lookups, file paths, and merging into an
 * existing policy without losing anything.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { PerimeterEventLine } from '../src/learn/events.js';
import { generalise, learn as learnModule, rules } from './dist.js';

const { generaliseFsPaths, generaliseSegment } = generalise;
const { learnPolicy, observationsFromEvents } = learnModule;
const { networkRuleCovers } = rules;

function event(target: string, extra: Partial<PerimeterEventLine> = {}, index = 0): PerimeterEventLine {
  return {
    perimeter: 1,
    time: `2026-11-23T14:00:${String(index % 60).padStart(2, '0')}.000Z`,
    type: 'violation',
    capability: 'network',
    action: 'alerted',
    target,
    package: 'app',
    function: 'f',
    invocation: null,
    reason: 'no-rule',
    source: { file: 'events.jsonl', line: index + 1 },
    ...extra,
  };
}

function learn(targets: string[], current: Record<string, any> = {}, extra: Partial<PerimeterEventLine> = {}) {
  const { observations } = observationsFromEvents(targets.map((target, i) => event(target, extra, i)));
  return learnPolicy(current, observations);
}

describe('path segments', () => {
  test('ids become *, words stay', () => {
    const cases: Array<[string, string]> = [
      ['42', '*'],
      ['550e8400-e29b-41d4-a716-446655440000', '*'],
      ['6dcb09b5b57875f334f61aebed695e2e4193db5e', '*'],
      ['2024-03-01', '*'],
      ['ch_3MtwBwLkdIwHu7ix28a3tqPa', 'ch_*'],
      ['cus_NffrFeUfNV2Hib', 'cus_*'],
      ['eyJhbGciOiJIUzI1NiJ9abc12', '*'],
      ['[REDACTED]', '*'],
      ['3f9ac1d2e4b5a6c7.png', '*.png'],
      ['v1', 'v1'],
      ['charges', 'charges'],
      ['list-objects-v2', 'list-objects-v2'],
      ['getBucketLocation', 'getBucketLocation'],
      ['octocat', 'octocat'],
      ['README.md', 'README.md'],
    ];
    for (const [segment, expected] of cases) assert.equal(generaliseSegment(segment), expected, segment);
  });
});

describe('URL sets', () => {
  test('REST ids and UUIDs; methods merged per path; query strings dropped', () => {
    const { policy } = learn([
      'GET https://api.example.com/v1/users/42',
      'DELETE https://api.example.com/v1/users/44?force=true',
      'GET https://api.example.com/v1/users/550e8400-e29b-41d4-a716-446655440000',
      'GET https://api.example.com/v1/users/43/orders?page=2&token=[REDACTED]',
      'POST https://api.stripe.com/v1/charges',
      'GET https://api.stripe.com/v1/charges/ch_3MtwBwLkdIwHu7ix28a3tqPa',
    ]);
    assert.deepEqual(policy.network.allow, [
      'DELETE,GET https://api.example.com/v1/users/*',
      'GET https://api.example.com/v1/users/*/orders',
      'GET https://api.stripe.com/v1/charges/ch_*',
      'POST https://api.stripe.com/v1/charges',
    ]);
  });

  test('GitHub API: three sibling repos merge into *; a single one stays literal', () => {
    const { policy } = learn([
      'GET https://api.github.com/repos/octo/hello/issues',
      'GET https://api.github.com/repos/octo/world/issues',
      'GET https://api.github.com/repos/octo/tools/issues',
      'GET https://api.github.com/repos/octo/hello/commits/6dcb09b5b57875f334f61aebed695e2e4193db5e',
      'POST https://api.github.com/repos/octo/hello/issues/1347/comments',
      'GET https://api.github.com/user',
    ]);
    assert.deepEqual(policy.network.allow, [
      'GET https://api.github.com/repos/octo/*/issues',
      'GET https://api.github.com/repos/octo/hello/commits/*',
      'GET https://api.github.com/user',
      'POST https://api.github.com/repos/octo/hello/issues/*/comments',
    ]);
  });

  test('S3 keys and presigned URLs: dates, hashes and camera names generalised, signature parameters dropped', () => {
    const host = 'https://my-bucket.s3.eu-west-1.amazonaws.com';
    const { policy } = learn([
      `PUT ${host}/uploads/2024/03/01/3f9ac1d2e4b5a6c7.png`,
      `GET ${host}/uploads/2024/03/02/IMG_20240302_101112.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=[REDACTED]&X-Amz-Date=20240302T101112Z&X-Amz-Expires=900&X-Amz-Signature=[REDACTED]`,
      `GET ${host}/reports/q1.pdf`,
    ]);
    assert.deepEqual(policy.network.allow, [
      `GET ${host}/reports/q1.pdf`,
      `GET ${host}/uploads/*/*/*/*.jpg`,
      `PUT ${host}/uploads/*/*/*/*.png`,
    ]);
    for (const rule of policy.network.allow) assert.ok(!rule.includes('?') && !rule.includes('REDACTED'));
  });

  test('a host with more than 8 path shapes gets one rule for the common prefix, methods merged', () => {
    // Nine shapes of nine depths: no three are siblings, so only the collapse can simplify them.
    const depths = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => Array.from({ length: n }, (_, i) => `s${n}${i}`).join('/'));
    const { policy } = learn([
      ...depths.map((p) => `GET https://api.example.com/v2/${p}`),
      'POST https://api.example.com/v2/submit',
    ]);
    assert.deepEqual(policy.network.allow, ['GET,POST https://api.example.com/v2/**']);
    const { policy: scattered } = learn(depths.map((p) => `GET https://x.example.com/${p}`));
    assert.deepEqual(scattered.network.allow, ['GET https://x.example.com']);
    // Eight or fewer shapes stay separate; three siblings differing in one segment merge into `*`.
    const { policy: siblings } = learn(['a', 'b', 'c'].map((p) => `GET https://y.example.com/${p}/z`));
    assert.deepEqual(siblings.network.allow, ['GET https://y.example.com/*/z']);
  });

  test('socket and DNS events covered by a learned rule add nothing; DNS-only and raw sockets get their own', () => {
    const { policy, explanations } = learn([
      'GET https://api.example.com/health',
      'tcp://api.example.com:443',
      'dns:api.example.com',
      'tcp://db.internal:5432',
      'dns:db.internal',
      'udp://10.0.0.2:8125',
      'dns:lookup-only.example.net',
      'GET http://127.0.0.1:8080/x',
      'tcp://127.0.0.1:8080',
    ]);
    assert.deepEqual(policy.network.allow, [
      'GET http://127.0.0.1:8080/x',
      'GET https://api.example.com/health',
      'HEAD https://lookup-only.example.net/',
      'tcp://db.internal:5432',
      'udp://10.0.0.2:8125',
    ]);
    assert.match(explanations['network.allow']!['HEAD https://lookup-only.example.net/']!.note!, /only a DNS lookup/);
  });

  test('learned rules allow exactly the observations they came from', () => {
    const targets = [
      'GET https://api.example.com/v1/users/42',
      'PUT https://bucket.s3.amazonaws.com/k/2024/3f9ac1d2e4b5a6c7.png',
      'POST https://api.stripe.com/v1/charges',
    ];
    const { policy } = learn(targets);
    for (const target of targets) {
      assert.ok(
        policy.network.allow.some((rule: string) => networkRuleCovers(rule, target)),
        target,
      );
    }
    assert.ok(
      !policy.network.allow.some((rule: string) => networkRuleCovers(rule, 'GET https://api.stripe.com/v1/charges')),
    );
    assert.ok(
      !policy.network.allow.some((rule: string) => networkRuleCovers(rule, 'POST https://api.example.com/v1/users/42')),
    );
  });
});

describe('fs, process and env', () => {
  test('three files in a folder → folder/**; temp folder names generalised', () => {
    const shapes = generaliseFsPaths([
      '/opt/data/a.json',
      '/opt/data/b.json',
      '/opt/data/c.json',
      '/etc/app.conf',
      '/tmp/upload-a8Xk2Q/out.pdf',
    ]);
    assert.deepEqual([...new Set(shapes.values())].sort(), ['/etc/app.conf', '/opt/data/**', '/tmp/upload-*/out.pdf']);
  });

  test('env names exact, process forms exact up to three per program', () => {
    const { observations } = observationsFromEvents([
      event('STRIPE_API_KEY', { capability: 'env', package: 'stripe' }),
      event('/usr/bin/git status', { capability: 'process' }),
      event('/usr/bin/git log --oneline', { capability: 'process' }),
      event('read /opt/data/a.json', { capability: 'fs' }),
      event('write /tmp/out.pdf', { capability: 'fs' }),
      event('read /home/app/.npmrc', { capability: 'fs', reason: 'sensitive-path' }),
    ]);
    const { policy } = learnPolicy({}, observations);
    assert.deepEqual(policy.env.allow, ['STRIPE_API_KEY']);
    assert.deepEqual(policy.process.allow, ['/usr/bin/git log --oneline', '/usr/bin/git status']);
    assert.deepEqual(policy.fs, { read: ['/opt/data/a.json'], write: ['/tmp/out.pdf'] });
  });
});

describe('merging with the current policy', () => {
  test('keeps what it allowed and the keys it does not manage; covered observations add nothing', () => {
    const current = {
      $schema: './node_modules/perimeter/schema/perimeter.schema.json',
      mode: 'block',
      worker: { allow: true },
      network: { allow: ['https://api.example.com', 'tcp://old.internal:1'], platform: false },
    };
    const { policy } = learn(['GET https://api.example.com/v1/users/1', 'POST https://new.example.com/x'], current);
    assert.deepEqual(policy.network.allow, [
      'POST https://new.example.com/x',
      'https://api.example.com',
      'tcp://old.internal:1',
    ]);
    assert.equal(policy.network.platform, false);
    assert.deepEqual(policy.worker, { allow: true });
    assert.equal(policy.$schema, current.$schema);
    assert.equal(policy.mode, 'block');
  });

  test('per-package network entries on a first learn; existing entries extended; "*" copied, not widened', () => {
    const first = learn(['POST https://api.stripe.com/v1/charges'], {}, { package: 'stripe' });
    assert.deepEqual(first.policy.packages.stripe.network.allow, ['POST https://api.stripe.com/v1/charges']);

    const current = {
      network: { allow: ['https://api.stripe.com'] },
      packages: { '*': { network: { allow: [] } }, axios: { network: { allow: ['https://a.example.com'] } } },
    };
    const { observations } = observationsFromEvents([
      event('GET https://api.stripe.com/v1/balance', { package: 'stripe', reason: 'package-rule', deniedBy: 'stripe' }),
      event('GET https://b.example.com/x', { package: 'axios' }),
    ]);
    const { policy } = learnPolicy(current, observations);
    assert.deepEqual(policy.packages.stripe.network.allow, ['https://api.stripe.com']);
    assert.deepEqual(policy.packages.axios.network.allow, ['GET https://b.example.com/x', 'https://a.example.com']);
    assert.deepEqual(policy.packages['*'].network.allow, []);
    assert.deepEqual(policy.network.allow, ['GET https://b.example.com/x', 'https://api.stripe.com']);
  });

  test('no new package entry when the function already had rules the package may rely on', () => {
    const { policy, notes } = learn(
      ['GET https://new.example.com/x'],
      { network: { allow: ['https://old.example.com'] } },
      {
        package: 'sdk',
      },
    );
    assert.equal(policy.packages, undefined);
    assert.match(notes.join('\n'), /no packages\.<name> entry was created for sdk \(network\)/);
  });

  test('--prune drops only rules no observation used', () => {
    const { observations } = observationsFromEvents([event('GET https://api.example.com/x')]);
    const { policy, pruned } = learnPolicy(
      { network: { allow: ['https://api.example.com', 'https://unused.example.com'] } },
      observations,
      { prune: true },
    );
    assert.deepEqual(policy.network.allow, ['https://api.example.com']);
    assert.deepEqual(pruned, [{ list: 'network.allow', rule: 'https://unused.example.com' }]);
  });
});
