/**
 * `perimeter dev` discovery: the three layouts, config validation (every error names the file and the key path),
 * and format detection, which happens in the function's own process (never in the host).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type * as Discover from '../src/dev/discover.js';
import type * as Cli from '../src/index.js';
import { project, recorder } from './dev-helpers.js';

const { discover } = (await import(new URL('../../dist/dev/discover.js', import.meta.url).href)) as typeof Discover;
const { startDev } = (await import(new URL('../../dist/index.js', import.meta.url).href)) as typeof Cli;

const LAMBDA = 'export const handler = async (event) => ({ statusCode: 200, body: "ok" });\n';

describe('layouts', () => {
  test('perimeter.config.json: handlers, default routes, policy lookup, env and timeout', async () => {
    const dir = project({
      'perimeter.config.json': {
        env: { SHARED: 'yes', OVERRIDDEN: 'top' },
        functions: {
          checkout: {
            handler: 'functions/checkout/index.mjs',
            routes: ['POST /api/checkout'],
            env: { OVERRIDDEN: 'fn' },
            timeout: 2.5,
          },
          report: { handler: 'functions/report.mjs', trigger: 'sqs' },
          short: 'functions/short.mjs',
        },
      },
      'functions/checkout/index.mjs': LAMBDA,
      'functions/checkout/perimeter.json': { mode: 'block' },
      'functions/report.mjs': LAMBDA,
      'functions/short.mjs': LAMBDA,
      'perimeter.json': { mode: 'alert' },
    });
    const found = await discover(dir);
    assert.equal(found.layout, 'config');
    assert.equal(found.configFile, join(dir, 'perimeter.config.json'));
    const [checkout, report, short] = found.functions;
    assert.deepEqual(
      { ...checkout, source: undefined },
      {
        name: 'checkout',
        handler: join(dir, 'functions/checkout/index.mjs'),
        netlify: false,
        trigger: 'http',
        routes: ['POST /api/checkout'],
        routesGiven: true,
        policyFile: join(dir, 'functions/checkout/perimeter.json'),
        env: { SHARED: 'yes', OVERRIDDEN: 'fn' },
        timeoutMs: 2500,
        source: undefined,
      },
    );
    // Beside the handler first, then beside the config.
    assert.equal(report!.policyFile, join(dir, 'perimeter.json'));
    assert.deepEqual(report!.routes, [], 'a non-HTTP trigger gets no routes by default');
    assert.deepEqual(short!.routes, ['/short', '/short/*']);
    assert.equal(short!.timeoutMs, 30_000);
  });

  test('perimeter.config.mjs (default export, also a function) and the Netlify layout (three file shapes)', async () => {
    const dir = project({
      'perimeter.config.mjs': 'export default () => ({ port: 0, env: { A: "1" } });\n',
      'netlify/functions/flat.mjs': LAMBDA,
      'netlify/functions/folder/index.js': LAMBDA,
      'netlify/functions/named/named.cjs': 'exports.handler = async () => ({ statusCode: 200 });\n',
      'netlify/functions/notes.txt': 'not a function',
      'netlify/functions/empty/README.md': 'no handler here',
    });
    const found = await discover(dir);
    assert.equal(found.layout, 'netlify');
    assert.equal(found.config?.port, 0);
    assert.deepEqual(
      found.functions.map((fn) => [
        fn.name,
        fn.handler.slice(dir.length),
        fn.routes,
        fn.netlify,
        fn.policyFile,
        fn.env,
      ]),
      [
        [
          'flat',
          '/netlify/functions/flat.mjs',
          ['/.netlify/functions/flat', '/.netlify/functions/flat/*'],
          true,
          null,
          { A: '1' },
        ],
        [
          'folder',
          '/netlify/functions/folder/index.js',
          ['/.netlify/functions/folder', '/.netlify/functions/folder/*'],
          true,
          null,
          { A: '1' },
        ],
        [
          'named',
          '/netlify/functions/named/named.cjs',
          ['/.netlify/functions/named', '/.netlify/functions/named/*'],
          true,
          null,
          { A: '1' },
        ],
      ],
    );
  });

  test('a config listing functions wins over the Netlify layout', async () => {
    const dir = project({
      'perimeter.config.json': { functions: { only: { handler: 'only.mjs' } } },
      'only.mjs': LAMBDA,
      'netlify/functions/other.mjs': LAMBDA,
    });
    assert.deepEqual(
      (await discover(dir)).functions.map((fn) => fn.name),
      ['only'],
    );
  });

  test('a single handler file, given or found in the folder: it gets every path', async () => {
    const dir = project({ 'api/index.mjs': LAMBDA, 'thumb.mjs': LAMBDA, 'svc/handler.js': LAMBDA });
    const file = await discover(join(dir, 'thumb.mjs'));
    assert.equal(file.layout, 'file');
    assert.deepEqual(
      file.functions.map((fn) => [fn.name, fn.routes]),
      [['thumb', ['/*']]],
    );
    assert.deepEqual((await discover(join(dir, 'api/index.mjs'))).functions[0]!.name, 'api');
    assert.deepEqual(
      (await discover(join(dir, 'svc'))).functions.map((fn) => fn.name),
      ['svc'],
    );
  });

  test('no functions: a coded error with a hint about the layouts', async () => {
    const dir = project({ 'README.md': 'nothing to run' });
    await assert.rejects(discover(dir), (error: any) => {
      assert.equal(error.code, 'ERR_PERIMETER_DEV_NO_FUNCTIONS');
      assert.match(error.message, /netlify\/functions/);
      assert.match(error.message, /perimeter\.config\.json/);
      return true;
    });
    await assert.rejects(discover(join(dir, 'README.md')), { code: 'ERR_PERIMETER_DEV_NO_FUNCTIONS' });
    await assert.rejects(discover(join(dir, 'missing')), { code: 'ERR_PERIMETER_DEV_NO_FUNCTIONS' });
  });
});

describe('config errors name the file and the key path', () => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['unknown top-level key', { prot: 8788 }, /`prot` is not a known key/],
    ['port out of range', { port: 70000 }, /`port` must be a port number/],
    [
      'functions not an object',
      { functions: ['a'] },
      /`functions` must be an object keyed by function name, not an array/,
    ],
    [
      'bad function name',
      { functions: { 'a b': { handler: 'x.mjs' } } },
      /`functions\.a b` is not a usable function name/,
    ],
    ['handler missing', { functions: { checkout: { routes: ['/x'] } } }, /`functions\.checkout\.handler` is missing/],
    [
      'unknown function key',
      { functions: { checkout: { handler: 'h.mjs', timeOut: 3 } } },
      /`functions\.checkout\.timeOut` is not a known key/,
    ],
    [
      'bad timeout',
      { functions: { checkout: { handler: 'h.mjs', timeout: -1 } } },
      /`functions\.checkout\.timeout` must be a number of seconds/,
    ],
    [
      'bad format',
      { functions: { checkout: { handler: 'h.mjs', format: 'aws' } } },
      /`functions\.checkout\.format` must be one of lambda, netlify-v1, netlify-v2/,
    ],
    [
      'bad trigger',
      { functions: { checkout: { handler: 'h.mjs', trigger: 'sms' } } },
      /`functions\.checkout\.trigger` must be one of http, sqs/,
    ],
    [
      'bad route',
      { functions: { checkout: { handler: 'h.mjs', routes: ['/ok', 'FETCH /x'] } } },
      /`functions\.checkout\.routes\[1\]` has an unknown method FETCH/,
    ],
    [
      'star in the middle',
      { functions: { checkout: { handler: 'h.mjs', routes: ['/a/*/b'] } } },
      /`functions\.checkout\.routes\[0\]` may only have `\*` at its very end/,
    ],
    [
      'reserved route',
      { functions: { checkout: { handler: 'h.mjs', routes: ['/_perimeter/x'] } } },
      /routes\[0\]` may not use \/_perimeter\//,
    ],
    ['env value', { env: { A: { nested: true } } }, /`env\.A` must be a string, not an object/],
    [
      'env name',
      { functions: { checkout: { handler: 'h.mjs', env: { '1X': 'a' } } } },
      /`functions\.checkout\.env\.1X` is not a valid environment variable name/,
    ],
    [
      'handler file absent',
      { functions: { checkout: { handler: 'nope.mjs' } } },
      /`functions\.checkout\.handler` names a file that does not exist/,
    ],
    [
      'policy file absent',
      { functions: { checkout: { handler: 'h.mjs', policy: 'nope.json' } } },
      /`functions\.checkout\.policy` names a file that does not exist/,
    ],
  ];
  for (const [name, config, message] of cases) {
    test(name, async () => {
      const dir = project({ 'perimeter.config.json': config as object, 'h.mjs': LAMBDA });
      await assert.rejects(discover(dir), (error: any) => {
        assert.equal(error.code, 'ERR_PERIMETER_DEV_CONFIG');
        assert.match(error.message, message);
        assert.equal(error.file, join(dir, 'perimeter.config.json'));
        assert.ok(error.hint, 'every config error has a hint');
        return true;
      });
    });
  }

  test('invalid JSON names the line', async () => {
    const dir = project({ 'perimeter.config.json': '{\n  "port": 8788,\n  "env": { "A": "1", }\n}\n' });
    await assert.rejects(discover(dir), (error: any) => {
      assert.equal(error.code, 'ERR_PERIMETER_DEV_CONFIG');
      assert.match(error.message, /is not valid JSON/);
      assert.equal(error.line, 3);
      return true;
    });
  });

  test('a .mjs config that throws, or exports nothing', async () => {
    const throwing = project({ 'perimeter.config.mjs': 'throw new Error("config exploded");\n' });
    await assert.rejects(discover(throwing), /failed to load: config exploded/);
    const empty = project({ 'perimeter.config.mjs': 'export const port = 1;\n' });
    await assert.rejects(discover(empty), { code: 'ERR_PERIMETER_DEV_CONFIG', message: /has no default export/ });
  });
});

describe('format detection runs in the function process', () => {
  const dir = project({
    'netlify/functions/v1.mjs': `import { writeFileSync } from 'node:fs';
writeFileSync(new URL('./v1.loaded-by', import.meta.url), String(process.pid));
export const handler = async (event) => ({ statusCode: 200, body: 'v1 ' + event.httpMethod + ' ' + event.path });
`,
    'netlify/functions/v2/index.mjs': `export default async (request, context) => new Response('v2 ' + request.method + ' ' + new URL(request.url).pathname + ' ' + JSON.stringify(context.params));
export const config = { path: ['/api/items/:id', '/api/v2'], method: ['GET', 'POST'] };
`,
    'netlify/functions/nothing.mjs': 'export const answer = 42;\n',
  });
  let dev: Awaited<ReturnType<typeof startDev>> | undefined;
  let collector: Awaited<ReturnType<typeof recorder>>;
  after(async () => {
    await dev?.close();
    await collector?.close();
  });

  test('Netlify v1 and v2 (with config.path) are told apart; a module exporting no handler fails clearly', async () => {
    collector = await recorder();
    dev = await startDev({ dir, port: 0, watch: false, otlp: { endpoint: collector.url } });
    const byName = Object.fromEntries(dev.functions().map((fn) => [fn.name, fn]));
    assert.equal(byName.v1!.format, 'netlify-v1');
    assert.equal(byName.v1!.status, 'ready');
    assert.equal(byName.v2!.format, 'netlify-v2');
    assert.deepEqual(byName.v2!.routes, [
      '/.netlify/functions/v2',
      '/.netlify/functions/v2/*',
      'GET /api/items/:id',
      'POST /api/items/:id',
      'GET /api/v2',
      'POST /api/v2',
    ]);
    assert.equal(byName.nothing!.status, 'failed');
    assert.match(byName.nothing!.error!, /exports no handler.*found `answer`/s);
    // The handler's top level ran in its own process, not in the host's.
    const loadedBy = Number(readFileSync(join(dir, 'netlify/functions/v1.loaded-by'), 'utf8'));
    assert.notEqual(loadedBy, process.pid);
    assert.equal(loadedBy, byName.v1!.pid);

    assert.equal(await (await fetch(`${dev.url}/.netlify/functions/v1?x=1`)).text(), 'v1 GET /.netlify/functions/v1');
    assert.equal(await (await fetch(`${dev.url}/api/items/42`)).text(), 'v2 GET /api/items/42 {"id":"42"}');
    assert.equal(await (await fetch(`${dev.url}/api/v2`, { method: 'POST', body: 'x' })).text(), 'v2 POST /api/v2 {}');
    assert.equal((await fetch(`${dev.url}/api/v2`, { method: 'DELETE' })).status, 404);
    const failed = await fetch(`${dev.url}/.netlify/functions/nothing`);
    assert.equal(failed.status, 502);
    assert.match(((await failed.json()) as { detail: string }).detail, /exports no handler/);
  });

  test('--otlp: invocations reach the collector as spans (through @perimeter/otel) by the time close() returns', async () => {
    await dev!.close();
    const traces = collector.hits.filter((hit) => hit.startsWith('POST /v1/traces '));
    assert.ok(
      traces.length >= 1,
      `the collector got ${collector.hits.map((hit) => hit.slice(0, 20)).join(', ') || 'nothing'}`,
    );
    const body = traces.map((hit) => hit.slice('POST /v1/traces '.length)).join('\n');
    assert.match(body, /"stringValue":"v1"/);
    assert.match(body, /"stringValue":"v2"/);
  });
});

describe('a single handler file', () => {
  test('serves every path, and reloads when the file changes (its folder watched without recursion)', async () => {
    const dir = project({
      'thumb.mjs': 'export const handler = async (event) => ({ statusCode: 200, body: "v1 " + event.rawPath });\n',
    });
    const dev = await startDev({ dir: join(dir, 'thumb.mjs'), port: 0 });
    try {
      assert.equal(await (await fetch(`${dev.url}/any/path`)).text(), 'v1 /any/path');
      assert.equal(await (await fetch(`${dev.url}/`)).text(), 'v1 /');
      writeFileSync(join(dir, 'thumb.mjs'), 'export const handler = async () => ({ statusCode: 200, body: "v2" });\n');
      const deadline = Date.now() + 10_000;
      let body = '';
      while (body !== 'v2' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
        body = await (await fetch(`${dev.url}/x`)).text();
      }
      assert.equal(body, 'v2');
    } finally {
      await dev.close();
    }
  });
});
