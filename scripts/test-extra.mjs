#!/usr/bin/env node
// Suites that need more than node:test on one package, run by `npm test` (scripts/test.mjs, runExtraTestsHook)
// with the system node after the build: today, the dashboard's browser tests (packages/cli/test/browser/), which
// drive Debian's Chromium through playwright-core.
//
// Chromium is a system package, not an npm one (playwright's own browser download is not used: it fetches from a
// CDN at install time and pins a build). When /usr/bin/chromium is missing this script installs it with apt-get,
// saying so first; when that is not possible it fails with what to do. It never skips the browser tests silently.
//
// Runs every packages/cli/test/browser/*.test.mjs; honours PERIMETER_TEST_FILTER like the runner (only test files
// whose path contains it).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CHROMIUM = process.env.PERIMETER_CHROMIUM || '/usr/bin/chromium';
const BROWSER_TEST_DIR = 'packages/cli/test/browser';

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    log(`internal error: ${error?.stack ?? error}`);
    process.exitCode = 1;
  },
);

async function main() {
  const filter = process.env.PERIMETER_TEST_FILTER ?? '';
  const files = readdirSync(path.join(REPO_ROOT, BROWSER_TEST_DIR))
    .filter((name) => name.endsWith('.test.mjs'))
    .sort()
    .map((name) => `${BROWSER_TEST_DIR}/${name}`)
    .filter((file) => !filter || file.includes(filter));
  if (files.length === 0) {
    log(`no browser test file matches PERIMETER_TEST_FILTER="${filter}"`);
    // Zero counts in the spec reporter's words, so the runner counts nothing rather than one passed script.
    console.log('ℹ pass 0');
    console.log('ℹ fail 0');
    return 0;
  }
  if (!ensureChromium()) return 1;
  log(`browser tests with ${CHROMIUM}: ${files.join(', ')}`);
  const node = process.env.PERIMETER_TEST_NODE || process.execPath;
  // One file at a time: each starts a browser, and the machine the suite runs on has two cores.
  const args = ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files];
  return new Promise((resolve) => {
    const child = spawn(node, args, { cwd: REPO_ROOT, stdio: 'inherit', env: process.env });
    child.on('error', (error) => {
      log(`could not start ${node}: ${error.message}`);
      resolve(1);
    });
    child.on('close', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/** True when Chromium is there (installing it if needed and possible). */
function ensureChromium() {
  if (existsSync(CHROMIUM)) return true;
  log(`Chromium is missing (${CHROMIUM}); the dashboard's browser tests need it.`);
  if (process.env.PERIMETER_CHROMIUM) {
    return fail(`PERIMETER_CHROMIUM points to ${CHROMIUM}, which does not exist; fix it or unset it`);
  }
  if (process.platform !== 'linux' || !existsSync('/usr/bin/apt-get')) {
    return fail(
      'this is not a Debian-like system with apt-get; install Chromium and set PERIMETER_CHROMIUM=<path to the binary>',
    );
  }
  if (process.getuid?.() !== 0) {
    return fail('installing it needs root: run `sudo apt-get install -y chromium`, then run the tests again');
  }
  log('installing it: apt-get install -y chromium (Debian package; one time, about 100 MB)');
  if (!apt(['install', '-y', 'chromium'])) {
    log('apt-get install failed; refreshing the package lists (apt-get update) and trying once more');
    if (!apt(['update']) || !apt(['install', '-y', 'chromium'])) {
      return fail('could not install Chromium with apt-get (see its output above); install it by hand and run again');
    }
  }
  if (!existsSync(CHROMIUM)) return fail(`apt-get installed chromium, but ${CHROMIUM} is still missing`);
  log(`installed ${spawnSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).stdout.trim() || 'Chromium'}`);
  return true;
}

function apt(args) {
  log(`$ apt-get ${args.join(' ')}`);
  const result = spawnSync('apt-get', args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  return result.status === 0;
}

function fail(message) {
  log(`FAILED: ${message}`);
  // A failed count the runner reads, so the summary says why the run failed.
  console.log('ℹ pass 0');
  console.log('ℹ fail 1');
  return false;
}

function log(message) {
  console.log(`[perimeter test-extra] ${message}`);
}
