/**
 * The `perimeter dev` and `perimeter invoke` commands as a user runs them: real `perimeter` processes, the JSON
 * output, the sample events, the coded errors, and a clean stop on SIGTERM (no function process left behind).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type * as Store from '../src/dev/store.js';
import { BIN, isAlive, project, waitFor } from './dev-helpers.js';

const { EventStore } = (await import(new URL('../../dist/dev/store.js', import.meta.url).href)) as typeof Store;

const ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root' };

function perimeter(args: string[], cwd: string) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: ENV, timeout: 30_000 });
}

/** What each trigger's sample carries that a handler would read. */
const QUEUE = `export const handler = async (event, context) => {
  const record = event.Records[0];
  return { orderId: JSON.parse(record.body).orderId, source: record.messageAttributes.source.stringValue, eventSource: record.eventSource, requestId: context.awsRequestId };
};
`;
const S3 = `export const handler = async (event) => {
  const { bucket, object } = event.Records[0].s3;
  return { bucket: bucket.name, key: decodeURIComponent(object.key.replace(/\\+/g, ' ')) };
};
`;
const KINESIS = `export const handler = async (event) => event.Records.map((r) => JSON.parse(Buffer.from(r.kinesis.data, 'base64').toString('utf8')));
`;
const DYNAMO = `export const handler = async (event) => event.Records.map((r) => [r.eventName, r.dynamodb.NewImage.amount.N, r.dynamodb.NewImage.paid.BOOL]);
`;
const ECHO = `export const handler = async (event) => ({ got: event });
`;

describe('perimeter dev / perimeter invoke (commands)', () => {
  let dir: string;
  let dev: ChildProcess;
  let ready: { url: string; functions: Array<{ name: string; pid: number; status: string }> };
  const lines: Array<Record<string, any>> = [];
  let exited: Promise<number | null>;

  before(async () => {
    dir = project({
      'perimeter.config.json': {
        functions: {
          queue: { handler: 'queue.mjs', trigger: 'sqs' },
          thumbs: { handler: 's3.mjs', trigger: 's3' },
          clicks: { handler: 'kinesis.mjs', trigger: 'kinesis' },
          orders: { handler: 'dynamo.mjs', trigger: 'dynamodb' },
          echo: { handler: 'echo.mjs', trigger: 'eventbridge' },
        },
      },
      'queue.mjs': QUEUE,
      's3.mjs': S3,
      'kinesis.mjs': KINESIS,
      'dynamo.mjs': DYNAMO,
      'echo.mjs': ECHO,
      'bad-event.json': '{ "Records": [ }',
      'event.json': { custom: true },
    });
    dev = spawn(process.execPath, [BIN, 'dev', dir, '--port', '0', '--json', '--no-watch'], {
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) => dev.on('exit', (code) => resolve(code)));
    const reader = createInterface({ input: dev.stdout! });
    reader.on('line', (line) => lines.push(JSON.parse(line)));
    ready = (await waitFor(
      'the ready line',
      () => lines.find((line) => line.kind === 'ready'),
      20_000,
    )) as typeof ready;
  });

  after(() => {
    if (dev.exitCode === null) dev.kill('SIGKILL');
  });

  test('the ready line lists the functions with their processes', () => {
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(
      ready.functions.map((fn) => [fn.name, fn.status]),
      [
        ['queue', 'ready'],
        ['thumbs', 'ready'],
        ['clicks', 'ready'],
        ['orders', 'ready'],
        ['echo', 'ready'],
      ],
    );
    for (const fn of ready.functions) assert.ok(isAlive(fn.pid));
  });

  test('invoke --sample sqs reaches the function and prints its result', () => {
    const run = perimeter(['invoke', 'queue', '--sample', 'sqs', '--url', ready.url], dir);
    assert.equal(run.status, 0, run.stderr);
    const result = JSON.parse(run.stdout);
    assert.equal(result.orderId, 'ord_1001');
    assert.equal(result.source, 'stripe');
    assert.equal(result.eventSource, 'aws:sqs');
    assert.match(result.requestId, /^[0-9a-f-]{36}$/);
  });

  test('the other samples have the shapes handlers read', () => {
    const result = (fn: string, sample: string) => {
      const run = perimeter(['invoke', fn, '--sample', sample, '--url', ready.url], dir);
      assert.equal(run.status, 0, run.stderr);
      return JSON.parse(run.stdout);
    };
    assert.deepEqual(result('thumbs', 's3-put'), { bucket: 'shop-uploads', key: 'products/red shoe (large).jpg' });
    assert.deepEqual(result('clicks', 'kinesis'), [{ type: 'click', productId: 'shoe-red-42', sessionId: 's_8f3c' }]);
    assert.deepEqual(result('orders', 'dynamodb'), [
      ['INSERT', '4200', false],
      ['MODIFY', '4200', true],
    ]);
    assert.equal(result('echo', 'eventbridge').got['detail-type'], 'Order Placed');
    assert.equal(result('echo', 'sns').got.Records[0].Sns.TopicArn, 'arn:aws:sns:us-east-1:123456789012:shop-orders');
    const file = perimeter(['invoke', 'echo', '--event', 'event.json', '--url', ready.url, '--json'], dir);
    assert.deepEqual(JSON.parse(file.stdout).result, { got: { custom: true } });
  });

  test('coded errors: unknown function, bad event file, unknown sample, nothing running', () => {
    const unknown = perimeter(['invoke', 'nope', '--url', ready.url], dir);
    assert.equal(unknown.status, 2);
    assert.match(
      unknown.stderr,
      /ERR_PERIMETER_DEV_UNKNOWN_FUNCTION: no function is called "nope"\n {2}hint: functions: queue, thumbs, clicks, orders, echo/,
    );
    const badFile = perimeter(['invoke', 'queue', '--event', 'bad-event.json', '--url', ready.url], dir);
    assert.equal(badFile.status, 2);
    assert.match(badFile.stderr, /ERR_PERIMETER_DEV_EVENT: the event file is not JSON.*bad-event\.json/);
    const missing = perimeter(['invoke', 'queue', '--event', 'missing.json', '--url', ready.url], dir);
    assert.match(missing.stderr, /ERR_PERIMETER_DEV_EVENT: cannot read the event file: ENOENT/);
    const sample = perimeter(['invoke', 'queue', '--sample', 'sqs-fifo', '--url', ready.url], dir);
    assert.match(
      sample.stderr,
      /ERR_PERIMETER_DEV_EVENT: there is no sample event called "sqs-fifo"\n {2}hint: samples: dynamodb, eventbridge, kinesis, s3-put, sns, sqs/,
    );
    const down = perimeter(['invoke', 'queue', '--url', 'http://127.0.0.1:9'], dir);
    assert.equal(down.status, 2);
    assert.match(down.stderr, /ERR_PERIMETER_DEV_NOT_RUNNING: nothing answers at http:\/\/127\.0\.0\.1:9/);
  });

  test('dev: port in use and no functions are coded errors', () => {
    const busy = perimeter(['dev', dir, '--port', new URL(ready.url).port, '--db', `${dir}/.perimeter/second.db`], dir);
    assert.equal(busy.status, 2);
    assert.match(
      busy.stderr,
      /ERR_PERIMETER_DEV_PORT_IN_USE: port \d+ on 127\.0\.0\.1 is already in use\n {2}hint: .*--port/,
    );
    const empty = perimeter(['dev', project({ 'notes.txt': 'x' }), '--port', '0'], dir);
    assert.equal(empty.status, 2);
    assert.match(empty.stderr, /ERR_PERIMETER_DEV_NO_FUNCTIONS/);
  });

  test('--json lines for invocations; SIGTERM stops the functions and keeps the store', async () => {
    await waitFor('invocation lines', () => lines.filter((line) => line.kind === 'invocation').length >= 7);
    const invocation = lines.find((line) => line.kind === 'invocation' && line.function === 'queue')!;
    assert.equal(invocation.request, 'invoke sqs');
    assert.equal(invocation.outcome, 'ok');
    dev.kill('SIGTERM');
    assert.equal(await exited, 0);
    for (const fn of ready.functions) await waitFor(`${fn.name} to be gone`, () => !isAlive(fn.pid), 5000);
    const store = EventStore.open(`${dir}/.perimeter/events.db`, { readonly: true });
    try {
      assert.ok(store.invocations({ function: 'queue' }).length >= 1);
      assert.deepEqual(
        store.functions().map((fn) => fn.status),
        ['stopped', 'stopped', 'stopped', 'stopped', 'stopped'],
      );
    } finally {
      store.close();
    }
  });
});
