// Child processes: the cost the process guard adds to one spawn.
//
// Two long-lived child processes run the same loop: unguarded, and guarded (block policy allowing /bin/true and
// echo). Each spawns real programs: `spawnSync('/bin/true')` (resolve, realpath, rule lookup, NODE_OPTIONS added
// to the child's env), `execSync('true && echo x')` (the shell string is parsed and every command judged) and an
// async `spawn('/bin/true')` awaited to 'close'. A spawn costs ~1 ms of fork/exec, so the added microseconds are
// small in ratio; the table shows both.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import {
  fixed,
  isMain,
  median,
  quantile,
  REGISTER,
  ratio,
  requireBuiltGuard,
  rotation,
  signed,
  tempTree,
  writeFiles,
} from './lib.mjs';

const DRIVER = `import { execSync, spawn, spawnSync } from 'node:child_process';
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

process.on('message', async (message) => {
  if (message.cmd !== 'run') return;
  const op = ops[message.op];
  const n = message.n;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await op();
  process.send({ ns: Number(process.hrtime.bigint() - started) / n, sink });
});
process.on('disconnect', () => process.exit(0));
process.send({ guarded: Boolean(globalThis[Symbol.for('perimeter.guard')]), probe: probe() });
`;

const POLICIES = {
  'policy-guard.json': { mode: 'block', process: { allow: ['/bin/true', 'true', 'echo'] } },
};

const VARIANTS = [
  { id: 'off', label: 'no guard', policy: null },
  { id: 'guard', label: 'guard', policy: 'policy-guard.json' },
];

const OPERATIONS = [
  { id: 'spawnSync', label: "spawnSync('/bin/true')" },
  { id: 'execSync', label: "execSync('true && echo x') (shell string parsed)" },
  { id: 'spawn', label: "spawn('/bin/true') until 'close'" },
];

async function startChild(file, { execPath, execArgv, env, cwd }) {
  const child = fork(file, [], { execPath, execArgv, env, cwd, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk) => (stderr += chunk));
  const [message] = await Promise.race([
    once(child, 'message'),
    once(child, 'exit').then(([code]) => {
      throw new Error(`${path.basename(file)} exited with ${code} before it was ready: ${stderr.trim()}`);
    }),
  ]);
  return { child, message };
}

async function runBatch(worker, op, n) {
  const reply = once(worker.child, 'message');
  worker.child.send({ cmd: 'run', op, n });
  const [message] = await reply;
  return message.ns;
}

function benchEnv() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key === 'NODE_OPTIONS' || key.startsWith('PERIMETER_')) delete env[key];
  return env;
}

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
    const env = benchEnv();
    const workers = new Map();
    try {
      for (const variant of VARIANTS) {
        const childEnv = { ...env, PERIMETER_EVENTS_FILE: path.join(dir, `events-${variant.id}.jsonl`) };
        if (variant.policy) childEnv.PERIMETER_POLICY = path.join(dir, variant.policy);
        const worker = await startChild(path.join(dir, 'driver.mjs'), {
          execPath: node.bin,
          execArgv: variant.policy ? ['--import', REGISTER] : [],
          env: childEnv,
          cwd: dir,
        });
        const expected = variant.policy ? 'blocked' : 'failed';
        if (worker.message.guarded !== Boolean(variant.policy) || worker.message.probe !== expected) {
          throw new Error(
            `variant ${variant.id} is not in the state it claims: guarded=${worker.message.guarded}, probe ${worker.message.probe} (expected ${expected})`,
          );
        }
        workers.set(variant.id, worker);
      }
      for (const variant of VARIANTS) {
        for (const op of OPERATIONS) await runBatch(workers.get(variant.id), op.id, warmup);
      }
      const samples = new Map();
      for (let round = 0; round < rounds; round++) {
        for (const op of OPERATIONS) {
          for (const variant of rotation(VARIANTS, round + OPERATIONS.indexOf(op))) {
            const key = `${variant.id}/${op.id}`;
            if (!samples.has(key)) samples.set(key, []);
            samples.get(key)[round] = await runBatch(workers.get(variant.id), op.id, batch);
          }
        }
      }
      const rows = [];
      for (const op of OPERATIONS) {
        const off = samples.get(`off/${op.id}`);
        for (const variant of VARIANTS) {
          const runs = samples.get(`${variant.id}/${op.id}`);
          const isOff = variant.id === 'off';
          const ratios = runs.map((ns, i) => ns / off[i]);
          const added = median(runs.map((ns, i) => ns - off[i]));
          rows.push([
            op.label,
            variant.label,
            fixed(median(runs) / 1000, 0),
            isOff ? '' : signed(added / 1000, 1),
            isOff ? '' : ratio(median(ratios)),
            isOff ? '' : `${ratio(quantile(ratios, 0.1))} … ${ratio(quantile(ratios, 0.9))}`,
          ]);
        }
      }
      return {
        tables: [
          {
            title: `Per spawn (${rounds} rounds × ${batch} spawns per variant and operation, after ${warmup} warm-up)`,
            columns: [
              { title: 'operation', align: 'left' },
              { title: 'variant', align: 'left' },
              { title: 'µs/op' },
              { title: 'added µs' },
              { title: 'ratio' },
              { title: 'p10 … p90 of round ratios' },
            ],
            rows,
          },
        ],
        checks: [],
      };
    } finally {
      for (const worker of workers.values()) worker.child.disconnect();
    }
  },
};

// Not awaited: run.mjs imports this module back, which must finish evaluating first.
if (isMain(import.meta.url))
  import('./run.mjs').then(({ main }) => main(['--only', 'process', '--no-write', ...process.argv.slice(2)]));
