// Network patterns: what compiles to what, and every way a pattern can be wrong.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type * as EvaluateModule from '../../src/policy/evaluate.js';
import type * as HostModule from '../../src/policy/host.js';
import type * as LoadModule from '../../src/policy/load.js';
import type * as PatternModule from '../../src/policy/pattern.js';
import { PACKAGE_ROOT } from '../helpers.js';

// Internal modules are not exported by the package; the compiled tests reach them in dist/ by path.
const { compileNetworkPattern } = require('../../../dist/policy/pattern.js') as typeof PatternModule;
const { evaluateNetwork, findRule } = require('../../../dist/policy/evaluate.js') as typeof EvaluateModule;
const { normalizeHost } = require('../../../dist/policy/host.js') as typeof HostModule;
const { parsePolicy } = require('../../../dist/policy/load.js') as typeof LoadModule;

const KEY = 'network.allow[3]';
const FILE = '/srv/fn/perimeter.json';

function compile(source: string) {
  return compileNetworkPattern(source, KEY, FILE);
}

function methodsOf(source: string): string[] | null {
  const { methods } = compile(source);
  return methods === null ? null : [...methods].sort();
}

/** Asserts the pattern is refused with the pattern code, the key and file, and a hint containing `hint`. */
function assertRejected(source: string, what: RegExp, hint: string | RegExp) {
  assert.throws(
    () => compile(source),
    (error: any) => {
      assert.equal(error.code, 'ERR_PERIMETER_POLICY_PATTERN');
      assert.equal(error.key, KEY);
      assert.equal(error.file, FILE);
      assert.match(error.message, what);
      assert.ok(error.message.includes(`"${source}"`), `the message quotes the pattern: ${error.message}`);
      if (typeof hint === 'string') assert.ok(error.hint.includes(hint), `hint ${JSON.stringify(error.hint)}`);
      else assert.match(error.hint, hint);
      return true;
    },
  );
}

describe('methods', () => {
  test('no method means any method', () => {
    assert.equal(methodsOf('https://api.example.com'), null);
  });
  test('one method, upper-cased', () => {
    assert.deepEqual(methodsOf('post https://api.example.com/v1'), ['POST']);
  });
  test('a comma-separated list', () => {
    assert.deepEqual(methodsOf('GET,head,Options https://api.example.com'), ['GET', 'HEAD', 'OPTIONS']);
  });
  test('"*" is any method', () => {
    assert.equal(methodsOf('* https://api.example.com'), null);
  });
  test('surrounding and doubled spaces are tolerated', () => {
    const rule = compile('  GET   https://api.example.com/x  ');
    assert.deepEqual([...rule.methods!], ['GET']);
    assert.equal(rule.path.kind, 'exact');
  });
  test('the source is kept as written, for events and diffs', () => {
    assert.equal(compile('GET https://API.example.com').source, 'GET https://API.example.com');
    assert.equal(compile('GET https://API.example.com').key, KEY);
  });
  test('a method on a non-HTTP scheme is refused', () => {
    assertRejected('GET tcp://db.internal:5432', /method only applies to http/, 'remove the method');
    assertRejected('POST udp://10.0.0.2:53', /method only applies to http/, 'remove the method');
    assertRejected('GET unix:/tmp/app.sock', /method only applies to http/, 'remove the method');
  });
  test('a method that is not a word is refused', () => {
    assertRejected('GE-T https://x.example.com', /"GE-T" is not an HTTP method/, 'GET,HEAD');
    assertRejected('GET,,POST https://x.example.com', /"" is not an HTTP method/, 'POST https://');
    assertRejected('GET/1 https://x.example.com', /is not an HTTP method/, 'POST https://');
  });
});

describe('schemes and ports', () => {
  const defaults: Array<[string, number]> = [
    ['http://a.example.com', 80],
    ['https://a.example.com', 443],
    ['ws://a.example.com', 80],
    ['wss://a.example.com', 443],
  ];
  for (const [source, port] of defaults) {
    test(`${source} implies port ${port}`, () => {
      assert.equal(compile(source).port, port);
    });
  }
  test('the scheme is case-insensitive', () => {
    assert.equal(compile('HTTPS://a.example.com').scheme, 'https');
  });
  test('an explicit port', () => {
    assert.equal(compile('https://a.example.com:8443').port, 8443);
    assert.equal(compile('http://a.example.com:0').port, 0);
    assert.equal(compile('http://a.example.com:65535').port, 65535);
  });
  test('":*" is any port', () => {
    assert.equal(compile('https://a.example.com:*').port, null);
    assert.equal(compile('tcp://db.internal:*').port, null);
  });
  test('tcp, tls and udp need a port and take it', () => {
    for (const scheme of ['tcp', 'tls', 'udp'] as const) {
      const rule = compile(`${scheme}://db.internal:5432`);
      assert.equal(rule.scheme, scheme);
      assert.equal(rule.port, 5432);
      assert.equal(rule.methods, null);
    }
  });
  test('tcp without a port is refused with a hint that shows the port', () => {
    assertRejected('tcp://db.internal', /a tcp:\/\/ pattern needs a port/, '"tcp://db.internal:5432"');
    assertRejected('tls://db.internal/x', /a tls:\/\/ pattern needs a port/, '":*" for any port');
    assertRejected('udp://10.0.0.2', /a udp:\/\/ pattern needs a port/, 'udp://10.0.0.2:');
  });
  test('a port out of range or not a number is refused', () => {
    for (const bad of ['65536', '99999', '-1', 'http', '80a', '', '123456', '1.5']) {
      assertRejected(`https://a.example.com:${bad}/x`, /is not a port/, 'from 0 to 65535');
    }
  });
  test('unix sockets take an absolute path glob', () => {
    const rule = compile('unix:/var/run/*.sock');
    assert.equal(rule.scheme, 'unix');
    assert.equal(rule.port, null);
    assert.equal(rule.host.kind, 'any');
    assert.deepEqual(rule.path, { kind: 'segments', segments: ['', 'var', 'run', '*.sock'] });
    assertRejected('unix:tmp/app.sock', /must be absolute/, 'unix:/tmp/app.sock');
  });
  test('an unknown scheme is refused with the list of known ones', () => {
    assertRejected('ftp://files.example.com', /unknown scheme "ftp"/, 'http, https, ws, wss, tcp, tls, udp, unix');
    assertRejected('file:///etc/passwd', /unknown scheme "file"/, 'https');
  });
  test('no scheme: the hint shows the https:// form of what was written', () => {
    assertRejected('api.example.com', /no scheme/, '"https://api.example.com"');
    assertRejected('POST api.stripe.com/v1/charges', /no scheme/, '"https://api.stripe.com/v1/charges"');
    assertRejected('*.s3.amazonaws.com', /no scheme/, '"https://*.s3.amazonaws.com"');
    assertRejected('api.example.com', /no scheme/, 'never matches');
  });
});

describe('hosts', () => {
  test('an exact host is normalised like a target host', () => {
    assert.deepEqual(compile('https://API.Example.COM.').host, { kind: 'exact', host: 'api.example.com' });
    assert.deepEqual(compile('https://bücher.de').host, { kind: 'exact', host: 'xn--bcher-kva.de' });
    assert.deepEqual(compile('http://2130706433').host, { kind: 'exact', host: '127.0.0.1' });
    assert.deepEqual(compile('http://0x7f.1:8080').host, { kind: 'exact', host: '127.0.0.1' });
  });
  test('IPv6 hosts are written in brackets, with or without a port', () => {
    const plain = compile('https://[::1]');
    assert.deepEqual(plain.host, { kind: 'exact', host: '::1' });
    assert.equal(plain.port, 443);
    const withPort = compile('http://[2001:DB8:0:0:0:0:0:1]:8080/health');
    assert.deepEqual(withPort.host, { kind: 'exact', host: '2001:db8::1' });
    assert.equal(withPort.port, 8080);
    assert.deepEqual(withPort.path, { kind: 'exact', value: '/health' });
    assert.equal(compile('tcp://[::1]:*').port, null);
  });
  test('an IPv4-mapped IPv6 host becomes the IPv4 it maps to', () => {
    assert.deepEqual(compile('http://[::ffff:10.0.0.1]').host, { kind: 'exact', host: '10.0.0.1' });
  });
  test('broken IPv6 brackets are refused', () => {
    assertRejected('https://[::1', /unclosed "\["/, 'https://[::1]:8443');
    assertRejected('https://[::1]8443', /unexpected text after the IPv6 host/, 'https://[::1]:8443');
    assertRejected('https://[not-an-ip]', /is not a valid host/, 'IPv6 address in brackets');
  });
  test('wildcard shapes', () => {
    assert.deepEqual(compile('https://*').host, { kind: 'any' });
    assert.deepEqual(compile('https://**').host, { kind: 'any' });
    assert.deepEqual(compile('https://*.s3.amazonaws.com').host, { kind: 'oneLabel', suffix: '.s3.amazonaws.com' });
    assert.deepEqual(compile('https://**.Example.com').host, { kind: 'manyLabels', suffix: '.example.com' });
    assert.deepEqual(compile('https://api.*.example.com').host, {
      kind: 'labels',
      labels: ['api', '*', 'example', 'com'],
    });
    assert.deepEqual(compile('https://api-*.example.com').host, {
      kind: 'labels',
      labels: ['api-*', 'example', 'com'],
    });
    assert.deepEqual(compile('https://*.bücher.de').host, { kind: 'oneLabel', suffix: '.xn--bcher-kva.de' });
  });
  test('bad hosts are refused', () => {
    assertRejected('https://', /no host/, 'https://api.example.com');
    assertRejected('https://:443/x', /no host/, 'https://api.example.com');
    assertRejected('https://exa%2emple.com', /is not a valid host/, 'DNS name');
    assertRejected('https://exa\\mple.com', /is not a valid host/, 'DNS name');
    assertRejected('https://[example.com]', /is not a valid host/, 'IPv6 address in brackets');
    assertRejected('https://a..example.com', /is not a valid host/, 'DNS name');
    assertRejected('https://*..example.com', /empty label/, 'doubled or trailing dot');
    assertRejected('https://*.example.com.', /empty label/, 'doubled or trailing dot');
    assertRejected('https://a*b*.example.com', /"a\*b\*" is not a host wildcard/, '"*" for exactly one label');
    assertRejected('https://api**.example.com', /is not a host wildcard/, '"**" for one or more labels');
  });
  test('query strings, fragments and credentials are refused', () => {
    assertRejected('https://api.example.com/search?q=1', /query strings and fragments/, 'queries are ignored');
    assertRejected('https://api.example.com/?', /query strings and fragments/, 'remove "?…"');
    assertRejected('https://api.example.com/page#top', /query strings and fragments/, 'remove');
    assertRejected('https://user:secret@api.example.com', /credentials are not part of a pattern/, 'user:pass@');
    assertRejected('https://token@api.example.com/x', /credentials/, 'remove "user:pass@"');
  });
});

describe('paths', () => {
  test('no path means every path', () => {
    assert.deepEqual(compile('https://a.example.com').path, { kind: 'any' });
    assert.deepEqual(compile('https://a.example.com/**').path, { kind: 'any' });
  });
  test('"/" is the root only', () => {
    assert.deepEqual(compile('https://a.example.com/').path, { kind: 'exact', value: '/' });
  });
  test('literal, prefix and segment globs', () => {
    assert.deepEqual(compile('https://a.example.com/v1/charges').path, { kind: 'exact', value: '/v1/charges' });
    assert.deepEqual(compile('https://a.example.com/repos/**').path, { kind: 'prefix', prefix: '/repos' });
    assert.deepEqual(compile('https://a.example.com/v1/*/refunds').path, {
      kind: 'segments',
      segments: ['', 'v1', '*', 'refunds'],
    });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Matching, through the one place that decides (evaluate.ts), on policies compiled the way the guard compiles them.

type Target = EvaluateModule.NetworkTarget;

function http(url: string, method = 'GET'): Target {
  const parsed = new URL(url);
  const scheme = parsed.protocol.slice(0, -1);
  const port = Number(parsed.port) || (scheme === 'https' || scheme === 'wss' ? 443 : 80);
  const host = normalizeHost(parsed.hostname) ?? parsed.hostname;
  return { kind: 'http', method, scheme, host, port, path: parsed.pathname };
}

function socket(host: string, port: number, scheme: 'tcp' | 'tls' = 'tcp'): Target {
  return { kind: 'socket', method: '', scheme, host: normalizeHost(host) ?? host, port, path: '' };
}

function udp(host: string, port: number): Target {
  return { kind: 'udp', method: '', scheme: 'udp', host: normalizeHost(host) ?? host, port, path: '' };
}

function dns(host: string): Target {
  return { kind: 'dns', method: '', scheme: 'dns', host: normalizeHost(host) ?? host, port: 0, path: '' };
}

function unix(path: string): Target {
  return { kind: 'unix', method: '', scheme: 'unix', host: '', port: 0, path };
}

const noStack = () => {
  throw new Error('the stack must not be inspected when no package has network rules');
};

/** Whether `allow` (the function's network.allow) lets `target` through, with no platform endpoints. */
function allows(allow: string[], target: Target): boolean {
  const policy = parsePolicy({ network: { allow } });
  const verdict = evaluateNetwork(policy, target, [], noStack);
  assert.equal(verdict.allowed, findRule(policy.network, target) !== null, 'findRule and evaluateNetwork agree');
  return verdict.allowed;
}

function assertAllowed(allow: string[], targets: Target[]) {
  for (const target of targets) assert.equal(allows(allow, target), true, `${allow} should allow ${show(target)}`);
}

function assertDenied(allow: string[], targets: Target[]) {
  for (const target of targets) assert.equal(allows(allow, target), false, `${allow} should deny ${show(target)}`);
}

function show(target: Target): string {
  return `${target.kind} ${target.method} ${target.scheme}://${target.host}:${target.port}${target.path}`;
}

describe('matching: hosts', () => {
  test('an exact host matches itself in any spelling, and nothing else', () => {
    assertAllowed(['https://api.example.com'], [http('https://API.example.com./x'), http('https://api.example.com')]);
    assertDenied(
      ['https://api.example.com'],
      [
        http('https://example.com'),
        http('https://x.api.example.com'),
        http('https://api.example.com.evil.com'),
        http('https://api-example.com'),
        http('https://api.example.co'),
      ],
    );
  });
  test('an IP rule matches every notation of that IP', () => {
    const rule = ['http://127.0.0.1:8080'];
    assertAllowed(rule, [
      http('http://127.0.0.1:8080/'),
      http('http://2130706433:8080/'),
      http('http://0x7f.1:8080/'),
      http('http://[::ffff:127.0.0.1]:8080/'),
      socket('0177.0.0.1', 8080),
    ]);
    assertDenied(rule, [http('http://127.0.0.2:8080/'), http('http://[::1]:8080/'), http('http://localhost:8080/')]);
  });
  test('an IPv6 rule', () => {
    assertAllowed(['http://[::1]:3000'], [http('http://[0:0:0:0:0:0:0:1]:3000/a'), socket('::1', 3000)]);
    assertDenied(['http://[::1]:3000'], [http('http://127.0.0.1:3000/a')]);
  });
  test('"*.suffix" is exactly one label', () => {
    const rule = ['https://*.s3.amazonaws.com'];
    assertAllowed(rule, [http('https://a.s3.amazonaws.com/k'), http('https://my-bucket.S3.amazonaws.com/')]);
    assertDenied(rule, [
      http('https://a.b.s3.amazonaws.com/k'),
      http('https://s3.amazonaws.com/k'),
      http('https://evils3.amazonaws.com/k'),
      http('https://a.s3.amazonaws.com.evil.com/k'),
    ]);
  });
  test('"**.suffix" is one or more labels, never the bare suffix', () => {
    const rule = ['https://**.example.com'];
    assertAllowed(rule, [http('https://a.example.com'), http('https://a.b.c.example.com/x')]);
    assertDenied(rule, [http('https://example.com'), http('https://badexample.com'), http('https://a.example.org')]);
  });
  test('a wildcard in the middle', () => {
    const rule = ['https://api.*.example.com'];
    assertAllowed(rule, [http('https://api.eu.example.com'), http('https://api.us.example.com/v1')]);
    assertDenied(rule, [
      http('https://api.example.com'),
      http('https://api.eu.west.example.com'),
      http('https://web.eu.example.com'),
    ]);
    assertAllowed(['https://api.**.example.com'], [http('https://api.eu.west.example.com')]);
    assertDenied(['https://api.**.example.com'], [http('https://api.example.com')]);
  });
  test('a wildcard inside a label', () => {
    assertAllowed(
      ['https://api-*.example.com'],
      [http('https://api-eu.example.com'), http('https://api-.example.com')],
    );
    assertDenied(
      ['https://api-*.example.com'],
      [http('https://web-eu.example.com'), http('https://api-eu.x.example.com')],
    );
  });
  test('"*" as the host is any host', () => {
    assertAllowed(['https://*'], [http('https://anything.example.org/x'), http('https://[::1]/')]);
    assertDenied(['https://*'], [http('http://anything.example.org/x')]);
  });
  test('IDN hosts match their punycode form and vice versa', () => {
    assertAllowed(['https://bücher.de'], [http('https://xn--bcher-kva.de/')]);
    assertAllowed(['https://xn--bcher-kva.de'], [http('https://BÜCHER.de/')]);
  });
});

describe('matching: schemes, ports, paths, methods', () => {
  test('plain http never matches an https rule, nor the reverse', () => {
    assertDenied(['https://api.example.com'], [http('http://api.example.com/'), http('http://api.example.com:443/')]);
    assertDenied(['http://api.example.com'], [http('https://api.example.com/'), http('https://api.example.com:80/')]);
    assertDenied(['wss://ws.example.com'], [http('ws://ws.example.com/')]);
    assertAllowed(['wss://ws.example.com'], [http('wss://ws.example.com/socket')]);
  });
  test('ports: the default port, an explicit one, any', () => {
    assertAllowed(['https://api.example.com'], [http('https://api.example.com:443/')]);
    assertDenied(['https://api.example.com'], [http('https://api.example.com:8443/')]);
    assertAllowed(['https://api.example.com:8443'], [http('https://api.example.com:8443/')]);
    assertDenied(['https://api.example.com:8443'], [http('https://api.example.com/')]);
    assertAllowed(
      ['https://api.example.com:*'],
      [http('https://api.example.com:1/'), http('https://api.example.com/')],
    );
  });
  test('"/repos/**" matches /repos and everything under it', () => {
    const rule = ['GET https://api.github.com/repos/**'];
    assertAllowed(rule, [http('https://api.github.com/repos'), http('https://api.github.com/repos/a/b')]);
    assertDenied(rule, [
      http('https://api.github.com/reposx'),
      http('https://api.github.com/user'),
      http('https://api.github.com/'),
      http('https://api.github.com/repos/a', 'DELETE'),
    ]);
  });
  test('"*" in a path is one segment', () => {
    const rule = ['POST https://api.stripe.com/v1/*/refunds'];
    assertAllowed(rule, [http('https://api.stripe.com/v1/ch_1/refunds', 'POST')]);
    assertDenied(rule, [
      http('https://api.stripe.com/v1/refunds', 'POST'),
      http('https://api.stripe.com/v1/a/b/refunds', 'POST'),
      http('https://api.stripe.com/v1/ch_1/refunds/x', 'POST'),
    ]);
  });
  test('a literal path matches that path only; the query is not part of it', () => {
    const rule = ['POST https://api.stripe.com/v1/charges'];
    assertAllowed(rule, [http('https://api.stripe.com/v1/charges?expand=x', 'POST')]);
    assertDenied(rule, [http('https://api.stripe.com/v1/charges/', 'POST'), http('https://api.stripe.com/v1', 'POST')]);
  });
  test('methods filter; no method means any', () => {
    assertAllowed(['GET,HEAD https://a.example.com'], [http('https://a.example.com', 'HEAD')]);
    assertDenied(['GET,HEAD https://a.example.com'], [http('https://a.example.com', 'POST')]);
    assertAllowed(['https://a.example.com'], [http('https://a.example.com', 'PATCH')]);
  });
  test('the first matching rule is the one reported', () => {
    const policy = parsePolicy({ network: { allow: ['GET https://a.example.com/x', 'https://a.example.com'] } });
    assert.equal(findRule(policy.network, http('https://a.example.com/x'))?.key, 'network.allow[0]');
    assert.equal(findRule(policy.network, http('https://a.example.com/y'))?.key, 'network.allow[1]');
    const verdict = evaluateNetwork(policy, http('https://a.example.com/y', 'PUT'), [], noStack);
    assert.ok(verdict.allowed && verdict.by !== 'platform' && verdict.by.source === 'https://a.example.com');
  });
});

describe('matching: socket, UDP, DNS and unix targets', () => {
  test('a socket matches any TCP-carried rule by host and port', () => {
    assertAllowed(['https://api.example.com'], [socket('api.example.com', 443), socket('api.example.com', 443, 'tls')]);
    assertAllowed(['http://api.example.com/only/this/path'], [socket('api.example.com', 80)]);
    assertAllowed(['wss://ws.example.com'], [socket('ws.example.com', 443)]);
    assertAllowed(['tcp://db.internal:5432'], [socket('db.internal', 5432)]);
    assertAllowed(['tls://db.internal:*'], [socket('db.internal', 1)]);
    assertDenied(['https://api.example.com'], [socket('api.example.com', 80), socket('api.example.com', 22)]);
    assertDenied(['tcp://db.internal:5432'], [socket('db.internal', 5433), socket('db2.internal', 5432)]);
    assertDenied(['udp://db.internal:5432'], [socket('db.internal', 5432)]);
  });
  test('UDP matches udp rules only', () => {
    assertAllowed(['udp://10.0.0.2:53'], [udp('10.0.0.2', 53)]);
    assertDenied(['udp://10.0.0.2:53'], [udp('10.0.0.2', 54), udp('10.0.0.3', 53)]);
    assertDenied(['tcp://10.0.0.2:53', 'https://10.0.0.2', 'http://10.0.0.2:*'], [udp('10.0.0.2', 53)]);
  });
  test('a name resolves when some rule names its host, whatever the scheme or port', () => {
    assertAllowed(['POST https://api.stripe.com/v1/charges'], [dns('api.stripe.com')]);
    assertAllowed(['tcp://db.internal:5432'], [dns('DB.internal.')]);
    assertAllowed(['udp://metrics.internal:8125'], [dns('metrics.internal')]);
    assertAllowed(['https://*.s3.amazonaws.com'], [dns('b.s3.amazonaws.com')]);
    assertDenied(['https://*.s3.amazonaws.com'], [dns('s3.amazonaws.com'), dns('evil.com')]);
    assertDenied(['unix:/**'], [dns('evil.com')]);
  });
  test('unix sockets match unix path globs only', () => {
    assertAllowed(['unix:/var/run/*.sock'], [unix('/var/run/docker.sock')]);
    assertDenied(['unix:/var/run/*.sock'], [unix('/var/run/x/docker.sock'), unix('/tmp/docker.sock')]);
    assertAllowed(['unix:/tmp/**'], [unix('/tmp/a/b.sock')]);
    assertDenied(['https://*', 'tcp://*:*'], [unix('/tmp/a.sock')]);
    assertDenied(['unix:/tmp/**'], [socket('localhost', 80), http('http://localhost/tmp/x')]);
  });
});

describe('evaluateNetwork: platform endpoints (step 1) and package rules (step 3)', () => {
  const runtimeApi = [{ host: '169.254.100.1', port: 9001 }];

  const app = () => [] as string[];

  test('step 1: platform endpoints are allowed without a rule for the function itself, on their port only', () => {
    const policy = parsePolicy({ network: { allow: [] } });
    const verdict = evaluateNetwork(policy, http('http://169.254.100.1:9001/2018-06-01/runtime'), runtimeApi, app);
    assert.deepEqual(verdict, { allowed: true, by: 'platform' });
    assert.equal(evaluateNetwork(policy, socket('169.254.100.1', 9001), runtimeApi, app).allowed, true);
    assert.equal(evaluateNetwork(policy, dns('169.254.100.1'), runtimeApi, app).allowed, true);
    assert.equal(evaluateNetwork(policy, socket('169.254.100.1', 9002), runtimeApi, app).allowed, false);
    assert.equal(evaluateNetwork(policy, socket('169.254.100.2', 9001), runtimeApi, app).allowed, false);
    assert.equal(evaluateNetwork(policy, unix('/169.254.100.1'), runtimeApi, app).allowed, false);
  });
  test('step 1: the platform runtime package counts as platform code; any other dependency falls through', () => {
    const policy = parsePolicy({ network: { allow: [] } });
    const target = socket('169.254.100.1', 9001);
    assert.equal(evaluateNetwork(policy, target, runtimeApi, () => ['aws-lambda-ric']).allowed, true);
    assert.deepEqual(
      evaluateNetwork(policy, target, runtimeApi, () => ['evil']),
      { allowed: false, reason: 'no-rule' },
    );
    assert.deepEqual(
      evaluateNetwork(policy, target, runtimeApi, () => ['aws-lambda-ric', 'evil']),
      {
        allowed: false,
        reason: 'no-rule',
      },
    );
  });
  test('step 1: "platform": false opts out', () => {
    const policy = parsePolicy({ network: { platform: false } });
    const verdict = evaluateNetwork(policy, socket('169.254.100.1', 9001), runtimeApi, app);
    assert.deepEqual(verdict, { allowed: false, reason: 'no-rule' });
  });
  test('step 1 comes before package rules: packages["*"] does not cut the function off its runtime API', () => {
    const policy = parsePolicy({ packages: { '*': { network: { allow: [] } } } });
    assert.equal(evaluateNetwork(policy, socket('169.254.100.1', 9001), runtimeApi, app).allowed, true);
  });
  test('step 2: no rule of the function allows it', () => {
    const policy = parsePolicy({ network: { allow: ['https://a.example.com'] } });
    assert.deepEqual(evaluateNetwork(policy, http('https://b.example.com'), [], noStack), {
      allowed: false,
      reason: 'no-rule',
    });
  });

  const narrowed = {
    network: { allow: ['https://api.stripe.com', 'https://api.github.com', 'https://telemetry.example.com'] },
    packages: { stripe: { network: { allow: ['https://api.stripe.com/v1/**'] } } },
  };

  test('step 3: a package with rules of its own is narrowed to them', () => {
    const policy = parsePolicy(narrowed);
    assert.equal(policy.packageNetworkRules, true);
    const charge = http('https://api.stripe.com/v1/charges', 'POST');
    assert.equal(evaluateNetwork(policy, charge, [], () => ['stripe']).allowed, true);
    assert.deepEqual(
      evaluateNetwork(policy, http('https://api.github.com/'), [], () => ['stripe']),
      {
        allowed: false,
        reason: 'package-rule',
        deniedBy: 'stripe',
      },
    );
    assert.equal(evaluateNetwork(policy, http('https://api.stripe.com/v2/x'), [], () => ['stripe']).allowed, false);
  });
  test('step 3: a package without rules (and no "*") is held only to the function rules', () => {
    const policy = parsePolicy(narrowed);
    assert.equal(evaluateNetwork(policy, http('https://api.github.com/'), [], () => ['octokit']).allowed, true);
    assert.equal(evaluateNetwork(policy, http('https://api.github.com/'), [], () => []).allowed, true);
  });
  test('step 3: every package on the stack must allow it; the first that does not is named', () => {
    const policy = parsePolicy({
      network: { allow: ['https://api.stripe.com'] },
      packages: {
        stripe: { network: { allow: ['https://api.stripe.com/**'] } },
        'some-sdk': { network: { allow: ['https://api.example.com'] } },
      },
    });
    const target = http('https://api.stripe.com/v1/charges', 'POST');
    assert.deepEqual(
      evaluateNetwork(policy, target, [], () => ['some-sdk', 'stripe']),
      {
        allowed: false,
        reason: 'package-rule',
        deniedBy: 'some-sdk',
      },
    );
    assert.equal(evaluateNetwork(policy, target, [], () => ['stripe', 'other']).allowed, true);
  });
  test('step 3 narrows only: a package rule never widens what the function allows', () => {
    const policy = parsePolicy({ packages: { stripe: { network: { allow: ['https://api.stripe.com'] } } } });
    assert.deepEqual(
      evaluateNetwork(policy, http('https://api.stripe.com/'), [], () => ['stripe']),
      {
        allowed: false,
        reason: 'no-rule',
      },
    );
  });
  test('step 3: packages["*"] applies to every dependency without its own entry', () => {
    const policy = parsePolicy({
      network: { allow: ['https://api.stripe.com', 'https://cdn.example.com'] },
      packages: {
        '*': { network: { allow: ['https://cdn.example.com'] } },
        stripe: { network: { allow: ['https://api.stripe.com'] } },
      },
    });
    const stripeApi = http('https://api.stripe.com/v1');
    assert.equal(evaluateNetwork(policy, stripeApi, [], () => ['stripe']).allowed, true, 'own entry replaces "*"');
    assert.deepEqual(
      evaluateNetwork(policy, stripeApi, [], () => ['left-pad']),
      {
        allowed: false,
        reason: 'package-rule',
        deniedBy: 'left-pad',
      },
    );
    assert.equal(evaluateNetwork(policy, http('https://cdn.example.com/x'), [], () => ['left-pad']).allowed, true);
    assert.equal(evaluateNetwork(policy, stripeApi, [], () => []).allowed, true, 'the app itself is not a package');
  });
  test('the stack is only inspected when some package has network rules, and only once a rule matched', () => {
    let calls = 0;
    const counting = () => {
      calls++;
      return ['stripe'];
    };
    const withoutPackageRules = parsePolicy({
      network: { allow: ['https://a.example.com'] },
      packages: { stripe: { env: { allow: ['STRIPE_API_KEY'] } } },
    });
    assert.equal(withoutPackageRules.packageNetworkRules, false);
    evaluateNetwork(withoutPackageRules, http('https://a.example.com'), [], counting);
    assert.equal(calls, 0);
    const withPackageRules = parsePolicy(narrowed);
    evaluateNetwork(withPackageRules, http('https://nowhere.example.com'), [], counting);
    assert.equal(calls, 0, 'denied at step 2 without looking at the stack');
    evaluateNetwork(withPackageRules, http('https://api.stripe.com/v1/x'), [], counting);
    assert.equal(calls, 0, 'every package rule allows it: who is calling cannot change the answer');
    const verdict = evaluateNetwork(withPackageRules, http('https://api.github.com/repos'), [], counting);
    assert.equal(calls, 1, 'stripe would deny it: now the stack decides');
    assert.deepEqual(verdict, { allowed: false, reason: 'package-rule', deniedBy: 'stripe' });
  });
});

// The reference must not show a policy or a pattern that the loader would reject, nor call a mistake what the
// loader accepts: the examples in docs/policy.md are run here.
describe('docs/policy.md examples', () => {
  const docs = readFileSync(join(PACKAGE_ROOT, '..', '..', 'docs', 'policy.md'), 'utf8');

  /** The first-column (or `column`) cells of the markdown table whose header row starts with `header`. */
  function tableCells(header: string, column: number): string[] {
    const lines = docs.split('\n');
    const start = lines.findIndex((line) => squeeze(line).startsWith(header));
    assert.ok(start !== -1, `docs/policy.md has a table "${header}"`);
    const cells: string[] = [];
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      cells.push(line.split(' | ')[column]!.replace(/^\| /, ''));
    }
    return cells;
  }

  /** Table rows with runs of spaces collapsed: the formatter pads cells to align the columns. */
  const squeeze = (line: string) => line.replace(/ +/g, ' ');
  const backticked = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]!);

  test('every complete JSON policy shown is valid', () => {
    const blocks = [...docs.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => match[1]!);
    const policies = blocks.filter((block) => block.trimStart().startsWith('{'));
    assert.ok(policies.length >= 5);
    for (const block of policies) assert.doesNotThrow(() => parsePolicy(JSON.parse(block)), block);
  });
  test('every pattern in the examples table compiles', () => {
    const patterns = tableCells('| pattern | allows |', 0).flatMap(backticked);
    assert.ok(patterns.length >= 15);
    for (const pattern of patterns) assert.doesNotThrow(() => compile(pattern), pattern);
  });
  test('every example in the mistakes table is refused', () => {
    const mistakes = tableCells('| mistake | example | why |', 1).flatMap(backticked);
    assert.ok(mistakes.length >= 15);
    for (const pattern of mistakes)
      assert.throws(() => compile(pattern), { code: 'ERR_PERIMETER_POLICY_PATTERN' }, pattern);
  });
  test('the host wildcard table says what the matcher does', () => {
    const lines = docs.split('\n');
    const start = lines.findIndex((line) => squeeze(line).startsWith('| host in the pattern |'));
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      const [host, yes, no] = line.slice(2).split(' | ').map(backticked);
      if (host![0] === '*') continue; // "`*` or `**` alone": any host
      const allow = [`https://${host![0]}`];
      assertAllowed(
        allow,
        yes!.map((name) => http(`https://${name}/`)),
      );
      assertDenied(
        allow,
        no!.map((name) => http(`https://${name}/`)),
      );
    }
  });
  test('the path glob table says what the matcher does', () => {
    const lines = docs.split('\n');
    const start = lines.findIndex((line) => squeeze(line).startsWith('| path in the pattern |'));
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      const [path, yes, no] = line.slice(2).split(' | ').map(backticked);
      const allow = [`https://a.example.com${path![path!.length - 1]}`];
      assertAllowed(
        allow,
        yes!.map((p) => http(`https://a.example.com${p}`)),
      );
      assertDenied(
        allow,
        no!.map((p) => http(`https://a.example.com${p}`)),
      );
    }
  });
  test('the normalisation table says what normalizeHost does', () => {
    const lines = docs.split('\n');
    const start = lines.findIndex((line) => squeeze(line).startsWith('| written | compared as |'));
    for (const line of lines.slice(start + 2)) {
      if (!line.startsWith('|')) break;
      const [written, compared] = line.slice(2).split(' | ').map(backticked);
      for (const host of written!) assert.equal(normalizeHost(host), compared![0], host);
    }
  });
});
