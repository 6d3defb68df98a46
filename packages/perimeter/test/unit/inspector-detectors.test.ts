// Each detector's rules, attack next to the benign input that shares its characters.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as CommandModule from '../../src/inspector/detectors/command.js';
import type * as SqlModule from '../../src/inspector/detectors/sql.js';
import type * as SsrfModule from '../../src/inspector/detectors/ssrf.js';
import type * as TemplateModule from '../../src/inspector/detectors/template.js';
import type * as TraversalModule from '../../src/inspector/detectors/traversal.js';
import type * as XssModule from '../../src/inspector/detectors/xss.js';

const DETECTORS = '../../../dist/inspector/detectors';
const { detectSql } = require(`${DETECTORS}/sql.js`) as typeof SqlModule;
const { detectCommand } = require(`${DETECTORS}/command.js`) as typeof CommandModule;
const { detectSsrf, internalHost } = require(`${DETECTORS}/ssrf.js`) as typeof SsrfModule;
const { detectTraversal } = require(`${DETECTORS}/traversal.js`) as typeof TraversalModule;
const { detectXss } = require(`${DETECTORS}/xss.js`) as typeof XssModule;
const { detectTemplate } = require(`${DETECTORS}/template.js`) as typeof TemplateModule;

function confidences(detect: (value: string) => { confidence: string } | null, values: string[]): Array<string | null> {
  return values.map((value) => detect(value)?.confidence ?? null);
}

test('sqli: breakouts from string and number contexts followed by SQL', () => {
  assert.deepEqual(
    confidences(detectSql, [
      "' OR '1'='1",
      '" OR ""="',
      "x') OR ('a'='a",
      '1 OR 1=1',
      "1' AND SLEEP(5)--",
      '1 AND (SELECT 1)',
      "'; DROP TABLE users; --",
      '5; UPDATE users SET role=1',
      '1/**/UNION/**/SELECT/**/1',
      "admin'--",
    ]),
    ['high', 'high', 'high', 'high', 'high', 'high', 'high', 'high', 'high', 'medium'],
  );
});

test('sqli: the same words and quotes in benign text stay in their context', () => {
  assert.deepEqual(
    confidences(detectSql, [
      "O'Brien",
      "It's 5 o'clock; let's go",
      'Select 1 or 2 items from the table below.',
      "She said 'or else' and left.",
      '1 or 2 items',
      'We drop off at 5; select a time that works.',
      'The union of two sets',
      "Don't -- really",
      '2024-05-01',
      '',
    ]),
    [null, null, null, null, null, null, null, null, null, null],
  );
});

test('cmdi: metacharacter + command word; prose code spans are low', () => {
  assert.deepEqual(
    confidences(detectCommand, [
      '; cat /etc/passwd',
      'a|id',
      '$(whoami)',
      'x && /usr/bin/curl http://e',
      `${'$'}{IFS}id`,
      'To list files run `ls -la` in your terminal.',
      'Ben & Jerry; Procter & Gamble',
      'Yes | No | Maybe',
      'session=1; id=2',
      'Price: $(varies)',
    ]),
    ['high', 'high', 'high', 'high', 'high', 'low', null, null, null, null],
  );
});

test('traversal: climbing above the start, evasions and sensitive paths; in-tree .. is fine', () => {
  assert.deepEqual(
    confidences(detectTraversal, [
      '../../etc/hosts',
      'a/../../b',
      '..\\..\\x',
      '..;/..;/x',
      '....//x',
      '/proc/self/environ',
      'docs/../README.md',
      'https://example.com/../page',
      'a/b/c.txt',
      'etc.',
    ]),
    ['high', 'high', 'high', 'high', 'high', 'medium', null, null, null, null],
  );
});

test('ssrf: every notation of an internal address; public hosts and look-alikes are fine', () => {
  for (const host of [
    '127.0.0.1',
    '2130706433',
    '0x7f000001',
    '0177.0.0.1',
    '127.1',
    '[::1]',
    '[::ffff:169.254.169.254]',
    '169.254.169.254',
    '10.1.2.3',
    '172.31.0.1',
    '192.168.0.1',
    '100.64.0.1',
    '[fd00::1]',
    '[fe80::1]',
    'localhost',
    'api.localhost',
    'metadata.google.internal',
    '10.0.0.1.nip.io',
    '169-254-169-254.sslip.io',
  ])
    assert.ok(internalHost(host), host);
  for (const host of ['8.8.8.8', 'example.com', '172.32.0.1', '192.0.2.10.example.com', '11.0.0.1', '[2001:db8::1]'])
    assert.equal(internalHost(host), null, host);
  assert.equal(detectSsrf('see http://user:pw@127.0.0.1:8080/x')?.confidence, 'high');
  assert.equal(detectSsrf('//169.254.169.254/latest')?.confidence, 'high');
  assert.equal(detectSsrf('https://maps.google.com/?q=10.0.0.1'), null);
  assert.equal(detectSsrf('a 10.0.0.1 b'), null);
});

test('xss: script tags, event handlers, script URLs; harmless markup and comparisons are fine', () => {
  assert.deepEqual(
    confidences(detectXss, [
      '<script>x</script>',
      '<img src=x onerror=alert(1)>',
      '<svg/onload=alert(1)>',
      '<a href="javascript:alert(1)">',
      'jav\tascript:alert(1)',
      '<b>bold</b>',
      '2 < 4 and 5 > 3',
      'I <3 this',
      '<a title="onclick=x">',
      'javascript: the good parts',
    ]),
    ['high', 'high', 'high', 'high', 'high', null, null, null, null, null],
  );
});

test('template: lookups and code in template delimiters; plain interpolation is fine', () => {
  const lookup = `${'$'}{jndi:ldap://x}`;
  const nested = `${'$'}{${'$'}{lower:j}ndi:x}`;
  assert.deepEqual(
    confidences(detectTemplate, [
      lookup,
      nested,
      '{{7*7}}',
      '<%= system("id") %>',
      '#{T(java.lang.Runtime)}',
      '{{ user.name }}',
      `Hello ${'$'}{name}`,
      '<%= @user.name %>',
      '{"a":{"b":1}}',
      '{{#each items}}',
    ]),
    ['high', 'high', 'high', 'high', 'high', null, null, null, null, null],
  );
});

test('xss: script breaking out of a JavaScript string, chained and control-prefixed script URLs', () => {
  assert.deepEqual(
    confidences(detectXss, [
      '";alert(123);t="',
      "';alert(1)//",
      ';alert(123);',
      "'+prompt`1`+'",
      '<a href="\x0Bjavascript:alert(1)">',
      '<a href="x:javascript:javascript:alert(1)">',
      'call alert(msg) when the upload fails',
      "it's fine; confirm (yes/no) later",
      'const total = price - eval_discount(x)',
      'O\'Brien; alert("hi")',
    ]),
    ['medium', 'medium', 'medium', 'medium', 'high', 'high', null, null, null, null],
  );
});

test('cmdi: a value that starts like a bash function definition (Shellshock)', () => {
  assert.deepEqual(
    confidences(detectCommand, [
      '() { :;}; /bin/bash -c "cat /etc/passwd"',
      '  () { _; } >_[$($())] { touch /tmp/x; }',
      'Use () { } as a placeholder',
      'f() { return 1; }',
    ]),
    ['high', 'high', null, null],
  );
});
