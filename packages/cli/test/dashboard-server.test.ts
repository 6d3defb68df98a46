/**
 * The dashboard server (dev/dashboard-server.ts) over real loopback HTTP and a real store, and the
 * `perimeter dashboard` command's errors. The page itself is tested in a browser: test/browser/.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, get, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as DashboardServer from '../src/dev/dashboard-server.js';
import type * as Store from '../src/dev/store.js';
import type { EventRecord, FunctionRecord } from '../src/dev/types.js';

const load = async <T>(relative: string): Promise<T> =>
  (await import(new URL(`../../dist/${relative}`, import.meta.url).href)) as T;
const { createDashboard } = await load<typeof DashboardServer>('dev/dashboard-server.js');
const { EventStore } = await load<typeof Store>('dev/store.js');
const BIN = new URL('../../dist/bin.js', import.meta.url).pathname;
const NODE = process.env.PERIMETER_TEST_NODE ?? process.execPath;

const POLICY = { mode: 'block', network: { allow: ['GET https://api.example.com/**'] } };

let dir: string;
let store: Store.EventStore;
let dashboard: DashboardServer.Dashboard;
let server: Server;
let base: string;
let functions: FunctionRecord[];

function event(fields: Partial<EventRecord>): EventRecord {
  return {
    perimeter: 1,
    time: new Date().toISOString(),
    type: 'violation',
    capability: 'network',
    action: 'blocked',
    target: 'POST http://127.0.0.1:9/collect',
    package: 'leaky-sdk',
    function: 'checkout',
    invocation: 'req-1',
    reason: 'no-rule',
    ...fields,
  };
}

const SEED: EventRecord[] = [
  event({}),
  event({ target: 'dns:x.attacker.test' }),
  event({ package: 'app', target: 'GET http://127.0.0.1:9/orders/1' }),
  event({ function: 'catalog', action: 'alerted', target: 'GET https://cdn.example.net/list', package: 'app' }),
  event({ function: 'catalog', action: 'alerted', target: 'POST http://127.0.0.1:9/collect', repeats: 2 }),
];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'perimeter-dashboard-server-'));
  store = EventStore.open(join(dir, 'events.db'));
  for (const item of SEED) store.append(item);
  functions = [
    {
      name: 'checkout',
      handler: join(dir, 'checkout.mjs'),
      format: 'lambda',
      trigger: 'http',
      routes: ['POST /api/checkout'],
      policyFile: join(dir, 'perimeter.json'),
      policy: POLICY,
      status: 'ready',
      updatedAt: new Date().toISOString(),
    },
  ];
  store.upsertFunction(functions[0]!);
  store.flush();
  dashboard = createDashboard({ store, pollMs: 20 });
  server = createServer((req, res) => {
    if (!dashboard.handle(req, res)) res.writeHead(418).end('not the dashboard');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  dashboard.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function fetchText(path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

async function fetchJson(path: string): Promise<any> {
  const reply = await fetchText(path);
  assert.equal(reply.status, 200, reply.body);
  assert.match(String(reply.headers['content-type']), /^application\/json/);
  return JSON.parse(reply.body);
}

test('the page and its assets: security headers, types, caching, the /_perimeter redirect', async () => {
  const page = await fetchText('/_perimeter/');
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8/);
  assert.match(page.body, /<script defer src="app\.js"><\/script>/);
  assert.equal(page.headers['x-content-type-options'], 'nosniff');
  const csp = String(page.headers['content-security-policy']);
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.match(csp, /connect-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
  assert.equal(page.headers['access-control-allow-origin'], undefined);

  const redirect = await fetchText('/_perimeter?function=checkout');
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.location, '/_perimeter/?function=checkout');

  const script = await fetchText('/_perimeter/app.js', { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(script.status, 200);
  assert.match(String(script.headers['content-type']), /^text\/javascript/);
  assert.equal(script.headers['content-encoding'], 'gzip');
  assert.equal(script.headers['cache-control'], 'no-cache');
  const etag = String(script.headers.etag);
  const again = await fetchText('/_perimeter/app.js', { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  const style = await fetchText('/_perimeter/app.css');
  assert.match(String(style.headers['content-type']), /^text\/css/);
  assert.equal(style.headers['x-content-type-options'], 'nosniff');
});

test('handle() leaves other paths and the host’s invoke endpoint alone', async () => {
  assert.equal((await fetchText('/checkout')).status, 418);
  assert.equal((await fetchText('/_perimeterx')).status, 418);
  assert.equal((await fetchText('/_perimeter/invoke/checkout', { method: 'POST' })).status, 418);
  const missing = await fetchText('/_perimeter/nothing-here');
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body).error.code, 'not-found');
  const post = await fetchText('/_perimeter/api/events', { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET, HEAD');
});

test('requests naming another host are refused (DNS rebinding)', async () => {
  const rebound = await fetchText('/_perimeter/api/events', { headers: { host: 'attacker.example:8788' } });
  assert.equal(rebound.status, 403);
  assert.equal(JSON.parse(rebound.body).error.code, 'host-not-allowed');
  for (const host of ['localhost:8788', 'app.localhost', '[::1]:8788', '10.0.0.5:8788']) {
    assert.equal((await fetchText('/_perimeter/api/functions', { headers: { host } })).status, 200, host);
  }
});

test('api/events: filters, paging by id, newest first, bad input', async () => {
  const all = await fetchJson('/_perimeter/api/events');
  assert.equal(all.events.length, SEED.length);
  assert.equal(all.lastId, store.lastId());
  const ids = all.events.map((item: any) => item.id);
  assert.deepEqual(
    ids,
    [...ids].sort((a, b) => b - a),
  );
  assert.deepEqual(all.events[0].event, SEED.at(-1));

  const catalog = await fetchJson('/_perimeter/api/events?function=catalog');
  assert.deepEqual(
    catalog.events.map((item: any) => item.event.target),
    ['POST http://127.0.0.1:9/collect', 'GET https://cdn.example.net/list'],
  );
  const app = await fetchJson('/_perimeter/api/events?package=app&action=blocked');
  assert.deepEqual(
    app.events.map((item: any) => item.event.target),
    ['GET http://127.0.0.1:9/orders/1'],
  );
  const page = await fetchJson(`/_perimeter/api/events?limit=2&beforeId=${ids[1]}`);
  assert.deepEqual(
    page.events.map((item: any) => item.id),
    ids.slice(2, 4),
  );
  const after = await fetchJson(`/_perimeter/api/events?afterId=${ids[2]}`);
  assert.deepEqual(
    after.events.map((item: any) => item.id),
    ids.slice(0, 2),
  );

  const bad = await fetchText('/_perimeter/api/events?limit=ten');
  assert.equal(bad.status, 400);
  assert.match(JSON.parse(bad.body).error.message, /limit must be a whole number/);
});

test('api/summary and api/functions are the store’s', async () => {
  assert.deepEqual(await fetchJson('/_perimeter/api/summary'), store.summary());
  assert.deepEqual(await fetchJson('/_perimeter/api/summary?function=catalog'), store.summary({ function: 'catalog' }));
  // One event, plus a repeat summary standing for 2 more occurrences (docs/events.md#repeats).
  assert.equal((await fetchJson('/_perimeter/api/summary?function=catalog')).alerted, 3);
  assert.deepEqual(await fetchJson('/_perimeter/api/functions'), { functions: store.functions() });
});

test('api/functions/<name>/suggestion is what `perimeter learn` says for the same events and policy', async () => {
  const suggestion = await fetchJson('/_perimeter/api/functions/checkout/suggestion');
  assert.equal(suggestion.function, 'checkout');
  assert.deepEqual(suggestion.policy, POLICY);
  assert.equal(suggestion.violations, 3);

  const policyFile = join(dir, 'perimeter.json');
  writeFileSync(policyFile, JSON.stringify(POLICY));
  const learn = spawnSync(
    NODE,
    [BIN, 'learn', '--events', store.file, '--function', 'checkout', '--policy', policyFile, '--json'],
    { encoding: 'utf8' },
  );
  assert.equal(learn.status, 0, learn.stderr);
  const expected = JSON.parse(learn.stdout);
  assert.deepEqual(suggestion.suggested, expected.policy);
  assert.deepEqual(suggestion.changes, expected.changes);
  assert.deepEqual(suggestion.explanations, expected.explanations);
  assert.ok(suggestion.changes.length > 0);

  // Known only from events (no record): suggested against an empty alert-mode policy, and said so.
  const catalog = await fetchJson('/_perimeter/api/functions/catalog/suggestion');
  assert.equal(catalog.policyFile, null);
  assert.match(catalog.notes.join('\n'), /no record of this function/);
  const unknown = await fetchText('/_perimeter/api/functions/nope/suggestion');
  assert.equal(unknown.status, 404);
  assert.equal(JSON.parse(unknown.body).error.code, 'unknown-function');
});

/** Reads an SSE response until `done` says so; returns the messages parsed so far. */
function readStream(
  path: string,
  headers: Record<string, string>,
  done: (messages: Array<{ event: string; id?: string; data: any }>) => boolean,
): Promise<Array<{ event: string; id?: string; data: any }>> {
  return new Promise((resolve, reject) => {
    const messages: Array<{ event: string; id?: string; data: any }> = [];
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`stream timed out; got ${JSON.stringify(messages.map((m) => m.event))}`));
    }, 5000);
    const req = get(`${base}${path}`, { headers }, (res) => {
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/event-stream/);
      let buffer = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          const fields = Object.fromEntries(
            block
              .split('\n')
              .filter((line) => !line.startsWith(':') && line.includes(': '))
              .map((line) => [line.slice(0, line.indexOf(': ')), line.slice(line.indexOf(': ') + 2)]),
          );
          if (fields.event)
            messages.push({ event: fields.event, id: fields.id, data: JSON.parse(fields.data ?? 'null') });
        }
        if (done(messages)) {
          clearTimeout(timer);
          req.destroy();
          resolve(messages);
        }
      });
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
  });
}

test('api/stream pushes functions, the summary, and new events (filtered) as they are stored', async () => {
  const lastId = store.lastId();
  const fresh = event({ function: 'catalog', action: 'alerted', target: 'GET https://live.example.com/' });
  const stream = readStream(`/_perimeter/api/stream?afterId=${lastId}&function=catalog`, {}, (messages) => {
    if (messages.length === 2) {
      // Connected (functions and summary came first): now store what the stream should deliver.
      store.append(event({ function: 'checkout', target: 'GET http://127.0.0.1:9/not-catalog' }));
      store.append(fresh);
      store.flush();
    }
    return messages.some((message) => message.event === 'events');
  });
  const messages = await stream;
  assert.deepEqual(
    messages.slice(0, 2).map((message) => message.event),
    ['functions', 'summary'],
  );
  assert.deepEqual(messages[0]!.data, store.functions());
  assert.equal(messages[1]!.data.alerted, 3, 'the summary of the stream’s function, as it was on connecting');
  assert.deepEqual(
    messages[1]!.data.functions.map((f: any) => f.name),
    ['catalog'],
  );
  const pushed = messages.find((message) => message.event === 'events')!;
  assert.deepEqual(
    pushed.data.map((item: any) => item.event),
    [fresh],
  );
  assert.equal(pushed.id, String(store.lastId()), 'the id is the cursor: a reconnect resumes after it');

  // A reconnecting EventSource sends Last-Event-ID; the stream resumes after it.
  const resumed = await readStream(`/_perimeter/api/stream?afterId=0`, { 'last-event-id': String(lastId) }, (m) =>
    m.some((message) => message.event === 'events'),
  );
  const replay = resumed.find((message) => message.event === 'events')!;
  assert.deepEqual(
    replay.data.map((item: any) => item.id),
    [lastId + 1, lastId + 2],
  );
});

test('close() ends open streams', async () => {
  const local = createDashboard({ store, pollMs: 20 });
  const localServer = createServer((req, res) => {
    local.handle(req, res);
  });
  await new Promise<void>((resolve) => localServer.listen(0, '127.0.0.1', resolve));
  const port = (localServer.address() as AddressInfo).port;
  const ended = new Promise<void>((resolve, reject) => {
    get(`http://127.0.0.1:${port}/_perimeter/api/stream`, (res) => {
      res.once('data', () => local.close());
      res.on('end', resolve);
      res.on('error', reject);
    });
  });
  await ended;
  await new Promise((resolve) => localServer.close(resolve));
});

test('missing built assets: ERR_PERIMETER_DASHBOARD_ASSETS with the fix', () => {
  const empty = mkdtempSync(join(tmpdir(), 'perimeter-no-assets-'));
  try {
    assert.throws(
      () => createDashboard({ store, assetsDir: empty }),
      (error: any) =>
        error.code === 'ERR_PERIMETER_DASHBOARD_ASSETS' &&
        /npm run build/.test(error.hint) &&
        /index\.html/.test(error.message),
    );
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('perimeter dashboard: clear errors for a missing or corrupt store and a port in use', async () => {
  const run = (args: string[]) => spawnSync(NODE, [BIN, 'dashboard', ...args], { encoding: 'utf8', timeout: 20_000 });
  const missing = run(['--db', join(dir, 'missing.db'), '--port', '0']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /ERR_PERIMETER_STORE_OPEN: The event store does not exist/);

  const corrupt = join(dir, 'corrupt.db');
  writeFileSync(corrupt, 'this is not a database\n'.repeat(100));
  const bad = run(['--db', corrupt, '--port', '0']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /ERR_PERIMETER_STORE_CORRUPT/);

  const port = run(['--db', store.file, '--port', 'eighty']);
  assert.notEqual(port.status, 0);
  assert.match(port.stderr, /--port/);

  const taken = (server.address() as AddressInfo).port;
  const inUse = run(['--db', store.file, '--port', String(taken)]);
  assert.equal(inUse.status, 2);
  assert.match(inUse.stderr, new RegExp(`ERR_PERIMETER_DEV_PORT_IN_USE: Port ${taken} on 127.0.0.1 is already in use`));
  assert.match(inUse.stderr, /hint: pass --port/);
});

test('perimeter dashboard serves the store read-only and stops cleanly on SIGTERM', async () => {
  const child = spawn(NODE, [BIN, 'dashboard', '--db', store.file, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /http:\/\/127\.0\.0\.1:\d+\/_perimeter\//.exec(out);
      if (match) resolve(match[0]);
    });
    child.on('exit', () => reject(new Error(`exited before printing its URL: ${out}`)));
  });
  const root = await new Promise<Reply>((resolve, reject) => {
    get(new URL('/', url), (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: '' }));
    }).on('error', reject);
  });
  assert.equal(root.status, 302);
  assert.equal(root.headers.location, '/_perimeter/');
  const events = await new Promise<any>((resolve, reject) => {
    get(new URL('api/events', url), (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(JSON.parse(body)));
    }).on('error', reject);
  });
  assert.equal(events.lastId, store.lastId());
  child.kill('SIGTERM');
  assert.equal(await exited, 0);
});
