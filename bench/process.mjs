// Child processes: the cost the process guard adds to one spawn.
//
// Two long-lived child processes run the same loop: unguarded, and guarded (block policy allowing /bin/true and
// echo). Each spawns real programs: `spawnSync('/bin/true')` (resolve, realpath, rule lookup, NODE_OPTIONS added
// to the child's env), `execSync('true && echo x')` (the shell string is parsed and every command judged) and an
// async `spawn('/bin/true')` awaited to 'close'. A spawn costs ~1 ms of fork/exec, so the added microseconds are
// small in ratio; the table shows both.
import path from 'node:path';
import {
  GUARDED,
  isMain,
  measureDrivers,
  overheadTable,
  requireBuiltGuard,
  runAlone,
  tempTree,
  UNGUARDED,
  unguardedEnv,
  writeFiles,
} from './lib.mjs';

const DRIVER = `import { execSync, spawn, spawnSync } from 'node:child_process';
import { serveBatches } from './driver-protocol.mjs';
let sink = 0;
const ops = {
  spawnSync: () => { sink += spawnSync('/bin/true').status; },
  execSync: () => { sink += execSync('true && echo x').length; },
  spawn: () => new Promise((done) => spawn('/bin/true').on('close', (code) => { sink += code; done(); })),
};

function probe() {
  try {
    execSync('touch /nonexistent-perimeter-dir/probe', { stdio: 'ignore' });
    return 'ran';
  } catch (error) {
    return error.code === 'ERR_PERIMETER_BLOCKED' ? 'blocked' : 'failed';
  }
}

await serveBatches(async (name, n) => {
  const op = ops[name];
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await op();
  return { ns: Number(process.hrtime.bigint() - started) / n, sink };
}, probe);
`;

const POLICIES = {
  'policy-guard.json': { mode: 'block', process: { allow: ['/bin/true', 'true', 'echo'] } },
};

const VARIANTS = [UNGUARDED, GUARDED];

const OPERATIONS = [
  { id: 'spawnSync', label: "spawnSync('/bin/true')" },
  { id: 'execSync', label: "execSync('true && echo x') (shell string parsed)" },
  { id: 'spawn', label: "spawn('/bin/true') until 'close'" },
];

export default {
  id: 'process',
  title: 'Child processes',
  method: [
    'Two long-lived processes run the same loop: no guard, and guard (`--import perimeter/register`, block policy with `process.allow`).',
    "Operations: `spawnSync('/bin/true')`, `execSync('true && echo x')` (a shell string: parsed, every command resolved and judged) and `spawn('/bin/true')` awaited until `close`. Every guarded spawn also resolves the program through PATH and realpath and adds the guard to the child's NODE_OPTIONS.",
    'Each round both processes run one batch of each operation, in rotating order. **added µs** is the median over rounds of (guard − unguarded) in the same round; **ratio** the median of the per-round ratios.',
    "Before measuring, each process proves its state: `execSync('touch …')` is blocked in the guarded one.",
  ],
  target: 'a small fraction of the ~1 ms a spawn costs',

  async run(node, { quick }) {
    requireBuiltGuard();
    const warmup = quick ? 20 : 100;
    const rounds = quick ? 3 : 11;
    const batch = quick ? 30 : 200;
    const dir = tempTree('perimeter-bench-process-', { 'driver.mjs': DRIVER });
    writeFiles(dir, POLICIES);
    const env = unguardedEnv();
    const samples = await measureDrivers({
      node,
      dir,
      driver: 'driver.mjs',
      variants: VARIANTS,
      env: (variant) => ({ ...env, PERIMETER_EVENTS_FILE: path.join(dir, `events-${variant.id}.jsonl`) }),
      expectedProbe: (variant) => (variant.policy ? 'blocked' : 'failed'),
      operations: OPERATIONS,
      rounds,
      warmup,
      batchSize: () => batch,
    });
    const { table } = overheadTable({
      title: `Per spawn (${rounds} rounds × ${batch} spawns per variant and operation, after ${warmup} warm-up)`,
      operations: OPERATIONS,
      variants: VARIANTS,
      samples,
      unit: 'µs',
    });
    return { tables: [table], checks: [] };
  },
};

if (isMain(import.meta.url)) runAlone('process');
