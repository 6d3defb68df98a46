/**
 * `@perimeter/otel` against a real OTLP/HTTP receiver on 127.0.0.1 (node:http decoding the JSON bodies), and in
 * real child processes where process lifetime matters (unref'd timers, flush before exit, the guarded runtime).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createOtlpExporter,
  type ExportLogsServiceRequest,
  type ExportTraceServiceRequest,
  type KeyValue,
  parseRetryAfter,
  perimeterEventsToOtlp,
  spanIdFor,
  traceIdFor,
} from '@perimeter/otel';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../../..');
const OTEL_DIST = join(REPO, 'packages/otel/dist/index.js');

interface Received {
  path: string;
  method: string;
  headers: http.IncomingHttpHeaders;
  body: any;
  at: number;
}

type Reply = { status: number; headers?: Record<string, string>; body?: string } | 'hang';

/** An OTLP/HTTP receiver: records every request; answers from `replies` in order, then 200 `{}`. */
async function receiver(replies: Reply[] = []) {
  const requests: Received[] = [];
  const waiting: Array<() => void> = [];
  const server = http.createServer((request, response) => {
    let text = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => {
      text += chunk;
    });
    request.on('end', () => {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = { unparsable: text };
      }
      requests.push({
        path: request.url ?? '',
        method: request.method ?? '',
        headers: request.headers,
        body,
        at: Date.now(),
      });
      for (const wake of waiting.splice(0)) wake();
      const reply = replies.shift() ?? { status: 200, body: '{}' };
      if (reply === 'hang') return;
      response.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
      response.end(reply.body ?? '{}');
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    /** Resolves once `count` requests have arrived (or rejects after `ms`). */
    async waitFor(count: number, ms = 5000) {
      const deadline = Date.now() + ms;
      while (requests.length < count) {
        if (Date.now() > deadline) throw new Error(`waited ${ms} ms for ${count} requests, got ${requests.length}`);
        await new Promise<void>((wake) => {
          waiting.push(wake);
          setTimeout(wake, 50);
        });
      }
    },
    logs: () => requests.filter((r) => r.path === '/v1/logs').map((r) => r.body as ExportLogsServiceRequest),
    traces: () => requests.filter((r) => r.path === '/v1/traces').map((r) => r.body as ExportTraceServiceRequest),
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** A port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

const INVOCATION = '8f3c1b0e-4a5d-4c7e-9a7b-2f1d0c9e8b7a';

function event(overrides: Record<string, unknown> = {}) {
  return {
    perimeter: 1 as const,
    time: '2026-11-23T14:06:45.793Z',
    type: 'violation',
    capability: 'network',
    action: 'blocked',
    target: 'POST http://127.0.0.1:6666/collect',
    package: 'left-pad',
    function: 'checkout',
    invocation: INVOCATION,
    packages: ['some-sdk', 'left-pad'],
    reason: 'no-rule',
    ...overrides,
  };
}

function attr(attributes: KeyValue[], key: string) {
  return attributes.find((kv) => kv.key === key)?.value;
}

const cleanups: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe('payloads', () => {
  test('events become log records in the OTLP JSON mapping', async () => {
    const otlp = await receiver();
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({
      endpoint: `${otlp.endpoint}/`,
      headers: { authorization: 'Bearer collector-token' },
      resource: { 'deployment.environment.name': 'dev' },
    });
    exporter.exportEvent(event());
    exporter.exportEvent(event({ action: 'alerted', capability: 'fs', target: '/home/u/.npmrc', repeats: 3 }));
    exporter.exportEvent(event({ action: 'observed', type: 'guard', invocation: null, packages: undefined }));
    exporter.exportEvent(event({ function: 'thumbnail' }));
    await exporter.flush();

    assert.equal(otlp.requests.length, 1);
    const [request] = otlp.requests;
    assert.equal(request?.path, '/v1/logs');
    assert.equal(request?.method, 'POST');
    assert.equal(request?.headers['content-type'], 'application/json');
    assert.equal(request?.headers.authorization, 'Bearer collector-token');

    const body = request?.body as ExportLogsServiceRequest;
    // One resource per function: the function is the service.
    assert.equal(body.resourceLogs.length, 2);
    const checkout = body.resourceLogs[0]!;
    assert.deepEqual(attr(checkout.resource.attributes, 'service.name'), { stringValue: 'checkout' });
    assert.deepEqual(attr(checkout.resource.attributes, 'deployment.environment.name'), { stringValue: 'dev' });
    assert.deepEqual(attr(body.resourceLogs[1]!.resource.attributes, 'service.name'), { stringValue: 'thumbnail' });
    assert.equal(checkout.scopeLogs.length, 1);
    assert.equal(checkout.scopeLogs[0]!.scope.name, '@perimeter/otel');
    const [blocked, alerted, observed] = checkout.scopeLogs[0]!.logRecords;
    assert.ok(blocked && alerted && observed);

    assert.equal(blocked.timeUnixNano, '1795442805793000000');
    assert.match(blocked.observedTimeUnixNano, /^\d{19}$/);
    assert.equal(blocked.severityNumber, 17);
    assert.equal(blocked.severityText, 'ERROR');
    assert.equal(alerted.severityNumber, 13);
    assert.equal(alerted.severityText, 'WARN');
    assert.equal(observed.severityNumber, 9);
    assert.match(blocked.body.stringValue ?? '', /blocked network POST http:\/\/127\.0\.0\.1:6666\/collect/);
    assert.match(blocked.traceId ?? '', /^[0-9a-f]{32}$/);
    assert.match(blocked.spanId ?? '', /^[0-9a-f]{16}$/);
    assert.equal(blocked.traceId, traceIdFor(INVOCATION));
    assert.equal(observed.traceId, undefined, 'an event outside an invocation belongs to no trace');

    assert.deepEqual(attr(blocked.attributes, 'perimeter.action'), { stringValue: 'blocked' });
    assert.deepEqual(attr(blocked.attributes, 'perimeter.capability'), { stringValue: 'network' });
    assert.deepEqual(attr(blocked.attributes, 'perimeter.package'), { stringValue: 'left-pad' });
    assert.deepEqual(attr(blocked.attributes, 'perimeter.invocation'), { stringValue: INVOCATION });
    assert.deepEqual(attr(blocked.attributes, 'perimeter.packages'), {
      arrayValue: { values: [{ stringValue: 'some-sdk' }, { stringValue: 'left-pad' }] },
    });
    assert.deepEqual(attr(alerted.attributes, 'perimeter.repeats'), { intValue: '3' });
    assert.equal(attr(blocked.attributes, 'perimeter.perimeter'), undefined);
    assert.equal(attr(observed.attributes, 'perimeter.packages'), undefined);
    assert.deepEqual(exporter.stats().sent, { logs: 4, spans: 0 });
    await exporter.shutdown();
  });

  test('invocations become spans that share the trace of their events', async () => {
    const otlp = await receiver();
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint, serviceName: 'shop' });
    const startMs = Date.parse('2026-11-23T14:06:45.700Z');
    exporter.exportEvent(event());
    exporter.exportSpan({
      id: INVOCATION,
      function: 'checkout',
      trigger: 'http',
      request: 'POST /api/checkout',
      startMs,
      durationMs: 123.5,
      outcome: 'ok',
      statusCode: 200,
    });
    exporter.exportSpan({
      id: 'sqs-batch-1',
      function: 'webhook',
      trigger: 'sqs',
      request: 'sqs',
      startMs,
      durationMs: 10,
      outcome: 'error',
      error: 'TypeError: boom',
    });
    await exporter.flush();
    assert.deepEqual(
      otlp.requests.map((r) => r.path),
      ['/v1/logs', '/v1/traces'],
    );
    const traces = otlp.traces()[0]!;
    assert.equal(traces.resourceSpans.length, 2);
    assert.deepEqual(attr(traces.resourceSpans[0]!.resource.attributes, 'service.name'), { stringValue: 'shop' });
    assert.deepEqual(attr(traces.resourceSpans[0]!.resource.attributes, 'faas.name'), { stringValue: 'checkout' });
    const span = traces.resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    assert.equal(span.name, 'POST /api/checkout');
    assert.equal(span.kind, 2, 'SPAN_KIND_SERVER');
    assert.equal(span.startTimeUnixNano, '1795442805700000000');
    assert.equal(span.endTimeUnixNano, '1795442805823500000');
    assert.deepEqual(span.status, { code: 0 });
    assert.deepEqual(attr(span.attributes, 'http.response.status_code'), { intValue: '200' });
    assert.deepEqual(attr(span.attributes, 'faas.trigger'), { stringValue: 'http' });
    assert.deepEqual(attr(span.attributes, 'faas.invocation_id'), { stringValue: INVOCATION });

    // The UUID request id is the trace id as it is, so a person can paste one into the other's search.
    assert.equal(span.traceId, INVOCATION.replaceAll('-', ''));
    const log = otlp.logs()[0]!.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!;
    assert.equal(log.traceId, span.traceId);
    assert.equal(log.spanId, span.spanId);

    const failed = traces.resourceSpans[1]!.scopeSpans[0]!.spans[0]!;
    assert.equal(failed.kind, 5, 'SPAN_KIND_CONSUMER for a queue trigger');
    assert.deepEqual(failed.status, { code: 2, message: 'TypeError: boom' });
    assert.deepEqual(attr(failed.attributes, 'faas.trigger'), { stringValue: 'pubsub' });
    // A non-UUID id still maps to a valid, stable id.
    assert.match(failed.traceId, /^[0-9a-f]{32}$/);
    assert.equal(failed.traceId, traceIdFor('sqs-batch-1'));
    assert.equal(failed.spanId, spanIdFor('sqs-batch-1'));
    assert.notEqual(traceIdFor('sqs-batch-1'), traceIdFor('sqs-batch-2'));
    assert.deepEqual(exporter.stats().sent, { logs: 1, spans: 2 });
    await exporter.shutdown();
  });

  test('perimeterEventsToOtlp is pure and matches what is sent', () => {
    const payload = perimeterEventsToOtlp([event()], { observedMs: 0, serviceName: 'svc' });
    assert.equal(payload.resourceLogs[0]?.scopeLogs[0]?.logRecords[0]?.observedTimeUnixNano, '0');
    assert.deepEqual(perimeterEventsToOtlp([event()], { observedMs: 0, serviceName: 'svc' }), payload);
    assert.deepEqual(perimeterEventsToOtlp([]), { resourceLogs: [] });
  });

  test('Retry-After in seconds and as an HTTP date', () => {
    const now = Date.parse('2026-11-23T14:00:00Z');
    assert.equal(parseRetryAfter('2', now), 2000);
    assert.equal(parseRetryAfter('Mon, 23 Nov 2026 14:00:03 GMT', now), 3000);
    assert.equal(parseRetryAfter('Mon, 23 Nov 2026 13:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});

describe('delivery', () => {
  test('a 503 with Retry-After is retried after that delay, then delivered', async () => {
    const otlp = await receiver([{ status: 503, headers: { 'retry-after': '1' } }]);
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint, initialBackoffMs: 10 });
    exporter.exportEvent(event());
    exporter.exportEvent(event({ target: 'dns:x.attacker.test' }));
    await exporter.flush();
    assert.equal(otlp.requests.length, 2);
    assert.deepEqual(otlp.requests[0]?.body, otlp.requests[1]?.body, 'the same batch is sent again');
    const gap = otlp.requests[1]!.at - otlp.requests[0]!.at;
    assert.ok(gap >= 900, `Retry-After: 1 honoured (waited ${gap} ms)`);
    const stats = exporter.stats();
    assert.equal(stats.retries, 1);
    assert.equal(stats.requests, 2);
    assert.deepEqual(stats.sent, { logs: 2, spans: 0 });
    assert.equal(stats.failed, 0);
    assert.match(stats.lastError ?? '', /HTTP 503/);
    await exporter.shutdown();
  });

  test('429 without Retry-After backs off and retries; 400 is not retried', async () => {
    const otlp = await receiver([{ status: 429 }, { status: 429 }, { status: 400, body: '{"message":"bad"}' }]);
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint, initialBackoffMs: 20, maxAttempts: 5 });
    exporter.exportEvent(event());
    await exporter.flush();
    const stats = exporter.stats();
    assert.equal(stats.requests, 3);
    assert.equal(stats.retries, 2);
    assert.equal(stats.failed, 1);
    assert.equal(stats.sent.logs, 0);
    assert.match(stats.lastError ?? '', /HTTP 400 \(not retryable\)/);
    await exporter.shutdown();
  });

  test('a partial success counts the rejected records as failed', async () => {
    const otlp = await receiver([
      { status: 200, body: JSON.stringify({ partialSuccess: { rejectedLogRecords: '1', errorMessage: 'x' } }) },
    ]);
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint });
    exporter.exportEvent(event());
    exporter.exportEvent(event());
    await exporter.flush();
    assert.equal(exporter.stats().sent.logs, 1);
    assert.equal(exporter.stats().failed, 1);
    await exporter.shutdown();
  });

  test('a dead endpoint never throws; the loss is counted', async () => {
    const port = await deadPort();
    const exporter = createOtlpExporter({
      endpoint: `http://127.0.0.1:${port}`,
      maxAttempts: 3,
      initialBackoffMs: 10,
    });
    const started = Date.now();
    for (let i = 0; i < 5; i++) exporter.exportEvent(event({ target: `t${i}` }));
    exporter.exportSpan({
      id: 'x',
      function: 'checkout',
      trigger: 'http',
      request: 'GET /',
      startMs: 1,
      durationMs: 1,
      outcome: 'ok',
    });
    assert.ok(Date.now() - started < 50, 'exporting does not wait for the network');
    await exporter.flush();
    const stats = exporter.stats();
    assert.equal(stats.failed, 6);
    assert.deepEqual(stats.sent, { logs: 0, spans: 0 });
    assert.equal(stats.requests, 6, 'three attempts for the logs, three for the spans');
    assert.match(stats.lastError ?? '', /ECONNREFUSED.*gave up after 3 attempts/);
    await exporter.shutdown();
  });

  test('a collector that never answers times out', async () => {
    const otlp = await receiver(['hang']);
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint, timeoutMs: 200, maxAttempts: 1 });
    exporter.exportEvent(event());
    await exporter.flush();
    assert.equal(exporter.stats().failed, 1);
    assert.match(exporter.stats().lastError ?? '', /timed out/);
    await exporter.shutdown();
  });

  test('shutdown gives up after shutdownTimeoutMs: a hung collector does not hold up a stopping process', async () => {
    const otlp = await receiver(['hang']);
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({
      endpoint: otlp.endpoint,
      batchSize: 2,
      timeoutMs: 30_000,
      shutdownTimeoutMs: 300,
    });
    for (let i = 0; i < 5; i++) exporter.exportEvent(event({ target: `t${i}` }));
    await otlp.waitFor(1);
    const started = Date.now();
    await exporter.shutdown();
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 2000, `shutdown took ${took} ms`);
    const stats = exporter.stats();
    assert.equal(stats.failed, 2, 'the batch in flight is given up');
    assert.equal(stats.dropped, 3, 'the queued items are dropped');
    assert.equal(stats.queued, 0);
    assert.equal(stats.requests, 1, 'no retry once stopping');
  });

  test('the queue is bounded: the oldest items go and are counted', async () => {
    const otlp = await receiver();
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({
      endpoint: otlp.endpoint,
      maxQueue: 10,
      batchSize: 100,
      flushIntervalMs: 60_000,
    });
    for (let i = 0; i < 25; i++) exporter.exportEvent(event({ target: `t${i}` }));
    assert.equal(exporter.stats().queued, 10);
    assert.equal(exporter.stats().dropped, 15);
    assert.equal(otlp.requests.length, 0, 'nothing sent before the interval or a full batch');
    await exporter.flush();
    const records = otlp.logs().flatMap((l) => l.resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords)));
    assert.deepEqual(
      records.map((r) => attr(r.attributes, 'perimeter.target')?.stringValue),
      Array.from({ length: 10 }, (_, i) => `t${i + 15}`),
    );
    await exporter.shutdown();
  });

  test('a full batch is sent without waiting for the interval, in batches of batchSize', async () => {
    const otlp = await receiver();
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint, batchSize: 3, flushIntervalMs: 60_000 });
    for (let i = 0; i < 7; i++) exporter.exportEvent(event({ target: `t${i}` }));
    await otlp.waitFor(2);
    await exporter.flush();
    const sizes = otlp.logs().map((l) => l.resourceLogs[0]!.scopeLogs[0]!.logRecords.length);
    assert.deepEqual(sizes, [3, 3, 1]);
    await exporter.shutdown();
  });

  test('the interval sends a partial batch', async () => {
    const otlp = await receiver();
    cleanups.push(otlp.close);
    const exporter = createOtlpExporter({ endpoint: otlp.endpoint, flushIntervalMs: 30 });
    exporter.exportEvent(event());
    await otlp.waitFor(1, 2000);
    assert.equal(otlp.logs().length, 1);
    await exporter.shutdown();
  });

  test('bad input: exports never throw, options fail early and clearly', async () => {
    const exporter = createOtlpExporter({ endpoint: `http://127.0.0.1:${await deadPort()}`, maxAttempts: 1 });
    exporter.exportEvent(null as never);
    exporter.exportEvent({ time: 'not a time' } as never);
    exporter.exportSpan({ nope: true } as never);
    assert.equal(exporter.stats().invalid, 2);
    await exporter.shutdown();
    exporter.exportEvent(event());
    assert.equal(exporter.stats().dropped, 1, 'exports after shutdown are dropped and counted');
    assert.throws(() => createOtlpExporter({ endpoint: 'collector:4318' }), /must be http: or https:/);
    assert.throws(() => createOtlpExporter({ endpoint: 'not a url' }), /is not a URL/);
    assert.throws(() => createOtlpExporter({ endpoint: 'http://x', maxQueue: 0 }), /maxQueue must be a positive/);
  });
});

describe('in a real process', () => {
  function runNode(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
    return new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((done) => {
      const started = Date.now();
      const child = spawn(process.execPath, args, {
        cwd: options.cwd ?? REPO,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...options.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        done({ code, stdout, stderr, ms: Date.now() - started });
      });
    });
  }

  test('pending exports never keep a process alive; an awaited flush delivers through retries', async () => {
    const otlp = await receiver([{ status: 503, headers: { 'retry-after': '1' } }]);
    cleanups.push(otlp.close);
    const idle = await runNode([
      '--input-type=module',
      '-e',
      `import { createOtlpExporter } from ${JSON.stringify(OTEL_DIST)};
       const e = createOtlpExporter({ endpoint: 'http://127.0.0.1:${await deadPort()}', flushIntervalMs: 60000 });
       e.exportEvent({ time: new Date().toISOString(), type: 'violation', capability: 'fs', action: 'blocked',
         target: '/x', package: 'p', function: 'f', invocation: null });
       console.log('done');`,
    ]);
    assert.equal(idle.code, 0, idle.stderr);
    assert.ok(idle.ms < 5000, `exited in ${idle.ms} ms`);

    const flushed = await runNode([
      '--input-type=module',
      '-e',
      `import { createOtlpExporter } from ${JSON.stringify(OTEL_DIST)};
       const e = createOtlpExporter({ endpoint: ${JSON.stringify(otlp.endpoint)} });
       e.exportEvent({ time: new Date().toISOString(), type: 'violation', capability: 'fs', action: 'blocked',
         target: '/x', package: 'p', function: 'f', invocation: null });
       await e.shutdown();
       console.log(JSON.stringify(e.stats()));`,
    ]);
    assert.equal(flushed.code, 0, flushed.stderr);
    const stats = JSON.parse(flushed.stdout.trim());
    assert.deepEqual(stats.sent, { logs: 1, spans: 0 }, flushed.stdout);
    assert.equal(otlp.requests.length, 2, 'the 503 and the retry');
  });

  test('attachToRuntime exports a guarded function’s own events', async () => {
    const otlp = await receiver();
    cleanups.push(otlp.close);
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-otel-')));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    // The collector is the one place this function may send to; reading the secret is blocked and reported.
    writeFileSync(
      join(dir, 'perimeter.json'),
      JSON.stringify({ mode: 'block', network: { allow: [`POST ${otlp.endpoint}/v1/logs`] } }),
    );
    writeFileSync(
      join(dir, 'fn.mjs'),
      `import { readFileSync } from 'node:fs';
       import { createOtlpExporter } from '@perimeter/otel';
       import { attachToRuntime } from '@perimeter/otel/runtime';
       const exporter = createOtlpExporter({ endpoint: ${JSON.stringify(otlp.endpoint)}, serviceName: 'fn' });
       attachToRuntime(exporter);
       try { readFileSync('/etc/shadow'); } catch (error) { console.log(error.code); }
       await exporter.shutdown();
       console.log(JSON.stringify(exporter.stats()));`,
    );
    // Resolve the workspace packages from the repo's node_modules, as an installed function would from its own.
    const link = join(dir, 'node_modules');
    symlinkSync(join(REPO, 'node_modules'), link, 'dir');
    const run = await runNode(['--import', 'perimeter/register', 'fn.mjs'], {
      cwd: dir,
      env: { PERIMETER_FUNCTION: 'fn', PERIMETER_POLICY: join(dir, 'perimeter.json') },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /ERR_PERIMETER_BLOCKED/);
    const records = otlp.logs().flatMap((l) => l.resourceLogs.flatMap((r) => r.scopeLogs.flatMap((s) => s.logRecords)));
    const shadow = records.find((r) => attr(r.attributes, 'perimeter.target')?.stringValue === 'read /etc/shadow');
    assert.ok(shadow, `the collector got the blocked read; got ${JSON.stringify(records)}\n${run.stderr}`);
    assert.equal(shadow.severityText, 'ERROR');
    assert.deepEqual(attr(shadow.attributes, 'perimeter.function'), { stringValue: 'fn' });
  });

  test('attachToRuntime does not export the blocking of its own requests (no feedback loop)', async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-otel-')));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const endpoint = `http://127.0.0.1:${await deadPort()}`;
    // The policy does not allow the collector: every export is blocked and reported.
    writeFileSync(join(dir, 'perimeter.json'), JSON.stringify({ mode: 'block' }));
    writeFileSync(
      join(dir, 'fn.mjs'),
      `import { readFileSync } from 'node:fs';
       import { createOtlpExporter } from '@perimeter/otel';
       import { attachToRuntime } from '@perimeter/otel/runtime';
       const exporter = createOtlpExporter({ endpoint: ${JSON.stringify(endpoint)}, maxAttempts: 2, initialBackoffMs: 10 });
       attachToRuntime(exporter);
       try { readFileSync('/etc/shadow'); } catch {}
       await exporter.flush();
       await new Promise((resolve) => setTimeout(resolve, 1200));
       await exporter.flush();
       console.log(JSON.stringify(exporter.stats()));`,
    );
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const run = await runNode(['--import', 'perimeter/register', 'fn.mjs'], {
      cwd: dir,
      env: { PERIMETER_FUNCTION: 'fn', PERIMETER_POLICY: join(dir, 'perimeter.json') },
    });
    assert.equal(run.code, 0, run.stderr);
    const stats = JSON.parse(run.stdout.trim().split('\n').pop() ?? '{}');
    assert.match(run.stderr, /"action":"blocked","target":"POST http:\/\/127\.0\.0\.1:\d+\/v1\/logs"/);
    assert.equal(stats.failed, 1, 'the one event (the /etc/shadow read) failed to go out');
    assert.equal(stats.requests, 2, 'two attempts for it, and no export of its own blocked requests');
    assert.equal(stats.queued + stats.dropped + stats.invalid, 0, JSON.stringify(stats));
  });
});
