// The README's first command, seen in a browser: `examples/shop/demo.mjs --keep` runs the shop under
// `perimeter dev` (three functions, a compromised dependency, loopback Stripe and attacker servers), drives it, and
// stays up. Chromium opens the dashboard it printed: the demo's blocked attacks are there per function, a filter
// narrows them, and a new order placed through the gateway shows up live.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { assertBuilt, launchBrowser, openDashboard, REPO_ROOT } from './helpers.mjs';

const DEMO = path.join(REPO_ROOT, 'examples', 'shop', 'demo.mjs');
const FUNCTIONS = ['checkout', 'thumbnail', 'webhook'];

let demo;
let output = '';
let dashboardUrl;
let gatewayUrl;
let browser;

before(async () => {
  assertBuilt();
  demo = spawn(process.execPath, [DEMO, '--keep'], {
    cwd: REPO_ROOT,
    env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  demo.stdout.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  demo.stderr.setEncoding('utf8').on('data', (chunk) => (output += chunk));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo did not come up in 60 s:\n${output}`)), 60_000);
    const check = () => {
      const dashboard = /Dashboard\s+(http:\/\/127\.0\.0\.1:\d+\/_perimeter\/)/.exec(output);
      const gateway = /The shop keeps running at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (dashboard && gateway) {
        clearTimeout(timer);
        demo.stdout.off('data', check);
        dashboardUrl = dashboard[1];
        gatewayUrl = gateway[1];
        resolve();
      }
    };
    demo.stdout.on('data', check);
    demo.on('exit', (code) => reject(new Error(`the demo exited with ${code} before staying up:\n${output}`)));
  });
  assert.match(output, /every order charged, every way out blocked/);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((resolve) => demo.once('exit', resolve));
    demo.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 0, `the demo stopped with ${code}:\n${output}`);
  }
});

async function waitFor(condition, what, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`timed out waiting for ${what}`);
}

const number = (text) => Number(String(text).replace(/[^\d]/g, ''));

test('the dashboard shows every shop function ready and the attacks blocked, by the compromised package', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboardUrl);
  try {
    for (const name of FUNCTIONS) {
      const item = page.locator(`[data-testid="function"][data-name="${name}"]`);
      await item.waitFor();
      assert.equal(await item.getAttribute('data-status'), 'ready', `${name} is ready`);
    }
    const rows = page.getByTestId('event-row');
    await waitFor(async () => (await rows.count()) > 0, 'event rows');
    const text = (await rows.allTextContents()).join('\n');
    for (const name of FUNCTIONS) assert.match(text, new RegExp(`${name}[\\s\\S]*log-beacon`), `${name} rows`);
    assert.match(text, /blocked/);
    assert.doesNotMatch(text, /alerted/);
    assert.ok(number(await page.getByTestId('total-blocked').textContent()) >= 3);
    // The graph names the culprit and where it tried to go.
    const nodes = (await page.getByTestId('graph-node').allTextContents()).join(' ');
    assert.match(nodes, /log-beacon/);
    assert.match(nodes, /dns:\*\.attacker\.test/);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('filtering by function shows that function only', async () => {
  const { page, problems, close } = await openDashboard(browser, `${dashboardUrl}?function=webhook`);
  try {
    const rows = page.getByTestId('event-row');
    await waitFor(async () => (await rows.count()) > 0, 'webhook rows');
    const functions = await page.locator('[data-testid="event-row"] td:nth-child(2)').allTextContents();
    assert.ok(functions.length > 0);
    assert.deepEqual([...new Set(functions.map((f) => f.trim()))], ['webhook']);
    assert.equal(await page.getByTestId('filter-function').inputValue(), 'webhook');
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('a new order through the gateway is charged, and its blocked attempts appear live', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboardUrl);
  try {
    const before = number(await page.getByTestId('total-blocked').textContent());
    const reply = await fetch(`${gatewayUrl}/api/checkout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 'A-9001', amount: 1500 }),
    });
    assert.equal(reply.status, 200, await reply.text());
    await waitFor(
      async () => number(await page.getByTestId('total-blocked').textContent()) > before,
      'the blocked count to grow without a reload',
    );
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});
