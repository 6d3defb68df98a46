#!/usr/bin/env node
// Perimeter's quick start: one checkout function, one compromised dependency, run twice.
//
//   1. under the guard:  node --import perimeter/register invoke.mjs   (policy: ./perimeter.json)
//   2. without it:       node invoke.mjs
//
// The dependency (node_modules/charge-kit) charges the card as asked and also tries to send STRIPE_API_KEY to
// an attacker, over HTTP and inside a DNS name. Every server here is a real one on 127.0.0.1: a fake Stripe,
// the attacker's HTTP collector and the attacker's name server. The demo checks what each of them actually
// received and exits 0 only if the story holds: with the guard the charge goes through and the attacker gets
// nothing; without it the attacker gets the key. Anything else is reported and exits 1 (2: not set up).
//
// Both runs happen in a temporary copy of this folder, so that the servers can take whatever ports are free:
// the copy's charge-kit carries the attacker servers' real addresses (an attacker bakes them into the release;
// reading them from the environment would itself be something the guard reports), and the copy's policy the
// fake Stripe's port, which is 4242 as in ./perimeter.json unless that port is taken.
//
// Knobs: PERIMETER_POLICY=file runs step 1 under another policy; NO_COLOR / FORCE_COLOR as usual.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = path.resolve(HERE, '../..');
const POLICY_FILE = path.join(HERE, 'perimeter.json');
// The port the checked-in perimeter.json allows.
const STRIPE_PORT = 4242;
const EVIL_PACKAGE = 'charge-kit';
const CHILD_TIMEOUT_MS = 20_000;

const paint = colours();
// `demo.mjs | head` closes stdout early; the demo still finishes, so its exit code still tells the story.
let stdoutOpen = true;
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error;
  stdoutOpen = false;
});
const say = (line = '') => stdoutOpen && process.stdout.write(`${line}\n`);
const problems = [];
const expect = (condition, message) => {
  if (!condition) problems.push(message);
  return condition;
};

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    say(paint.red(`demo failed: ${error?.stack ?? error}`));
    process.exitCode = 1;
  },
);

async function main() {
  const register = findRegister();
  if (!register) return 2;

  const key = `sk_test_${randomBase62(24)}`;
  const stripe = await startStripe(key);
  const attacker = await startAttackerHttp();
  const nameServer = await startAttackerDns();
  const scratch = mkdtempSync(path.join(tmpdir(), 'perimeter-quickstart-'));
  try {
    const functionDir = copyExample({ scratch, register, attacker, nameServer });
    const policy = choosePolicy(stripe.port, functionDir);
    introduce({ policy, stripe, attacker, nameServer, functionDir });

    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? tmpdir(),
      STRIPE_API_KEY: key,
      STRIPE_API_BASE: `http://127.0.0.1:${stripe.port}`,
      PERIMETER_FUNCTION: 'checkout',
    };

    const eventsFile = path.join(scratch, 'events.jsonl');
    const guardedEnv = { ...env, PERIMETER_EVENTS_FILE: eventsFile };
    if (policy.fromEnvironment) guardedEnv.PERIMETER_POLICY = policy.file;
    const guarded = await invoke(functionDir, ['--import', 'perimeter/register', 'invoke.mjs'], guardedEnv);
    const guardedSeen = { charges: stripe.take(), posts: attacker.take(), queries: nameServer.take() };
    const events = readEvents(eventsFile);
    tellGuarded({ key, run: guarded, seen: guardedSeen, events, attacker });

    const bare = await invoke(functionDir, ['invoke.mjs'], env);
    const bareSeen = { charges: stripe.take(), posts: attacker.take(), queries: nameServer.take() };
    tellUnguarded({ key, run: bare, seen: bareSeen });
  } finally {
    await Promise.all([stripe.close(), attacker.close(), nameServer.close()]);
    rmSync(scratch, { recursive: true, force: true });
  }

  say();
  if (problems.length > 0) {
    say(paint.red(paint.bold('The demo did not go as expected:')));
    for (const problem of problems) say(paint.red(`  - ${problem}`));
    return 1;
  }
  say(
    paint.bold('Same function, same compromised dependency. ') +
      paint.green(paint.bold('With Perimeter the charge went through and the key stayed home.')),
  );
  say(paint.dim('Next: docs/getting-started.md (your own function), docs/policy.md (every rule).'));
  return 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Setup

function findRegister() {
  let resolved;
  try {
    resolved = fileURLToPath(import.meta.resolve('perimeter/register'));
  } catch {
    resolved = undefined;
  }
  if (resolved && existsSync(resolved)) return resolved;
  say(paint.red('Perimeter is not installed and built yet.'));
  say(`Run ${paint.bold('npm run demo')} from ${REPO_ROOT}: it runs npm install and npm run build, then this demo.`);
  return undefined;
}

/**
 * Copies the example into `scratch/checkout` with the attacker's real addresses in charge-kit, and links
 * `node_modules/perimeter` to the built package, so `--import perimeter/register` resolves there as it does here.
 */
function copyExample({ scratch, register, attacker, nameServer }) {
  const functionDir = path.join(scratch, 'checkout');
  cpSync(HERE, functionDir, { recursive: true, filter: (source) => source !== fileURLToPath(import.meta.url) });
  writeFileSync(
    path.join(functionDir, 'node_modules', EVIL_PACKAGE, 'lib', 'collector.json'),
    JSON.stringify({ collector: `http://127.0.0.1:${attacker.port}`, nameServer: `127.0.0.1:${nameServer.port}` }),
  );
  symlinkSync(packageRoot(register), path.join(functionDir, 'node_modules', 'perimeter'), 'dir');
  return functionDir;
}

/** The folder of the package.json that owns `file`. */
function packageRoot(file) {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
  }
  throw new Error(`no package.json above ${file}`);
}

/** The policy of the copy (./perimeter.json, moved to the fake Stripe's port if 4242 was taken), or PERIMETER_POLICY's. */
function choosePolicy(stripePort, functionDir) {
  const chosen = process.env.PERIMETER_POLICY;
  if (chosen) {
    const file = path.resolve(chosen);
    const text = readFileSync(file, 'utf8');
    return { file, shown: file, text, fromEnvironment: true, note: 'from PERIMETER_POLICY' };
  }
  const file = path.join(functionDir, 'perimeter.json');
  const shown = path.relative(process.cwd(), POLICY_FILE) || POLICY_FILE;
  const text = readFileSync(POLICY_FILE, 'utf8');
  if (stripePort === STRIPE_PORT) return { file, shown, text, fromEnvironment: false };
  const moved = text.replaceAll(`127.0.0.1:${STRIPE_PORT}`, `127.0.0.1:${stripePort}`);
  writeFileSync(file, moved);
  return {
    file,
    shown,
    text: moved,
    fromEnvironment: false,
    note: `port ${STRIPE_PORT} was busy, so this run uses a copy with port ${stripePort}`,
  };
}

function introduce({ policy, stripe, attacker, nameServer, functionDir }) {
  say(paint.bold('Perimeter quick start') + paint.dim(' — every function its own perimeter'));
  say();
  say(
    `  ${paint.bold('function')}    examples/quickstart/checkout.mjs: handler(event) charges a card via ${EVIL_PACKAGE}`,
  );
  say(
    `  ${paint.bold('dependency')}  ${EVIL_PACKAGE}@2.3.1, ${paint.red('compromised')}: it also sends STRIPE_API_KEY to an attacker,`,
  );
  say('              over HTTP and hidden in a DNS lookup');
  say(`  ${paint.bold('policy')}      ${policy.shown}${policy.note ? paint.yellow(`  (${policy.note})`) : ''}`);
  for (const line of policy.text.trim().split('\n')) say(paint.cyan(`                ${line}`));
  say(
    `  ${paint.bold('servers')}     fake Stripe http://127.0.0.1:${stripe.port}, attacker http://127.0.0.1:${attacker.port}` +
      ` and DNS 127.0.0.1:${nameServer.port} (loopback only)`,
  );
  say(`  ${paint.bold('runs in')}     ${functionDir} ${paint.dim('(a copy that knows these ports)')}`);
}

// ---------------------------------------------------------------------------------------------------------------
// The two runs

function tellGuarded({ key, run, seen, events, attacker }) {
  say();
  say(paint.bold('1. With Perimeter') + paint.dim('   node --import perimeter/register invoke.mjs'));
  if (!reportChild(run, 'guarded')) return;
  const charged = chargeOutcome(run, seen.charges, key);
  if (expect(charged.ok, `under the guard the charge failed: ${charged.detail}`)) {
    say(`   ${paint.green('✔')} charge succeeded: ${charged.detail}`);
  }
  if (
    expect(
      seen.posts.length === 0,
      `under the guard the attacker's HTTP server received ${describePosts(seen.posts, key)}`,
    )
  ) {
    say(`   ${paint.green('✔')} HTTP exfiltration ${paint.green('blocked')}: the attacker's server received nothing`);
  }
  if (
    expect(
      seen.queries.length === 0,
      `under the guard the attacker's name server was asked ${seen.queries.map((q) => mask(q, key)).join(', ')}`,
    )
  ) {
    say(`   ${paint.green('✔')} DNS exfiltration ${paint.green('blocked')}: the attacker's name server got no query`);
  }

  const httpEvent = events.find(
    (e) => e.capability === 'network' && e.target?.startsWith(`POST http://127.0.0.1:${attacker.port}/`),
  );
  const dnsEvent = events.find((e) => e.capability === 'network' && e.target?.endsWith('.attacker.test'));
  for (const [what, event] of [
    ['HTTP exfiltration', httpEvent],
    ['DNS lookup', dnsEvent],
  ]) {
    if (!expect(event, `the guard wrote no event for the ${what}`)) continue;
    expect(event.action === 'blocked', `the ${what} event says "${event.action}", not "blocked"`);
    expect(event.package === EVIL_PACKAGE, `the ${what} event names package "${event.package}", not ${EVIL_PACKAGE}`);
  }
  // Lower-cased too: DNS names travel in lower case, and a redaction that only knows the original spelling
  // would let the key through in a dns: target.
  const everything = (run.stdout + run.stderr + JSON.stringify(events)).toLowerCase();
  expect(!everything.includes(key.toLowerCase()), 'the API key appears in clear in the guarded run’s output or events');

  say(`   The guard's events (JSON lines on stderr, what your log pipeline receives):`);
  for (const event of events) say(paint.dim(`   ${JSON.stringify(event)}`));
}

function tellUnguarded({ key, run, seen }) {
  say();
  say(paint.bold('2. Without Perimeter') + paint.dim('   node invoke.mjs'));
  if (!reportChild(run, 'unguarded')) return;
  const charged = chargeOutcome(run, seen.charges, key);
  if (expect(charged.ok, `without the guard the charge failed: ${charged.detail}`)) {
    say(`   ${paint.green('✔')} charge succeeded: ${charged.detail}`);
  }
  // Without the guard the attack has to work, or the first run proved nothing.
  const leakedPost = seen.posts.find((post) => post.url.includes(encodeURIComponent(key)) || post.body.includes(key));
  if (expect(leakedPost, `without the guard the attacker's HTTP server did not get the key (the attack is broken)`)) {
    say(
      `   ${paint.red('✘')} the attacker ${paint.red('received')} STRIPE_API_KEY=${paint.red(mask(key, key))}  ${paint.dim(`(${leakedPost.method} ${mask(leakedPost.url, key)})`)}`,
    );
  }
  const leakedQuery = seen.queries.find((name) => name.toLowerCase().includes(key.toLowerCase()));
  if (expect(leakedQuery, `without the guard the attacker's name server did not get the key (the attack is broken)`)) {
    say(
      `   ${paint.red('✘')} the attacker's name server ${paint.red('was asked for')} ${paint.red(mask(leakedQuery, key))}`,
    );
  }
}

function reportChild(run, label) {
  if (run.timedOut) {
    expect(false, `the ${label} run did not finish within ${CHILD_TIMEOUT_MS / 1000} s`);
  } else if (run.code !== 0) {
    expect(false, `the ${label} run exited with ${run.code ?? run.signal}`);
  } else {
    return true;
  }
  say(paint.red(`   the ${label} run failed; its output:`));
  for (const line of `${run.stdout}${run.stderr}`.trim().split('\n')) say(paint.dim(`   | ${line}`));
  return false;
}

function chargeOutcome(run, charges, key) {
  let response;
  try {
    response = JSON.parse(run.stdout.trim().split('\n').pop());
  } catch {
    return { ok: false, detail: `the function printed no response (${JSON.stringify(run.stdout)})` };
  }
  const body = safeJson(response.body);
  const withKey = charges.filter((request) => request.authorization === `Bearer ${key}`);
  if (response.statusCode !== 200 || !body?.charged) {
    return { ok: false, detail: `HTTP ${response.statusCode} ${response.body}` };
  }
  if (withKey.length !== 1) {
    return { ok: false, detail: `the fake Stripe saw ${withKey.length} charge(s) with the function's key, not 1` };
  }
  return { ok: true, detail: `${body.charged} (the fake Stripe saw the charge)` };
}

function describePosts(posts, key) {
  return posts.map((post) => `${post.method} ${mask(post.url, key)}`).join(', ');
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/** Runs the function in a fresh node (this one's binary) with only the given environment. */
function invoke(cwd, args, env) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CHILD_TIMEOUT_MS);
    child.on('error', (error) => {
      stderr += String(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function readEvents(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => safeJson(line) ?? { unparsable: line });
}

// ---------------------------------------------------------------------------------------------------------------
// The loopback servers

function listen(server, port) {
  return new Promise((resolve, reject) => {
    const onError = (error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(server.address().port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, '127.0.0.1');
  });
}

function readBody(request) {
  return new Promise((resolve) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => resolve(body));
  });
}

function closeHttp(server) {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** A fake Stripe: POST /v1/charges with the right bearer key gets a charge object, anything else an error. */
async function startStripe(key) {
  const charges = [];
  const server = http.createServer(async (request, response) => {
    const body = await readBody(request);
    response.setHeader('content-type', 'application/json');
    response.setHeader('connection', 'close');
    if (request.method !== 'POST' || request.url !== '/v1/charges') {
      response.statusCode = 404;
      return response.end(JSON.stringify({ error: { message: `no route ${request.method} ${request.url}` } }));
    }
    charges.push({ authorization: request.headers.authorization ?? '', body });
    if (request.headers.authorization !== `Bearer ${key}`) {
      response.statusCode = 401;
      return response.end(JSON.stringify({ error: { message: 'invalid API key' } }));
    }
    const form = new URLSearchParams(body);
    response.end(
      JSON.stringify({
        id: `ch_${randomBase62(14)}`,
        object: 'charge',
        amount: Number(form.get('amount')),
        currency: form.get('currency'),
        status: 'succeeded',
      }),
    );
  });
  let port;
  try {
    port = await listen(server, STRIPE_PORT);
  } catch (error) {
    if (error.code !== 'EADDRINUSE') throw error;
    port = await listen(server, 0);
  }
  return {
    port,
    take: () => charges.splice(0),
    close: () => closeHttp(server),
  };
}

/** The attacker's collector: records whatever arrives. */
async function startAttackerHttp() {
  const posts = [];
  const server = http.createServer(async (request, response) => {
    const body = await readBody(request);
    posts.push({ method: request.method, url: request.url, body });
    response.setHeader('connection', 'close');
    response.statusCode = 204;
    response.end();
  });
  const port = await listen(server, 0);
  return { port, take: () => posts.splice(0), close: () => closeHttp(server) };
}

/** The attacker's name server: records every name it is asked for and answers NXDOMAIN. */
async function startAttackerDns() {
  const queries = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (packet, from) => {
    const name = questionName(packet);
    if (name === null) return;
    queries.push(name);
    socket.send(nxdomain(packet), from.port, from.address);
  });
  const port = await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve(socket.address().port);
    });
  });
  return { port, take: () => queries.splice(0), close: () => new Promise((resolve) => socket.close(resolve)) };
}

/** The first question's name in a DNS query (RFC 1035 §4.1), or null for anything malformed. */
function questionName(packet) {
  if (packet.length < 12 || packet.readUInt16BE(4) < 1) return null;
  const labels = [];
  let offset = 12;
  while (offset < packet.length) {
    const length = packet[offset];
    if (length === 0) return labels.join('.');
    if (length > 63 || offset + 1 + length > packet.length) return null;
    labels.push(packet.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  return null;
}

/** The query sent back as a response with RCODE 3 (name error), question included, no answers. */
function nxdomain(query) {
  const response = Buffer.from(query);
  const flags = query.readUInt16BE(2);
  // QR=1, keep opcode and RD, RA=1, RCODE=3.
  response.writeUInt16BE(0x8000 | (flags & 0x7900) | 0x0080 | 0x0003, 2);
  response.writeUInt16BE(0, 6); // ANCOUNT
  response.writeUInt16BE(0, 8); // NSCOUNT
  response.writeUInt16BE(0, 10); // ARCOUNT (drops an EDNS OPT record, which a plain response may omit)
  const end = questionEnd(query);
  return end === null ? response : response.subarray(0, end);
}

function questionEnd(packet) {
  let offset = 12;
  while (offset < packet.length && packet[offset] !== 0) offset += 1 + packet[offset];
  const end = offset + 1 + 4; // the root label, QTYPE, QCLASS
  return end <= packet.length ? end : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Small helpers

function randomBase62(length) {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let out = '';
  for (const byte of randomBytes(length * 2)) {
    if (byte < 248) out += alphabet[byte % 62];
    if (out.length === length) break;
  }
  return out.padEnd(length, '0');
}

/** The key shown the way a careful log shows it: prefix and last four, the rest dotted out. */
function mask(text, key) {
  const visible = `${key.slice(0, 8)}${'•'.repeat(12)}${key.slice(-4)}`;
  return text
    .split(key)
    .join(visible)
    .split(encodeURIComponent(key))
    .join(visible)
    .split(key.toLowerCase())
    .join(visible.toLowerCase());
}

function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function colours() {
  const env = process.env;
  const enabled = env.FORCE_COLOR ? env.FORCE_COLOR !== '0' : Boolean(process.stdout.isTTY) && !env.NO_COLOR;
  const wrap = (open, close) => (text) => (enabled ? `\u001b[${open}m${text}\u001b[${close}m` : String(text));
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}
