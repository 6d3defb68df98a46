// Where the guard's cold-start time goes. Not a benchmark (run.mjs does not run it): a diagnostic for whoever
// works on cold start.
//
//   node bench/profile-cold-start.mjs [--nodes 20,26] [--runs 10]
//
// For each Node major it prints:
// 1. the built-in modules Node loads only because the guard is there (process.moduleLoadList of the same handler
//    with and without the guard): each costs its compile and evaluation, often ~0.5–3 ms;
// 2. the guard's own functions by inclusive CPU time (self + callees, recursion counted once), averaged over
//    several `--cpu-prof` runs of a guarded start. The preload here is the unbundled `dist/runtime.js` (same
//    code as the bundle, readable function names); its module loading therefore costs more than the bundle's.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import {
  DIST,
  markdownTable,
  nodeBinaries,
  REGISTER,
  requireBuiltGuard,
  SUPPORTED_MAJORS,
  snapshotGuard,
  tempTree,
} from './lib.mjs';

const HANDLER = `import http from 'node:http';
import { randomUUID } from 'node:crypto';
const agent = new http.Agent({ keepAlive: true });
export async function handler(event) { return { id: randomUUID(), agent: Boolean(agent), event }; }
if (process.argv.includes('--print-modules')) process.stdout.write(JSON.stringify(process.moduleLoadList));
`;
const POLICY = {
  mode: 'block',
  network: { allow: ['POST https://api.stripe.com/v1/**', 'https://*.amazonaws.com', 'http://127.0.0.1:8080'] },
};

function parse(argv) {
  const options = { majors: SUPPORTED_MAJORS, runs: 10 };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nodes') options.majors = argv[++i].split(',').map(Number);
    else if (argv[i] === '--runs') options.runs = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]} (known: --nodes 20,22, --runs N)`);
  }
  return options;
}

function extraBuiltins(node, dir) {
  const load = (args) => {
    const result = spawnSync(node.bin, [...args, 'handler.mjs', '--print-modules'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    if (result.status !== 0) throw new Error(`handler failed on ${node.version}: ${result.stderr}`);
    return JSON.parse(result.stdout);
  };
  const without = new Set(load([]));
  return load(['--require', REGISTER]).filter((entry) => !without.has(entry));
}

/** Inclusive µs per function of the guard, for one profile. */
function inclusiveTimes(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const totals = new Map();
  const total = (node) => {
    let sum = self.get(node.id) ?? 0;
    for (const child of node.children ?? []) sum += total(byId.get(child));
    totals.set(node.id, sum);
    return sum;
  };
  const root = profile.nodes[0];
  total(root);
  const perFunction = new Map();
  const walk = (node, onPath) => {
    const frame = node.callFrame;
    let key = null;
    if (frame.url.includes('/perimeter/dist/') || frame.url.startsWith(DIST)) {
      key = `${frame.functionName || '(module)'} ${path.relative(DIST, frame.url.replace(/^file:\/\//, ''))}:${frame.lineNumber + 1}`;
    }
    const counted = key !== null && !onPath.has(key);
    if (counted) perFunction.set(key, (perFunction.get(key) ?? 0) + totals.get(node.id));
    if (counted) onPath.add(key);
    for (const child of node.children ?? []) walk(byId.get(child), onPath);
    if (counted) onPath.delete(key);
  };
  walk(root, new Set());
  return perFunction;
}

function profileGuard(node, dir, runs) {
  const sums = new Map();
  for (let run = 0; run < runs; run++) {
    const outDir = path.join(dir, `prof-${node.major}-${run}`);
    const result = spawnSync(
      node.bin,
      [
        '--cpu-prof',
        '--cpu-prof-interval',
        '100',
        '--cpu-prof-dir',
        outDir,
        '--require',
        './preload.cjs',
        'handler.mjs',
      ],
      { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } },
    );
    if (result.status !== 0) throw new Error(`guarded start failed on ${node.version}: ${result.stderr}`);
    const file = readdirSync(outDir).find((name) => name.endsWith('.cpuprofile'));
    const times = inclusiveTimes(JSON.parse(readFileSync(path.join(outDir, file), 'utf8')));
    for (const [key, us] of times) sums.set(key, (sums.get(key) ?? 0) + us);
    rmSync(outDir, { recursive: true, force: true });
  }
  return [...sums]
    .map(([key, us]) => [key, us / runs / 1000])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25);
}

requireBuiltGuard();
const options = parse(process.argv.slice(2));
console.log(`guard: ${snapshotGuard()}`);
const dir = tempTree('perimeter-profile-cold-', {
  'handler.mjs': HANDLER,
  'perimeter.json': POLICY,
  'preload.cjs': `require(${JSON.stringify(path.join(DIST, 'runtime.js'))}).startFromEnvironment();\n`,
});
const { available, missing } = nodeBinaries(options.majors);
for (const { hint } of missing) console.error(hint);
for (const node of available) {
  console.log(`\n## Node ${node.version}\n`);
  const extra = extraBuiltins(node, dir).filter((entry) => entry.startsWith('NativeModule'));
  console.log(`Built-in modules loaded only because of the guard (${extra.length}):`);
  console.log(extra.map((entry) => entry.replace('NativeModule ', '')).join(', ') || '(none)');
  console.log(`\nGuard functions by inclusive CPU time (ms, mean of ${options.runs} profiled starts):\n`);
  const rows = profileGuard(node, dir, options.runs).map(([key, ms]) => [key, ms.toFixed(2)]);
  console.log(markdownTable([{ title: 'function', align: 'left' }, { title: 'ms' }], rows));
}
