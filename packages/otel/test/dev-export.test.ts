/**
 * `perimeter dev --otlp`: the dev host exports through this package. A real `startDev` (guarded function
 * processes, gateway, store) sends its events and invocation spans to a loopback OTLP/HTTP receiver; the log
 * records of an invocation's events carry that invocation's trace and span ids.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startDev } from '@perimeter/cli';
import type { ExportLogsServiceRequest, ExportTraceServiceRequest, KeyValue } from '@perimeter/otel';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-otel-dev-')));
after(() => rmSync(dir, { recursive: true, force: true }));

function attr(attributes: KeyValue[], key: string) {
  return attributes.find((kv) => kv.key === key)?.value;
}

test('perimeter dev exports events as logs and invocations as spans, correlated', async () => {
  const bodies: Array<{ path: string; body: any }> = [];
  const receiver = http.createServer((request, response) => {
    let text = '';
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      bodies.push({ path: request.url ?? '', body: JSON.parse(text) });
      response.setHeader('content-type', 'application/json');
      response.end('{}');
    });
  });
  await new Promise<void>((done) => receiver.listen(0, '127.0.0.1', done));
  const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  mkdirSync(join(dir, 'functions', 'orders'), { recursive: true });
  writeFileSync(
    join(dir, 'functions', 'orders', 'index.mjs'),
    `import { readFileSync } from 'node:fs';
     export const handler = async () => {
       let code = 'read';
       try { readFileSync('/etc/shadow'); } catch (error) { code = error.code; }
       return { statusCode: 200, body: code };
     };`,
  );
  writeFileSync(join(dir, 'functions', 'orders', 'perimeter.json'), JSON.stringify({ mode: 'block' }));
  writeFileSync(
    join(dir, 'perimeter.config.json'),
    JSON.stringify({ functions: { orders: { handler: 'functions/orders/index.mjs', routes: ['GET /orders'] } } }),
  );

  const dev = await startDev({ dir, port: 0, db: join(dir, 'events.db'), watch: false, otlp: { endpoint } });
  let closed = false;
  try {
    const response = await fetch(`${dev.url}/orders`);
    assert.equal(await response.text(), 'ERR_PERIMETER_BLOCKED');
    await dev.close();
    closed = true;
  } finally {
    if (!closed) await dev.close();
    await new Promise<void>((done) => receiver.close(() => done()));
  }

  const records = bodies
    .filter((b) => b.path === '/v1/logs')
    .flatMap((b) => (b.body as ExportLogsServiceRequest).resourceLogs)
    .flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords.map((record) => ({ resource: r.resource, record }))));
  const spans = bodies
    .filter((b) => b.path === '/v1/traces')
    .flatMap((b) => (b.body as ExportTraceServiceRequest).resourceSpans)
    .flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));

  const shadow = records.find(
    ({ record }) => attr(record.attributes, 'perimeter.target')?.stringValue === 'read /etc/shadow',
  );
  assert.ok(shadow, `the blocked read reached the collector; got ${JSON.stringify(bodies)}`);
  assert.equal(shadow.record.severityText, 'ERROR');
  assert.deepEqual(attr(shadow.resource.attributes, 'service.name'), { stringValue: 'orders' });

  const span = spans.find((s) => s.name === 'GET /orders');
  assert.ok(span, `the invocation's span reached the collector; got ${JSON.stringify(spans)}`);
  assert.equal(span.kind, 2);
  assert.deepEqual(attr(span.attributes, 'http.response.status_code'), { intValue: '200' });
  assert.equal(shadow.record.traceId, span.traceId, 'the event belongs to the invocation’s trace');
  assert.equal(shadow.record.spanId, span.spanId);
});
