import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { NODE, PACKAGE_ROOT, tempDir } from '../helpers.js';

// The README's first command ends in `node examples/quickstart/demo.mjs`. These tests keep that demo honest on
// every Node major: it runs with the Node under test (so its child processes do too) and decides its exit code
// from what its real loopback servers received.
const REPO_ROOT = resolve(PACKAGE_ROOT, '../..');
const DEMO = join(REPO_ROOT, 'examples/quickstart/demo.mjs');
const FULL_STRIPE_KEY = /sk_test_[0-9A-Za-z]{24}/i;

function runDemo(env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(NODE, [DEMO], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, output });
    });
  });
}

test('the quick start demo: the charge goes through, both exfiltrations are blocked and attributed', async () => {
  const { code, output } = await runDemo();
  assert.equal(code, 0, output);
  assert.match(output, /1\. With Perimeter/);
  assert.match(output, /charge succeeded: ch_/);
  assert.match(output, /HTTP exfiltration blocked: the attacker's server received nothing/);
  assert.match(output, /DNS exfiltration blocked: the attacker's name server got no query/);
  const events = output
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('{"perimeter":1'))
    .map((line) => JSON.parse(line));
  const http = events.find((e) => e.target.startsWith('POST http://127.0.0.1:'));
  assert.equal(http?.action, 'blocked', output);
  assert.equal(http?.package, 'charge-kit');
  assert.match(http?.target, /\/collect\?k=\[REDACTED\]$/);
  const dns = events.find((e) => e.target.startsWith('dns:'));
  assert.equal(dns?.action, 'blocked', output);
  assert.equal(dns?.package, 'charge-kit');
  assert.equal(dns?.target, 'dns:[REDACTED].attacker.test');
  // The unguarded run shows the leak, masked.
  assert.match(output, /2\. Without Perimeter/);
  assert.match(output, /the attacker received STRIPE_API_KEY=sk_test_•+[0-9A-Za-z]{4}/);
  assert.doesNotMatch(output, FULL_STRIPE_KEY, 'the demo must never print the key in full');
});

// The demo's verdict is computed, not printed: under a policy that lets the attack through it must fail.
test('the quick start demo fails when the policy only alerts', async () => {
  const dir = tempDir('perimeter-quickstart-test-');
  const policy = join(dir, 'alert.json');
  writeFileSync(policy, JSON.stringify({ mode: 'alert' }));
  const { code, output } = await runDemo({ PERIMETER_POLICY: policy });
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 1, output);
  assert.match(output, /The demo did not go as expected/);
  assert.match(output, /under the guard the attacker's HTTP server received POST \/collect/);
  assert.match(output, /under the guard the attacker's name server was asked/);
  assert.doesNotMatch(output, /HTTP exfiltration blocked/);
  assert.doesNotMatch(output, FULL_STRIPE_KEY);
});

// The checked-in policy names port 4242. When that port is taken the demo must still tell the same story.
test('the quick start demo works when port 4242 is taken', async () => {
  const squatter = net.createServer();
  const squatting = await new Promise<boolean>((done) => {
    squatter.once('error', () => done(false)); // already taken by someone else: the case under test anyway
    squatter.listen(4242, '127.0.0.1', () => done(true));
  });
  try {
    const { code, output } = await runDemo();
    assert.equal(code, 0, output);
    assert.match(output, /port 4242 was busy, so this run uses a copy with port \d+/);
    assert.match(output, /HTTP exfiltration blocked/);
    assert.match(output, /DNS exfiltration blocked/);
  } finally {
    if (squatting) await new Promise((done) => squatter.close(done));
  }
});
