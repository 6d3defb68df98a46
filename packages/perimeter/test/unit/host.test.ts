// Host normalisation: every spelling an attacker could use for a host must reach one canonical form.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as HostModule from '../../src/policy/host.js';

const { normalizeHost, hostForUrl, isIPv4, isIPv6, isMetadataOrUnspecified } =
  require('../../../dist/policy/host.js') as typeof HostModule;

function assertCanonical(cases: Array<[string, string]>) {
  for (const [raw, expected] of cases) assert.equal(normalizeHost(raw), expected, `normalizeHost(${raw})`);
}

test('DNS names: lower case, no trailing dot, surrounding space ignored', () => {
  assertCanonical([
    ['API.Example.COM', 'api.example.com'],
    ['example.com.', 'example.com'],
    ['Example.COM.', 'example.com'],
    ['  api.example.com  ', 'api.example.com'],
    ['localhost', 'localhost'],
    ['xn--bcher-kva.de', 'xn--bcher-kva.de'],
  ]);
});

test('IDN names become punycode', () => {
  assertCanonical([
    ['bücher.de', 'xn--bcher-kva.de'],
    ['BÜCHER.de', 'xn--bcher-kva.de'],
    ['münchen.example.com.', 'xn--mnchen-3ya.example.com'],
  ]);
});

test('IPv4 in every notation becomes dotted decimal', () => {
  assertCanonical([
    ['127.0.0.1', '127.0.0.1'],
    ['2130706433', '127.0.0.1'], // decimal
    ['0177.0.0.1', '127.0.0.1'], // octal
    ['0x7f.0.0.1', '127.0.0.1'], // hex
    ['0x7f000001', '127.0.0.1'],
    ['0x7f.1', '127.0.0.1'], // short with hex
    ['127.1', '127.0.0.1'], // short
    ['10.1', '10.0.0.1'],
    ['0', '0.0.0.0'],
    ['1.2.3.4.', '1.2.3.4'],
    ['0251.0376.0251.0376', '169.254.169.254'], // the cloud metadata address in octal
    ['2852039166', '169.254.169.254'],
  ]);
});

test('IPv6: brackets removed, compressed, lower case', () => {
  assertCanonical([
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['[2001:0db8:0000:0000:0000:ff00:0042:8329]', '2001:db8::ff00:42:8329'],
  ]);
});

test('IPv4-mapped IPv6 becomes the IPv4 it maps to', () => {
  assertCanonical([
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['[::ffff:127.0.0.1]', '127.0.0.1'],
    ['[::ffff:7f00:1]', '127.0.0.1'],
    ['0:0:0:0:0:ffff:a9fe:a9fe', '169.254.169.254'],
    ['::FFFF:10.0.0.1', '10.0.0.1'],
  ]);
});

test('zone ids are dropped', () => {
  assertCanonical([
    ['fe80::1%eth0', 'fe80::1'],
    ['[fe80::1%25eth0]', 'fe80::1'],
    ['fe80::1%1', 'fe80::1'],
  ]);
});

test('garbage is not a host', () => {
  for (const raw of [
    '',
    '   ',
    'a b',
    'exa mple.com',
    '256.0.0.1',
    '1.2.3.4.5.6', // too many parts for an IPv4 address, and a numeric last label is not a name
    '[::1',
    '::1]',
    '[]',
    '[example.com]', // brackets hold IPv6 only
    ':::1',
    '1::2::3',
    'http://example.com',
    'example.com/path',
    'a..b',
    '.',
    '..',
    '.example.com',
    'example.com..',
    'exa%mple.com',
    'exa<mple.com',
  ]) {
    assert.equal(normalizeHost(raw), null, `normalizeHost(${JSON.stringify(raw)})`);
  }
});

test('a control character anywhere in a name makes it no host (every C0 and C1 control)', () => {
  // The check spells \p{Cc} as ranges; this holds it to the Unicode property over the whole BMP.
  for (let code = 0; code <= 0xffff; code++) {
    const c = String.fromCharCode(code);
    if (!/\p{Cc}/u.test(c)) continue;
    assert.equal(normalizeHost(`exa${c}mple.com`), null, `U+${code.toString(16).padStart(4, '0')}`);
  }
  assert.equal(normalizeHost('exa\u00a0mple.com'), null, 'no-break space is \\s');
  assert.equal(
    normalizeHost('exa\u00a1mple.com'),
    'xn--example-wha.com',
    'U+00A1 is past the C1 range: IDNA judges it',
  );
});

test('results are stable when the same host is asked twice (cache)', () => {
  assert.equal(normalizeHost('0x7f.1'), '127.0.0.1');
  assert.equal(normalizeHost('0x7f.1'), '127.0.0.1');
  assert.equal(normalizeHost('a b'), null);
  assert.equal(normalizeHost('a b'), null);
});

test('more distinct hosts than the cache holds are still normalised correctly', () => {
  for (let i = 0; i < 3000; i++) assert.equal(normalizeHost(`H${i}.Example.com.`), `h${i}.example.com`);
  assert.equal(normalizeHost('2130706433'), '127.0.0.1');
});

test('isIPv4, isIPv6 and hostForUrl read the canonical form', () => {
  assert.equal(isIPv4('127.0.0.1'), true);
  assert.equal(isIPv4('example.com'), false);
  assert.equal(isIPv6('::1'), true);
  assert.equal(isIPv6('127.0.0.1'), false);
  assert.equal(hostForUrl('::1'), '[::1]');
  assert.equal(hostForUrl('127.0.0.1'), '127.0.0.1');
  assert.equal(hostForUrl('example.com'), 'example.com');
});

test('metadata and this-host answers are recognised in every form normalizeHost produces', () => {
  const inRange = ['169.254.169.254', '169.254.170.2', '0.0.0.0', '0.1.2.3', '100.100.100.200', '::', 'fd00:ec2::254'];
  for (const raw of [...inRange, 'fe80::1', 'febf::1', '::ffff:169.254.169.254', '[::ffff:a9fe:a9fe]']) {
    const host = normalizeHost(raw)!;
    assert.equal(isMetadataOrUnspecified(host), true, `${raw} → ${host}`);
  }
  const outside = ['127.0.0.1', '10.0.0.1', '192.168.1.1', '100.100.100.201', '::1', 'fec0::1', 'fe80.example.com'];
  for (const raw of [...outside, 'api.stripe.com', '169.254.example.com', 'fc00::1', '2001:db8::1']) {
    const host = normalizeHost(raw)!;
    assert.equal(isMetadataOrUnspecified(host), false, `${raw} → ${host}`);
  }
});
