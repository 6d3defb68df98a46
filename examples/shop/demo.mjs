#!/usr/bin/env node
// Perimeter's shop demo: three functions, one compromised dependency, every function its own perimeter.
//
//   node examples/shop/demo.mjs                  run the shop under `perimeter dev`, drive it, tell the story
//   node examples/shop/demo.mjs --once           the same, and exit after the story even on a terminal
//   node examples/shop/demo.mjs --keep           stay up after the story (dashboard live) until Ctrl-C
//   node examples/shop/demo.mjs --without-perimeter   the same requests in plain node: what the attacker gets
//   node examples/shop/demo.mjs --policy checkout=my.json   run a function under another policy
//
// The shop (perimeter.config.json) is `checkout` (POST /api/checkout, charges through pay-client), `thumbnail`
// (POST /api/thumbnail, writes a PNG under /tmp) and `webhook` (SQS-triggered). All three log through
// log-beacon, whose release 3.1.4 is compromised (node_modules/log-beacon/lib/beacon.js): it reads ~/.npmrc,
// runs `sh -c "curl …"`, and sends the Stripe key to an attacker over HTTP and inside DNS names.
//
// Every server is real and on 127.0.0.1: a fake Stripe, the attacker's HTTP collector and name server, and the
// `perimeter dev` gateway in front of the functions. HOME is a temporary folder with a fake ~/.npmrc, so no
// real secret is ever within reach. The demo checks what each server actually received and what the event
// store recorded, and exits 0 only if the story holds: every legitimate request worked, the attacker got
// nothing, and every attack attempt is in the store as blocked. Anything else is reported and exits 1
// (2: not built, or bad arguments).
//
// Ports: the policies name the fake Stripe at 127.0.0.1:4242 and log-beacon has the attacker at 7666 (HTTP)
// and 7653 (DNS). When one of them is taken, or --policy is given, the demo runs a temporary copy of the shop
// with the ports rewritten instead of the shop itself. The gateway takes 8788, or any free port.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  mask,
  portIsFree,
  randomBase62,
  runNode,
  safeJson,
  startAttackerDns,
  startAttackerHttp,
  startStripe,
  storyteller,
} from '../lib/demo-kit.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '../..');
const SHOWN_DIR = path.relative(process.cwd(), HERE) || '.';
const STRIPE_PORT = 4242;
const ATTACKER_HTTP_PORT = 7666;
const ATTACKER_DNS_PORT = 7653;
const GATEWAY_PORT = 8788;
const EVIL_PACKAGE = 'log-beacon';
const FUNCTIONS = ['checkout', 'thumbnail', 'webhook'];
const EVENTS_DEADLINE_MS = 5000;
const CHILD_TIMEOUT_MS = 20_000;

const ORDERS = [
  { id: 'A-1001', amount: 4200, currency: 'eur', source: 'tok_visa' },
  { id: 'A-1002', amount: 1999, currency: 'eur', source: 'tok_mastercard' },
  { id: 'A-1003', amount: 12900, currency: 'eur', source: 'tok_visa' },
];
const THUMBNAIL = { sku: 'mug-01', size: 64 };
// The third message arrived cut off: the webhook must hand exactly that one back to the queue.
const WEBHOOK_MESSAGES = [
  { id: 'msg-1', body: JSON.stringify({ type: 'charge.succeeded', data: { order: 'A-1001' } }) },
  { id: 'msg-2', body: JSON.stringify({ type: 'charge.refunded', data: { order: 'A-1002' } }) },
  { id: 'msg-3', body: '{"type":"charge.succeeded","data":{"ord' },
];
const EXPECTED_FAILURES = ['msg-3'];

const { paint, say, expect, problems, stdoutIsOpen } = storyteller();

main().then(
  (code) => exit(code),
  (error) => {
    // Perimeter's own coded errors carry the file and a hint: their message is the whole story.
    const coded = typeof error?.code === 'string' && error.code.startsWith('ERR_PERIMETER');
    say(paint.red(`demo failed: ${coded ? `${error.code}: ${error.message}` : (error?.stack ?? error)}`));
    exit(1);
  },
);

/** Exits once stdout has drained: keep-alive sockets or a stray timer must never leave CI waiting. */
function exit(code) {
  process.exitCode = code;
  if (!stdoutIsOpen()) process.exit(code);
  process.stdout.write('', () => process.exit(code));
}

async function main() {
  const options = readArguments();
  if (options === null) return 2;
  if (options.help) {
    say(usage());
    return 0;
  }
  if (options.withoutPerimeter) return runWithout(options);
  return runWith(options);
}

// ---------------------------------------------------------------------------------------------------------------
// Arguments

function readArguments() {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      options: {
        once: { type: 'boolean' },
        keep: { type: 'boolean' },
        'without-perimeter': { type: 'boolean' },
        policy: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    say(paint.red(error.message));
    say(usage());
    return null;
  }
  const policies = {};
  for (const item of parsed.values.policy ?? []) {
    const at = item.indexOf('=');
    const name = item.slice(0, at);
    if (at < 1 || !FUNCTIONS.includes(name)) {
      say(paint.red(`--policy ${item}: expected <function>=<file>, function one of ${FUNCTIONS.join(', ')}`));
      return null;
    }
    const file = path.resolve(item.slice(at + 1));
    if (!existsSync(file)) {
      say(paint.red(`--policy ${item}: ${file} does not exist`));
      return null;
    }
    policies[name] = file;
  }
  if (parsed.values.once && parsed.values.keep) {
    say(paint.red('--once and --keep contradict each other: pick one'));
    return null;
  }
  return {
    help: parsed.values.help === true,
    withoutPerimeter: parsed.values['without-perimeter'] === true,
    keep: parsed.values.keep === true || (parsed.values.once !== true && process.stdin.isTTY === true),
    policies,
  };
}

function usage() {
  return [
    'usage: node examples/shop/demo.mjs [--once | --keep] [--policy <function>=<file>]… [--without-perimeter]',
    '',
    '  --once                exit after the story (the default when stdin is not a terminal)',
    '  --keep                stay up after the story, dashboard live, until Ctrl-C (the default on a terminal)',
    '  --policy fn=file      run that function under another policy (e.g. {"mode":"alert"} to watch the attack work)',
    '  --without-perimeter   the same requests in plain node, no guard: what the attacker gets then',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// With Perimeter: the shop under `perimeter dev`

async function runWith(options) {
  const cli = await loadCli();
  if (!cli) return 2;
  const started = Date.now();
  const servers = await startServers();
  const scratch = realpathSync(mkdtempSync(path.join(tmpdir(), 'perimeter-shop-')));
  let dev;
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await dev?.close().catch(() => {});
    await servers.close();
    rmSync(scratch, { recursive: true, force: true });
  };
  // Ctrl-C while the story is still being told stops everything at once (exit 130, as a shell expects); once
  // the shop is live, it is the way to stop it.
  let live = false;
  const stopped = new Promise((resolve) => {
    const stop = () => {
      if (live) return resolve();
      cleanup().finally(() => exit(130));
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  try {
    const place = preparePlace({ scratch, servers, policies: options.policies });
    const home = makeHome(scratch);
    introduce({ place, servers, home, mode: 'perimeter dev' });

    const host = new HostOutput();
    dev = await startShop(cli, { place, home, scratch, host, watch: options.keep });
    const ready = checkFunctions(dev, place);

    const results = ready ? await drive(guardedCalls(dev)) : null;
    const events = ready ? await attackEvents(dev, { started, servers, home }) : { all: [], missing: [] };
    const seen = { charges: servers.stripe.take(), posts: servers.attacker.take(), queries: servers.dns.take() };

    if (ready) {
      tellShop({ results, seen, place });
      tellAttacker({ seen, place, home, guarded: true });
      tellBlocked({ events, home, place });
    }
    const dashboard = await checkDashboard(dev);
    say();
    say(`${paint.bold('Dashboard')}  ${paint.cyan(dev.dashboardUrl)}${dashboard}`);
    const code = conclude({ guarded: true });

    if (!options.keep) {
      say(paint.dim('(exiting: --once, or not on a terminal; --keep stays up with the dashboard live)'));
      await cleanup();
      return code;
    }
    say();
    say(
      `${paint.bold('The shop keeps running')} at ${dev.url}; open the dashboard above. ${paint.dim('Ctrl-C to stop.')}`,
    );
    say(
      paint.dim(
        `  try: curl -s -X POST ${dev.url}/api/checkout -H 'content-type: application/json' -d '{"id":"A-2001","amount":500}'`,
      ),
    );
    const url = dev.url === `http://127.0.0.1:${GATEWAY_PORT}` ? '' : ` --url ${dev.url}`;
    say(paint.dim(`       npx perimeter invoke webhook --sample sqs${url}`));
    say(paint.dim('  live lines from perimeter dev follow:'));
    host.live = true;
    live = true;
    await stopped;
    say();
    say(paint.dim('stopping the shop…'));
    await cleanup();
    return code;
  } catch (error) {
    await cleanup();
    throw error;
  }
}

async function loadCli() {
  let cli;
  try {
    cli = await import('@perimeter/cli');
  } catch (error) {
    cli = { error };
  }
  if (typeof cli.startDev === 'function') return cli;
  say(paint.red('Perimeter is not installed and built yet (no startDev in @perimeter/cli).'));
  if (cli.error) say(paint.dim(`  ${String(cli.error.message ?? cli.error).split('\n')[0]}`));
  say(`Run ${paint.bold('npm run demo')} from ${REPO_ROOT}: it runs npm install and npm run build, then this demo.`);
  return null;
}

/** The terminal lines of `perimeter dev`: kept quiet while the demo drives the shop, passed through when live. */
class HostOutput extends Writable {
  live = false;
  _write(chunk, _encoding, done) {
    if (this.live && stdoutIsOpen()) process.stdout.write(chunk);
    done();
  }
}

async function startShop(cli, { place, home, scratch, host, watch }) {
  const env = { ...process.env, HOME: home.dir };
  if (paint.enabled) env.FORCE_COLOR = '1';
  const base = { dir: place.dir, watch, output: host, env };
  const port = (await portIsFree(GATEWAY_PORT)) ? GATEWAY_PORT : 0;
  const attempts = [
    { ...base, port },
    // The port went between the probe and the listen, or another `perimeter dev` holds the shop's store.
    { ...base, port: 0, db: path.join(scratch, 'events.db') },
  ];
  for (const [index, attempt] of attempts.entries()) {
    try {
      const dev = await cli.startDev(attempt);
      if (attempt.db) {
        say(paint.yellow(`  (the shop's event store or port ${GATEWAY_PORT} was busy: using ${attempt.db})`));
      }
      return dev;
    } catch (error) {
      const retryable = error?.code === 'ERR_PERIMETER_DEV_PORT_IN_USE' || error?.code === 'ERR_PERIMETER_STORE_LOCKED';
      if (!retryable || index === attempts.length - 1) throw error;
    }
  }
  throw new Error('unreachable');
}

/** Every function must be up; one that is not (a broken policy, say) is the first thing to tell. */
function checkFunctions(dev, place) {
  let ready = true;
  for (const name of FUNCTIONS) {
    const record = dev.functions().find((fn) => fn.name === name);
    const given = place.policies[name] ? ` (policy given with --policy: ${place.policies[name]})` : '';
    if (!record) {
      expect(false, `perimeter dev found no function "${name}" in the shop`);
      ready = false;
    } else if (record.status !== 'ready') {
      const why = firstLines(record.error ?? 'no reason given', 4);
      expect(false, `${name} did not start (${record.status})${given}: ${why}`);
      ready = false;
    }
  }
  if (!ready) {
    say();
    say(paint.red('The shop did not start completely, so no request was sent; what went wrong is below.'));
  }
  return ready;
}

/** Requests go through the gateway as real HTTP; the SQS batch goes in through `invoke`, as a queue would. */
function guardedCalls(dev) {
  return {
    async http(route, body) {
      const [method, pathname] = route.split(' ');
      try {
        const response = await fetch(`${dev.url}${pathname}`, {
          method,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { statusCode: response.status, body: await response.text() };
      } catch (error) {
        return { statusCode: 0, body: '', error: `the gateway did not answer: ${error.message}` };
      }
    },
    async event(name, event) {
      const outcome = await dev.invoke(name, event);
      return { result: outcome.result, error: outcome.error };
    },
  };
}

/** Waits until every attack attempt expected from log-beacon is in the store (or the deadline passes). */
async function attackEvents(dev, { started, servers, home }) {
  const expected = expectedAttempts(servers, home);
  const deadline = Date.now() + EVENTS_DEADLINE_MS;
  for (;;) {
    dev.store.flush();
    const all = dev.store.query({ sinceMs: started, order: 'asc', limit: 10_000 }).map((row) => row.event);
    const missing = expected.filter((want) => !all.some((event) => want.matches(event)));
    if (missing.length === 0 || Date.now() > deadline) return { all, expected, missing };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** What log-beacon tries in each function (lib/beacon.js): each must show up as a blocked event. */
function expectedAttempts(servers, home) {
  const attempts = [];
  for (const fn of FUNCTIONS) {
    const of = (capability, what, test) => ({
      function: fn,
      capability,
      what,
      matches: (event) =>
        event.function === fn &&
        event.package === EVIL_PACKAGE &&
        event.capability === capability &&
        typeof event.target === 'string' &&
        test(event.target),
    });
    attempts.push(of('fs', 'read ~/.npmrc', (target) => target === `read ${home.npmrc}`));
    attempts.push(of('process', 'sh -c "curl …"', (target) => /\bcurl\b/.test(target)));
    attempts.push(
      of('network', 'POST to the attacker', (target) => target.startsWith(`POST ${servers.attacker.url}/`)),
    );
    attempts.push(
      of(
        'network',
        'DNS name under attacker.test',
        (target) => target.startsWith('dns:') && target.endsWith('.attacker.test'),
      ),
    );
    if (fn === 'checkout') attempts.push(of('env', 'read STRIPE_API_KEY', (target) => target === 'STRIPE_API_KEY'));
  }
  return attempts;
}

async function checkDashboard(dev) {
  try {
    const response = await fetch(dev.dashboardUrl);
    const type = response.headers.get('content-type') ?? '';
    await response.arrayBuffer();
    if (expect(response.ok && type.includes('html'), `the dashboard answered HTTP ${response.status} (${type})`)) {
      return paint.dim('  (answering)');
    }
    return paint.red(`  (HTTP ${response.status})`);
  } catch (error) {
    expect(false, `the dashboard did not answer: ${error.message}`);
    return paint.red('  (not answering)');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Without Perimeter: the same handlers in plain node, for comparison

async function runWithout(options) {
  const servers = await startServers();
  const scratch = realpathSync(mkdtempSync(path.join(tmpdir(), 'perimeter-shop-')));
  try {
    const place = preparePlace({ scratch, servers, policies: options.policies });
    const home = makeHome(scratch);
    introduce({ place, servers, home, mode: 'plain node, no guard' });
    const results = await drive(unguardedCalls(place, home));
    const seen = { charges: servers.stripe.take(), posts: servers.attacker.take(), queries: servers.dns.take() };
    tellShop({ results, seen, place });
    tellAttacker({ seen, place, home, guarded: false });
    return conclude({ guarded: false });
  } finally {
    await servers.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Each call runs the function's handler in a fresh plain `node` (no preload), with the environment
 * `perimeter dev` would give it: the platform would run it so, minus the guard.
 */
function unguardedCalls(place, home) {
  const config = JSON.parse(readFileSync(path.join(place.dir, 'perimeter.config.json'), 'utf8'));
  const call = async (name, event) => {
    const fn = config.functions[name];
    const handler = path.join(place.dir, fn.handler);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: home.dir,
      NODE_ENV: 'development',
      ...config.env,
      ...fn.env,
      AWS_LAMBDA_FUNCTION_NAME: name,
    };
    const script = [
      `const { handler } = await import(${JSON.stringify(pathToFileURL(handler).href)});`,
      `const event = JSON.parse(process.argv[1]);`,
      `const context = { functionName: ${JSON.stringify(name)}, awsRequestId: crypto.randomUUID() };`,
      `let out;`,
      `try { out = { result: await handler(event, context) }; } catch (error) { out = { error: String(error?.stack ?? error) }; }`,
      `process.stdout.write('\\n@@result@@' + JSON.stringify(out) + '\\n');`,
    ].join('\n');
    const run = await runNode(['--input-type=module', '-e', script, JSON.stringify(event)], {
      cwd: path.dirname(handler),
      env,
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    const line = run.stdout.split('\n').find((text) => text.startsWith('@@result@@'));
    if (!line) {
      return { error: `the function process printed no result (exit ${run.code}): ${firstLines(run.stderr, 3)}` };
    }
    return JSON.parse(line.slice('@@result@@'.length));
  };
  return {
    async http(route, body) {
      const outcome = await call(routeFunction(route), apiGatewayEvent(route, body));
      if (outcome.error) return { statusCode: 0, body: '', error: outcome.error };
      return { statusCode: outcome.result?.statusCode, body: outcome.result?.body ?? '' };
    },
    event: (name, event) => call(name, event),
  };
}

function routeFunction(route) {
  return route === 'POST /api/checkout' ? 'checkout' : 'thumbnail';
}

/** An API Gateway HTTP API (v2) event, as the gateway of `perimeter dev` builds it. */
function apiGatewayEvent(route, body) {
  const [method, rawPath] = route.split(' ');
  return {
    version: '2.0',
    routeKey: route,
    rawPath,
    rawQueryString: '',
    headers: { 'content-type': 'application/json', host: '127.0.0.1' },
    requestContext: { http: { method, path: rawPath, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1' } },
    body: JSON.stringify(body),
    isBase64Encoded: false,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The scenario, the same for both runs

async function drive(calls) {
  const checkouts = [];
  for (const order of ORDERS) checkouts.push({ order, response: await calls.http('POST /api/checkout', order) });
  const thumbnail = await calls.http('POST /api/thumbnail', THUMBNAIL);
  const webhook = await calls.event('webhook', sqsBatch());
  return { checkouts, thumbnail, webhook };
}

function sqsBatch() {
  const now = Date.now();
  return {
    Records: WEBHOOK_MESSAGES.map((message, index) => ({
      messageId: message.id,
      receiptHandle: `AQEB${randomBytes(12).toString('base64url')}`,
      body: message.body,
      attributes: {
        ApproximateReceiveCount: '1',
        SentTimestamp: String(now - 1000 + index),
        SenderId: 'AIDAIENQZJOLO23YVJ4VO',
        ApproximateFirstReceiveTimestamp: String(now),
      },
      messageAttributes: {},
      md5OfBody: '',
      eventSource: 'aws:sqs',
      eventSourceARN: 'arn:aws:sqs:eu-west-1:000000000000:shop-payments-webhooks',
      awsRegion: 'eu-west-1',
    })),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The story

function introduce({ place, servers, home, mode }) {
  say(paint.bold('Perimeter shop demo') + paint.dim(' — three functions, one compromised dependency'));
  say();
  say(`  ${paint.bold('shop')}        ${place.shown}  ${paint.dim(`(${mode})`)}`);
  say('              checkout  POST /api/checkout   charges a card through pay-client (fake Stripe)');
  say('              thumbnail POST /api/thumbnail  writes a PNG under /tmp/perimeter-shop, spawns nothing');
  say('              webhook   SQS trigger          processes payment events, returns batchItemFailures');
  say(
    `  ${paint.bold('dependency')}  ${EVIL_PACKAGE}@3.1.4, used by all three, ${paint.red('compromised')}: reads ~/.npmrc, runs sh -c "curl …",`,
  );
  say('              POSTs the environment to an attacker and hides the Stripe key in DNS lookups');
  say(`  ${paint.bold('policies')}    functions/*/perimeter.json, block mode, least privilege${policyNote(place)}`);
  say(
    `  ${paint.bold('servers')}     fake Stripe ${servers.stripe.url}, attacker ${servers.attacker.url} and DNS ${servers.dns.address}` +
      paint.dim(' (loopback only)'),
  );
  say(`  ${paint.bold('HOME')}        ${home.dir} ${paint.dim('(a fake ~/.npmrc; your real one is never in reach)')}`);
  if (place.note) say(`  ${paint.yellow(place.note)}`);
}

function policyNote(place) {
  const custom = Object.keys(place.policies);
  return custom.length ? paint.yellow(`; ${custom.map((name) => `${name}: ${place.policies[name]}`).join(', ')}`) : '';
}

function tellShop({ results, seen, place }) {
  say();
  say(paint.bold('What the shop did'));
  const key = place.stripeKey;

  const charged = [];
  for (const { order, response } of results.checkouts) {
    const body = safeJson(response.body);
    const ok = response.statusCode === 200 && typeof body?.charged === 'string';
    if (
      expect(ok, `checkout ${order.id} failed: ${response.error ?? `HTTP ${response.statusCode} ${response.body}`}`)
    ) {
      charged.push(`${order.id} ${money(order)} ${paint.dim(body.charged)}`);
    }
  }
  const withKey = seen.charges.filter((charge) => charge.authorization === `Bearer ${key}`);
  expect(
    withKey.length === ORDERS.length,
    `the fake Stripe saw ${withKey.length} charge(s) with the shop's key, not ${ORDERS.length}`,
  );
  mark(
    charged.length === ORDERS.length && withKey.length === ORDERS.length,
    `checkout   ${charged.length} of ${ORDERS.length} orders charged: ${charged.join(', ')}`,
  );

  const thumb = safeJson(results.thumbnail.body);
  const picture = thumb?.file ? readPng(thumb.file) : null;
  const thumbOk =
    results.thumbnail.statusCode === 201 && picture?.width === THUMBNAIL.size && picture?.height === THUMBNAIL.size;
  expect(
    thumbOk,
    `thumbnail failed: ${results.thumbnail.error ?? `HTTP ${results.thumbnail.statusCode} ${results.thumbnail.body}`}${thumb?.file && !picture ? ` (no PNG at ${thumb.file})` : ''}`,
  );
  mark(
    thumbOk,
    thumbOk
      ? `thumbnail  wrote ${thumb.file} (${picture.width}×${picture.height} PNG, ${thumb.bytes} bytes)`
      : 'thumbnail  wrote nothing',
  );

  const failures = results.webhook.result?.batchItemFailures;
  const failed = Array.isArray(failures) ? failures.map((item) => item?.itemIdentifier) : null;
  const webhookOk = !results.webhook.error && JSON.stringify(failed) === JSON.stringify(EXPECTED_FAILURES);
  expect(
    webhookOk,
    `webhook: expected batchItemFailures ${JSON.stringify(EXPECTED_FAILURES)}, got ${results.webhook.error ?? JSON.stringify(results.webhook.result)}`,
  );
  mark(
    webhookOk,
    `webhook    ${WEBHOOK_MESSAGES.length} SQS records: ${WEBHOOK_MESSAGES.length - EXPECTED_FAILURES.length} processed, ` +
      `${EXPECTED_FAILURES.join(', ')} (cut off in transit) handed back in batchItemFailures`,
  );
}

function tellAttacker({ seen, place, home, guarded }) {
  say();
  say(paint.bold('What the attacker received'));
  const secrets = [place.stripeKey, home.token];
  if (guarded) {
    const posts = counted(seen.posts.map((post) => `${post.method} ${mask(post.url, secrets)}`));
    const queries = counted(seen.queries.map((name) => shorten(mask(name, secrets), 80)));
    if (expect(posts.length === 0, `the attacker's HTTP collector received ${posts.join(', ')}`)) {
      mark(true, `HTTP collector  nothing ${paint.dim(`(${place.attackerUrl})`)}`);
    }
    for (const post of posts) mark(false, `HTTP collector  ${post}`);
    if (expect(queries.length === 0, `the attacker's name server was asked ${seen.queries.length} time(s)`)) {
      mark(true, `name server     no query ${paint.dim(`(${place.dnsAddress})`)}`);
    }
    for (const query of queries) mark(false, `name server     asked for ${query}`);
    return;
  }
  // Without the guard the attack has to land, or the guarded run proved nothing.
  const got = (secret) =>
    seen.posts.some((post) => post.body.includes(secret) || post.url.includes(encodeURIComponent(secret)));
  const keyByHttp = got(place.stripeKey);
  const tokenBy = [
    seen.posts.some((post) => post.url !== '/npmrc' && post.body.includes(home.token)) && 'HTTP',
    seen.posts.some((post) => post.url === '/npmrc' && post.body.includes(home.token)) && 'curl',
  ].filter(Boolean);
  const keyByDns = seen.queries.some((name) => decodeDnsSecret(name).includes(place.stripeKey));
  if (expect(keyByHttp, `without the guard the attacker did not get STRIPE_API_KEY over HTTP (the attack is broken)`)) {
    mark(false, `STRIPE_API_KEY ${paint.red(mask(place.stripeKey, secrets))} over HTTP`);
  }
  if (expect(tokenBy.length > 0, `without the guard the attacker did not get the npm token (the attack is broken)`)) {
    mark(
      false,
      `npm token      ${paint.red(mask(home.token, secrets))} from ~/.npmrc, through ${tokenBy.join(' and ')}`,
    );
  }
  if (expect(keyByDns, `without the guard the attacker's name server did not get the key (the attack is broken)`)) {
    const sample = seen.queries.find((name) => decodeDnsSecret(name).includes(place.stripeKey));
    const labels = sample.split('.');
    const shown = `${labels[0].slice(0, 16)}….${labels.slice(-4).join('.')}`;
    mark(false, `STRIPE_API_KEY in a DNS lookup: ${paint.red(shown)} ${paint.dim('(the key in hex)')}`);
  }
  say(
    paint.dim(
      `   (${plural(seen.posts.length, 'HTTP request')} and ${plural(seen.queries.length, 'DNS query')} in all)`,
    ),
  );
}

/**
 * The store's account of this run, grouped by function and package: every attempt, with what Perimeter did
 * when it was not a block (a policy in alert mode lets it through and says so).
 */
function tellBlocked({ events, home, place }) {
  const evil = events.all.filter((event) => event.package === EVIL_PACKAGE);
  const letThrough = evil.filter((event) => event.action !== 'blocked');
  say();
  say(
    paint.bold(letThrough.length ? 'What Perimeter saw' : 'What Perimeter blocked') +
      paint.dim(`  (from the event store: ${shownStore(place)})`),
  );
  const groups = new Map();
  let blocked = 0;
  for (const event of events.all) {
    const weight = 1 + (Number(event.repeats) || 0);
    if (event.action === 'blocked') blocked += weight;
    const key = `${event.function}\u0000${event.package}`;
    if (!groups.has(key)) groups.set(key, { function: event.function, package: event.package, rows: new Map() });
    const rows = groups.get(key).rows;
    const row = `${event.capability}\u0000${event.target}\u0000${event.action}`;
    rows.set(row, (rows.get(row) ?? 0) + weight);
  }
  const width = Math.max(...FUNCTIONS.map((name) => name.length));
  for (const group of [...groups.values()].sort((a, b) => order(a.function) - order(b.function))) {
    let first = true;
    for (const [row, count] of [...group.rows].sort()) {
      const [capability, target, action] = row.split('\u0000');
      const who = first
        ? `${group.function.padEnd(width)}  ${paint.bold(group.package)}`
        : ' '.repeat(width + 2 + group.package.length);
      first = false;
      const times = count > 1 ? paint.dim(` ×${count}`) : '';
      const verdict = action === 'blocked' ? '' : paint.red(`  ${action.toUpperCase()}, let through`);
      say(`   ${who}  ${capability.padEnd(7)}  ${shorten(homeless(target, home), 78)}${times}${verdict}`);
    }
  }
  for (const want of events.missing) {
    expect(false, `no event in the store for ${want.function}: ${EVIL_PACKAGE} ${want.what}`);
    mark(false, `${want.function}: ${want.what} is not in the store`);
  }
  const slipped = counted(letThrough.map((event) => `${event.function}: ${event.capability} ${event.action}`));
  if (slipped.length) {
    expect(false, `${EVIL_PACKAGE}'s attempts were let through, not blocked: ${slipped.join(', ')}`);
  }
  const stored = events.all.map((event) => JSON.stringify(event)).join('\n');
  expect(
    ![place.stripeKey, home.token].some((secret) => containsSecret(stored, secret)),
    'a secret appears in clear (or hex) in the stored events',
  );
  const others = events.all.length - evil.length;
  say(
    `   ${paint.bold(String(blocked))} attempt(s) blocked, ` +
      (letThrough.length === 0 ? paint.green('none let through') : paint.red(`${letThrough.length} let through`)) +
      (others
        ? paint.yellow(`; ${others} event(s) from the shop's own code or pay-client (listed above)`)
        : paint.dim("; not one event from the shop's own code or pay-client: the policies fit")),
  );
}

function conclude({ guarded }) {
  say();
  if (problems.length > 0) {
    say(paint.red(paint.bold('The demo did not go as expected:')));
    for (const problem of problems) say(paint.red(`  - ${problem.replaceAll('\n', '\n    ')}`));
    say();
    return 1;
  }
  if (guarded) {
    say(
      paint.bold('Same shop, same compromised dependency, no code change: ') +
        paint.green(paint.bold('every order charged, every way out blocked.')),
    );
  } else {
    say(
      paint.bold('Without Perimeter the shop works just the same, ') +
        paint.red(paint.bold('and the attacker has the Stripe key and the npm token.')),
    );
    say(paint.dim(`Now run it with the guard: node ${path.join(SHOWN_DIR, 'demo.mjs')}`));
  }
  return 0;
}

function mark(ok, text) {
  say(`   ${ok ? paint.green('✔') : paint.red('✘')} ${text}`);
}

function order(name) {
  const index = FUNCTIONS.indexOf(name);
  return index === -1 ? FUNCTIONS.length : index;
}

function shownStore(place) {
  const file = path.join(place.dir, '.perimeter', 'events.db');
  return place.copied ? file : path.relative(process.cwd(), file) || file;
}

// ---------------------------------------------------------------------------------------------------------------
// Setup: where the shop runs, the fake HOME

/**
 * The shop itself when its ports are free and no policy is overridden; otherwise a copy in `scratch` whose
 * config, checkout policy and log-beacon endpoints name the ports actually in use (an attacker bakes its
 * addresses into the release; reading them from the environment would itself be something the guard reports).
 */
function preparePlace({ scratch, servers, policies }) {
  const config = JSON.parse(readFileSync(path.join(HERE, 'perimeter.config.json'), 'utf8'));
  const stripeKey = config.functions.checkout.env.STRIPE_API_KEY;
  const moved =
    servers.stripe.port !== STRIPE_PORT ||
    servers.attacker.port !== ATTACKER_HTTP_PORT ||
    servers.dns.port !== ATTACKER_DNS_PORT;
  const common = {
    stripeKey,
    policies,
    attackerUrl: servers.attacker.url,
    dnsAddress: servers.dns.address,
  };
  if (!moved && Object.keys(policies).length === 0) {
    return { ...common, dir: HERE, shown: SHOWN_DIR, copied: false };
  }
  const dir = path.join(scratch, 'shop');
  cpSync(HERE, dir, {
    recursive: true,
    filter: (source) => path.basename(source) !== '.perimeter' && source !== fileURLToPath(import.meta.url),
  });
  const rewrite = (file) => {
    const text = readFileSync(file, 'utf8').replaceAll(`127.0.0.1:${STRIPE_PORT}`, `127.0.0.1:${servers.stripe.port}`);
    writeFileSync(file, text);
  };
  rewrite(path.join(dir, 'perimeter.config.json'));
  for (const name of FUNCTIONS) rewrite(path.join(dir, 'functions', name, 'perimeter.json'));
  writeFileSync(
    path.join(dir, 'node_modules', EVIL_PACKAGE, 'lib', 'endpoints.json'),
    JSON.stringify({ collector: servers.attacker.url, nameServer: servers.dns.address }),
  );
  for (const [name, file] of Object.entries(policies)) {
    writeFileSync(path.join(dir, 'functions', name, 'perimeter.json'), readFileSync(file));
  }
  const why = [];
  const busy = busyPorts(servers);
  if (moved) why.push(busy.length === 1 ? `port ${busy[0]} was busy` : `ports ${busy.join(' and ')} were busy`);
  if (Object.keys(policies).length) why.push('--policy was given');
  return {
    ...common,
    dir,
    shown: dir,
    copied: true,
    note: `(${why.join(' and ')}: running a copy of ${SHOWN_DIR} that knows the ports in use)`,
  };
}

function busyPorts(servers) {
  const busy = [];
  if (servers.stripe.port !== STRIPE_PORT) busy.push(STRIPE_PORT);
  if (servers.attacker.port !== ATTACKER_HTTP_PORT) busy.push(ATTACKER_HTTP_PORT);
  if (servers.dns.port !== ATTACKER_DNS_PORT) busy.push(`${ATTACKER_DNS_PORT}/udp`);
  return busy;
}

/** A throwaway HOME whose ~/.npmrc holds a fake publish token: what the attacker is after, and nothing real. */
function makeHome(scratch) {
  const dir = path.join(scratch, 'home');
  mkdirSync(dir);
  const token = `npm_${randomBase62(36)}`;
  const npmrc = path.join(dir, '.npmrc');
  writeFileSync(npmrc, `//registry.npmjs.org/:_authToken=${token}\n`, { mode: 0o600 });
  return { dir, npmrc, token };
}

// ---------------------------------------------------------------------------------------------------------------
// The loopback servers

async function startServers() {
  const config = JSON.parse(readFileSync(path.join(HERE, 'perimeter.config.json'), 'utf8'));
  const stripe = await startStripe({ key: config.functions.checkout.env.STRIPE_API_KEY, port: STRIPE_PORT });
  const attacker = await startAttackerHttp({ port: ATTACKER_HTTP_PORT });
  const dns = await startAttackerDns({ port: ATTACKER_DNS_PORT });
  return {
    stripe,
    attacker,
    dns,
    close: () => Promise.all([stripe.close(), attacker.close(), dns.close()]),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

/** Width, height of a PNG file (its IHDR), or null when the file is missing or not a PNG. */
function readPng(file) {
  try {
    const bytes = readFileSync(file);
    const signature = '89504e470d0a1a0a';
    if (bytes.length < 24 || bytes.subarray(0, 8).toString('hex') !== signature) return null;
    if (bytes.toString('latin1', 12, 16) !== 'IHDR') return null;
    return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
  } catch {
    return null;
  }
}

/** The secret log-beacon hides in a DNS name: hex labels before `<logger>.t.attacker.test`. */
function decodeDnsSecret(name) {
  const labels = name.split('.');
  const hex = labels.slice(0, Math.max(0, labels.length - 4)).join('');
  return /^[0-9a-f]*$/i.test(hex) ? Buffer.from(hex, 'hex').toString('utf8') : '';
}

function containsSecret(text, secret) {
  const lower = text.toLowerCase();
  return lower.includes(secret.toLowerCase()) || lower.includes(Buffer.from(secret).toString('hex'));
}

function plural(count, noun) {
  return `${count} ${count === 1 ? noun : noun.replace(/y$/, 'ie').concat('s')}`;
}

/** Distinct lines, in first-seen order, with ` ×n` on those seen more than once. */
function counted(lines) {
  const counts = new Map();
  for (const line of lines) counts.set(line, (counts.get(line) ?? 0) + 1);
  return [...counts].map(([line, count]) => (count > 1 ? `${line} ×${count}` : line));
}

function homeless(text, home) {
  return String(text).split(home.dir).join('~');
}

function shorten(text, width) {
  const value = String(text);
  return value.length <= width ? value : `${value.slice(0, width - 1)}…`;
}

function firstLines(text, count) {
  return String(text).trim().split('\n').slice(0, count).join('\n');
}

function money(order) {
  const symbol = { eur: '€', usd: '$', gbp: '£' }[order.currency] ?? '';
  return `${symbol}${(order.amount / 100).toFixed(2)}`;
}
