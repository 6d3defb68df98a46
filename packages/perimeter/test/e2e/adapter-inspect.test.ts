/**
 * The adapters' `inspect` and `schema` options, in a process guarded by the preload: each adapter gets a malicious
 * and a clean event, and the test checks what the handler saw (a rejected request never reaches it), what the
 * platform got back (a 400, a partial batch response naming only the bad record) and the events written (type
 * `attack` / `validation`, capability `inspector`, never the payload). Real @middy/core, functions-framework (served
 * on loopback), WHATWG Request/Response for Netlify v2, real zod, valibot and ajv for the schemas.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { FIXTURES, PACKAGE_ROOT, runGuarded, tempDir, writeTree } from '../helpers.js';
import { startRuntimeApi } from '../servers/lambda-runtime-api.js';

const SQLI = "1' UNION SELECT password FROM users--";

const MAIN = `const { guard: lambdaGuard } = require('perimeter/lambda');
const { guard: netlifyGuard } = require('perimeter/netlify');
const { perimeter } = require('perimeter/middy');
const { guardHttp } = require('perimeter/gcf');
const middy = require('@middy/core').default ?? require('@middy/core');
const functions = require('@google-cloud/functions-framework');
const { getTestServer } = require('@google-cloud/functions-framework/testing');
const { z } = require('zod');
const v = require('valibot');
const Ajv = require('ajv').default ?? require('ajv');
const SQLI = ${JSON.stringify(SQLI)};
const PORT = Number(process.argv[2]);
const results = {};
const seen = [];
const context = { functionName: 'orders', awsRequestId: 'req-1' };
const httpEvent = (query, body) => ({
  version: '2.0', rawPath: '/orders', headers: { 'content-type': 'application/json' },
  queryStringParameters: query, body, requestContext: { http: { method: 'POST', path: '/orders' } },
});
const sqsRecord = (messageId, body) => ({ eventSource: 'aws:sqs', messageId, body });

async function main() {
  // Lambda, API Gateway v2.
  const api = lambdaGuard(async (event) => { seen.push('lambda ' + event.queryStringParameters.id); return { statusCode: 200, body: 'ok' }; },
    { inspect: { mode: 'block' } });
  results.lambdaClean = await api(httpEvent({ id: '42' }), context);
  results.lambdaAttack = await api(httpEvent({ id: SQLI }), context);

  // Alert mode: reported, and the handler runs.
  const alerting = lambdaGuard(async (event) => { seen.push('alert ' + event.queryStringParameters.id.length); return { statusCode: 200 }; },
    { inspect: { mode: 'alert' } });
  results.lambdaAlert = await alerting(httpEvent({ id: SQLI }), context);

  // SQS batch: one bad record; the handler fails one of its own.
  const worker = lambdaGuard(async (event) => {
    seen.push('sqs ' + event.Records.map((r) => r.messageId).join(','));
    return { batchItemFailures: [{ itemIdentifier: 'm3' }] };
  }, { inspect: { mode: 'block' } });
  results.sqs = await worker({ Records: [
    sqsRecord('m1', '{"name":"ok"}'),
    sqsRecord('m2', '{"path":"../../../../etc/passwd"}'),
    sqsRecord('m3', 'hello'),
  ] }, context);

  // An allow rule for a field that legitimately carries SQL.
  const reports = lambdaGuard(async () => { seen.push('allowed'); return { statusCode: 200 }; },
    { inspect: { mode: 'block', allow: [{ path: 'queryStringParameters.id', classes: ['sqli'] }] } });
  results.lambdaAllowed = await reports(httpEvent({ id: SQLI }), context);

  // Netlify v2: a Request in, a Response out; the function can still read the body.
  const site = netlifyGuard(async (req) => { const body = await req.json(); seen.push('netlify ' + body.name); return new Response('ok'); },
    { inspect: { mode: 'block' } });
  const post = (body) => new Request('https://site.example/api', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const clean = await site(post('{"name":"ada"}'), { requestId: 'nf-1' });
  results.netlifyClean = { status: clean.status, body: await clean.text() };
  const attack = await site(post(JSON.stringify({ name: 'x', cmd: 'a; cat /etc/passwd' })), { requestId: 'nf-2' });
  results.netlifyAttack = { status: attack.status, body: await attack.text() };

  // middy.
  const mw = middy(async (event) => { seen.push('middy ' + event.queryStringParameters.id); return { statusCode: 200, body: 'ok' }; })
    .use(perimeter({ inspect: { mode: 'block' } }));
  results.middyClean = await mw(httpEvent({ id: '7' }), context);
  results.middyAttack = await mw(httpEvent({ id: SQLI }), context);

  // Schema validation: zod (Standard Schema) and ajv (a validator function).
  const Order = z.object({ item: z.string(), quantity: z.number().int().positive() });
  const zodApi = lambdaGuard(async (event) => { seen.push('zod ' + JSON.parse(event.body).item); return { statusCode: 201 }; }, { schema: Order });
  results.zodValid = await zodApi(httpEvent({}, '{"item":"book","quantity":2}'), context);
  results.zodInvalid = await zodApi(httpEvent({}, '{"item":"book","quantity":-1}'), context);
  results.zodNotJson = await zodApi(httpEvent({}, 'not json'), context);
  const OrderV = v.object({ item: v.string(), quantity: v.pipe(v.number(), v.integer(), v.minValue(1)) });
  const valibotApi = lambdaGuard(async (event) => { seen.push('valibot ' + JSON.parse(event.body).item); return { statusCode: 201 }; }, { schema: OrderV });
  results.valibotValid = await valibotApi(httpEvent({}, '{"item":"lamp","quantity":1}'), context);
  results.valibotInvalid = await valibotApi(httpEvent({}, '{"item":"lamp","quantity":0}'), context);
  const validate = new Ajv().compile({ type: 'object', required: ['item'], properties: { item: { type: 'string' } } });
  const ajvApi = lambdaGuard(async () => { seen.push('ajv'); return { statusCode: 201 }; },
    { schema: (value) => ({ valid: validate(value), errors: validate.errors }) });
  results.ajvValid = await ajvApi(httpEvent({}, '{"item":"pen"}'), context);
  results.ajvInvalid = await ajvApi(httpEvent({}, '{"item":3}'), context);

  // GCF over HTTP through the real framework.
  functions.http('orders', guardHttp((req, res) => { seen.push('gcf ' + req.query.id); res.send('ok'); }, { inspect: { mode: 'block' } }));
  const server = getTestServer('orders');
  await new Promise((resolve) => server.listen(PORT, '127.0.0.1', resolve));
  for (const [key, id] of [['gcfClean', '5'], ['gcfAttack', SQLI]]) {
    const response = await fetch('http://127.0.0.1:' + PORT + '/?id=' + encodeURIComponent(id));
    results[key] = { status: response.status, body: await response.text() };
  }
  server.close();
  console.log(JSON.stringify({ results, seen }));
}
main().catch((error) => { console.error(error); process.exit(1); });
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('adapters: inspect and schema options', () => {
  let dir: string;
  let results: Record<string, any>;
  let seen: string[];
  let events: Array<Record<string, any>>;

  before(async () => {
    // Inside the repository, so that zod, ajv, @middy/core and the framework in its node_modules resolve the way a
    // deployed function's dependencies would.
    dir = mkdtempSync(join(PACKAGE_ROOT, 'build', 'tmp-inspect-'));
    writeTree(dir, { 'main.cjs': MAIN });
    const port = await freePort();
    const run = await runGuarded({
      dir,
      policy: { mode: 'block', network: { allow: [`http://127.0.0.1:${port}`] } },
      script: 'main.cjs',
      args: [String(port)],
    });
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.trim().split('\n');
    ({ results, seen } = JSON.parse(lines[lines.length - 1]!));
    events = run.events;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const inspectorEvents = (type: string) =>
    events.filter((event) => event.type === type && event.capability === 'inspector');

  test('lambda: a clean request reaches the handler, an injection gets a 400 and never does', () => {
    assert.deepEqual(results.lambdaClean, { statusCode: 200, body: 'ok' });
    assert.equal(results.lambdaAttack.statusCode, 400);
    const body = JSON.parse(results.lambdaAttack.body);
    assert.deepEqual(body.classes, ['sqli']);
    assert.deepEqual(body.fields, ['queryStringParameters.id']);
    assert.ok(seen.includes('lambda 42'));
    assert.ok(!seen.some((entry) => entry.includes('UNION')), 'the handler saw the injection');
  });

  test('alert mode reports and runs the handler; an allow rule lets the field through', () => {
    assert.deepEqual(results.lambdaAlert, { statusCode: 200 });
    assert.ok(seen.includes(`alert ${SQLI.length}`));
    assert.deepEqual(results.lambdaAllowed, { statusCode: 200 });
    assert.ok(seen.includes('allowed'));
    const alerted = inspectorEvents('attack').filter((event) => event.action === 'alerted');
    assert.equal(alerted.length, 1);
    assert.equal(alerted[0]!.target, 'sqli queryStringParameters.id');
  });

  test('SQS: only the bad record is failed, merged with the handler’s own failures; the others reach it', () => {
    assert.ok(seen.includes('sqs m1,m3'), JSON.stringify(seen));
    assert.deepEqual(results.sqs, { batchItemFailures: [{ itemIdentifier: 'm3' }, { itemIdentifier: 'm2' }] });
  });

  test('netlify v2: a 400 Response for the attack, the clean request reads its own body', () => {
    assert.deepEqual(results.netlifyClean, { status: 200, body: 'ok' });
    assert.equal(results.netlifyAttack.status, 400);
    const rejected = JSON.parse(results.netlifyAttack.body);
    assert.ok(rejected.classes.includes('cmdi'), rejected.classes);
    assert.deepEqual([...new Set(rejected.fields)], ['body.cmd']);
    assert.ok(seen.includes('netlify ada'));
    assert.equal(seen.filter((entry) => entry.startsWith('netlify')).length, 1);
  });

  test('middy: the middleware answers early with the 400', () => {
    assert.deepEqual(results.middyClean, { statusCode: 200, body: 'ok' });
    assert.equal(results.middyAttack.statusCode, 400);
    assert.ok(seen.includes('middy 7'));
    assert.equal(seen.filter((entry) => entry.startsWith('middy')).length, 1);
  });

  test('gcf: res.status(400) through the real framework', () => {
    assert.deepEqual(results.gcfClean, { status: 200, body: 'ok' });
    assert.equal(results.gcfAttack.status, 400);
    assert.deepEqual(JSON.parse(results.gcfAttack.body).classes, ['sqli']);
    assert.ok(seen.includes('gcf 5'));
    assert.equal(seen.filter((entry) => entry.startsWith('gcf')).length, 1);
  });

  test('schema: zod, valibot and ajv reject invalid bodies with the field path, pass valid ones', () => {
    assert.deepEqual(results.zodValid, { statusCode: 201 });
    assert.equal(results.zodInvalid.statusCode, 400);
    const zodBody = JSON.parse(results.zodInvalid.body);
    assert.equal(zodBody.code, 'ERR_PERIMETER_VALIDATION');
    assert.deepEqual(
      zodBody.issues.map((issue: { path: string }) => issue.path),
      ['quantity'],
    );
    assert.match(zodBody.error, /quantity/);
    assert.equal(results.zodNotJson.statusCode, 400);
    assert.deepEqual(results.ajvValid, { statusCode: 201 });
    assert.equal(results.ajvInvalid.statusCode, 400);
    assert.deepEqual(
      JSON.parse(results.ajvInvalid.body).issues.map((issue: { path: string }) => issue.path),
      ['item'],
    );
    assert.deepEqual(results.valibotValid, { statusCode: 201 });
    assert.equal(results.valibotInvalid.statusCode, 400);
    assert.deepEqual(
      JSON.parse(results.valibotInvalid.body).issues.map((issue: { path: string }) => issue.path),
      ['quantity'],
    );
    assert.deepEqual(
      seen.filter((entry) => entry.startsWith('zod') || entry.startsWith('valibot') || entry === 'ajv'),
      ['zod book', 'valibot lamp', 'ajv'],
    );
    const validation = inspectorEvents('validation');
    assert.ok(validation.some((event) => event.target === 'body quantity' && event.action === 'blocked'));
    assert.ok(validation.some((event) => event.target === 'body item'));
  });

  test('every finding is an attack event naming class and field, never the payload', () => {
    const blocked = inspectorEvents('attack').filter((event) => event.action === 'blocked');
    const targets = new Set(blocked.map((event) => event.target));
    for (const target of ['sqli queryStringParameters.id', 'traversal Records[1].body.path', 'cmdi body.cmd'])
      assert.ok(targets.has(target), `${target} in ${[...targets].join(' | ')}`);
    assert.ok(blocked.some((event) => event.function === 'orders' && event.invocation === 'req-1'));
    for (const event of events) {
      assert.ok(!JSON.stringify(event).includes('UNION SELECT'), 'an event carried the payload');
      assert.ok(!JSON.stringify(event).includes('etc/passwd'), 'an event carried the payload');
    }
  });
});

// Through a Lambda Runtime API loop (the bootstrap of adapter-lambda.test.ts), no preload: what the runtime receives
// is the wrapper's result, from an async and a callback-style handler.
const ASYNC_HANDLER = `const { guard } = require('perimeter/lambda');
exports.handler = guard(async (event) => {
  if (event.Records) return { batchItemFailures: [], saw: event.Records.map((r) => r.messageId) };
  return { statusCode: 200, body: 'saw ' + (event.queryStringParameters ? event.queryStringParameters.id : event.Records) };
}, { inspect: { mode: 'block' } });
`;
const CALLBACK_HANDLER = `const { guard } = require('perimeter/lambda');
exports.handler = guard((event, context, callback) => {
  setImmediate(() => callback(null, { saw: (event.Records || []).map((r) => r.messageId) }));
}, { inspect: { mode: 'block' } });
`;

describe('perimeter/lambda inspect through a Runtime API loop', () => {
  const sqs = (ids: Array<[string, string]>) => ({
    Records: ids.map(([messageId, body]) => ({ eventSource: 'aws:sqs', messageId, body })),
  });
  const api2 = (id: string) => ({
    version: '2.0',
    rawPath: '/orders',
    headers: {},
    queryStringParameters: { id },
    requestContext: { http: { method: 'GET', path: '/orders' } },
  });
  const sns = {
    Records: [{ EventSource: 'aws:sns', Sns: { Message: '{"cmd":"x; rm -rf / --no-preserve-root"}', Subject: 'job' } }],
  };

  async function loop(handlerSource: string, events: Array<{ id: string; event: unknown }>) {
    const root = tempDir('perimeter-inspect-lambda-');
    const task = join(root, 'task');
    const runtime = join(root, 'runtime');
    writeTree(task, { 'index.cjs': handlerSource });
    mkdirSync(runtime, { recursive: true });
    mkdirSync(join(task, 'node_modules'), { recursive: true });
    copyFileSync(join(FIXTURES, 'lambda-runtime/bootstrap.mjs'), join(runtime, 'bootstrap.mjs'));
    symlinkSync(PACKAGE_ROOT, join(task, 'node_modules/perimeter'), 'dir');
    const api = await startRuntimeApi(events, { functionName: 'orders' });
    try {
      const run = await runGuarded({
        dir: task,
        policy: { mode: 'block' },
        script: join(runtime, 'bootstrap.mjs'),
        preload: 'none',
        env: {
          AWS_LAMBDA_RUNTIME_API: api.address,
          LAMBDA_RUNTIME_DIR: runtime,
          LAMBDA_TASK_ROOT: task,
          _HANDLER: 'index.handler',
          AWS_LAMBDA_FUNCTION_NAME: 'orders',
        },
      });
      assert.equal(run.code, 0, run.stderr);
      const response = (id: string) => {
        const found = api.responses.find((r) => r.id === id);
        assert.ok(found, `no response for ${id}: ${api.log.join('\n')} ${api.errors.map((e) => e.body).join('\n')}`);
        return JSON.parse(found.body);
      };
      return { run, api, response };
    } finally {
      await api.close();
    }
  }

  test('async handler: 400 for the injection, partial batch response, an error for a bad SNS event', async () => {
    const { run, api, response } = await loop(ASYNC_HANDLER, [
      { id: 'r-clean', event: api2('42') },
      { id: 'r-attack', event: api2(SQLI) },
      {
        id: 'r-batch',
        event: sqs([
          ['m1', 'fine'],
          ['m2', '{"q":"1\' UNION SELECT password FROM users--"}'],
        ]),
      },
      { id: 'r-sns', event: sns },
    ]);
    assert.deepEqual(response('r-clean'), { statusCode: 200, body: 'saw 42' });
    assert.equal(response('r-attack').statusCode, 400);
    assert.deepEqual(response('r-batch'), { batchItemFailures: [{ itemIdentifier: 'm2' }], saw: ['m1'] });
    const failure = api.errors.find((e) => e.id === 'r-sns');
    assert.ok(failure, 'the SNS event with a command injection did not fail the invocation');
    assert.match(failure.body, /input inspection/);
    const attack = run.events.find((event) => event.type === 'attack' && event.invocation === 'r-attack');
    assert.equal(attack?.function, 'orders');
  });

  test('callback-style handler: the removed record is merged into the callback’s result', async () => {
    const { response } = await loop(CALLBACK_HANDLER, [
      {
        id: 'c-batch',
        event: sqs([
          ['m1', '{"path":"../../../../etc/passwd"}'],
          ['m2', 'fine'],
        ]),
      },
      { id: 'c-attack', event: api2(SQLI) },
    ]);
    assert.deepEqual(response('c-batch'), { saw: ['m2'], batchItemFailures: [{ itemIdentifier: 'm1' }] });
    assert.equal(response('c-attack').statusCode, 400);
  });
});
