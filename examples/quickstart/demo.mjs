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
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  mask as maskSecrets,
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
const POLICY_FILE = path.join(HERE, 'perimeter.json');
// The port the checked-in perimeter.json allows.
const STRIPE_PORT = 4242;
const EVIL_PACKAGE = 'charge-kit';
const CHILD_TIMEOUT_MS = 20_000;

const { paint, say, expect, problems } = storyteller();
// One secret here, and twelve dots where the shop shows eight: the quick start's output stays as it always was.
const mask = (text, key) => maskSecrets(text, key, { dots: 12 });

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
  const stripe = await startStripe({ key, port: STRIPE_PORT });
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
      STRIPE_API_BASE: stripe.url,
      PERIMETER_FUNCTION: 'checkout',
    };

    const eventsFile = path.join(scratch, 'events.jsonl');
    const guardedEnv = { ...env, PERIMETER_EVENTS_FILE: eventsFile };
    if (policy.fromEnvironment) guardedEnv.PERIMETER_POLICY = policy.file;
    const guarded = await runNode(['--import', 'perimeter/register', 'invoke.mjs'], {
      cwd: functionDir,
      env: guardedEnv,
      timeoutMs: CHILD_TIMEOUT_MS,
    });
    const guardedSeen = { charges: stripe.take(), posts: attacker.take(), queries: nameServer.take() };
    const events = readEvents(eventsFile);
    tellGuarded({ key, run: guarded, seen: guardedSeen, events, attacker });

    const bare = await runNode(['invoke.mjs'], { cwd: functionDir, env, timeoutMs: CHILD_TIMEOUT_MS });
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
    JSON.stringify({ collector: attacker.url, nameServer: nameServer.address }),
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
    `  ${paint.bold('servers')}     fake Stripe ${stripe.url}, attacker ${attacker.url}` +
      ` and DNS ${nameServer.address} (loopback only)`,
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

  const httpEvent = events.find((e) => e.capability === 'network' && e.target?.startsWith(`POST ${attacker.url}/`));
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
// The guard's events

function readEvents(file) {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => safeJson(line) ?? { unparsable: line });
}
