// File system calls: the cost the fs guard adds to one call on an allowed path.
//
// Three long-lived child processes run the same loop: unguarded, guarded (block policy with fs rules), and
// guarded with a `packages` fs rule (which turns on call-stack capture for every fs decision). The parent drives
// them over IPC in rounds; within a round every variant runs one batch of each operation, in rotating order, so
// drift on the shared machine hits all variants alike. Added ns/op is the median over rounds of (variant −
// unguarded) in the same round.
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

const TARGET_NS = 1000; // < 1 µs added per fs call on an allowed path

// Each operation is run `n` times per batch. `code` files live in the function's folder (a path the guard
// remembers: no symlink, not writable); `scratch` files live in a folder the policy lets the function write,
// so every call pays the full decision (realpath and rule matching).
const DRIVER = `import fs from 'node:fs';
import path from 'node:path';
import { readConfig } from 'config-reader';

const here = path.dirname(new URL(import.meta.url).pathname);
const codeFile = path.join(here, 'data', 'small.json');
const scratchFile = path.join(here, 'scratch', 'small.json');

const ops = {
  readFileSync: () => fs.readFileSync(codeFile),
  statSync: () => fs.statSync(codeFile),
  existsSync: () => fs.existsSync(codeFile),
  readFileSyncWritableDir: () => fs.readFileSync(scratchFile),
  readFileSyncFromPackage: () => readConfig(codeFile),
};

function probe() {
  try {
    fs.readFileSync('/etc/shadow');
    return 'read';
  } catch (error) {
    return error.code === 'ERR_PERIMETER_BLOCKED' ? 'blocked' : 'failed: ' + error.code;
  }
}

process.on('message', (message) => {
  if (message.cmd !== 'run') return;
  const op = ops[message.op];
  const n = message.n;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) op();
  process.send({ ns: Number(process.hrtime.bigint() - started) / n });
});
process.on('disconnect', () => process.exit(0));
process.send({ guarded: Boolean(globalThis[Symbol.for('perimeter.guard')]), probe: probe() });
`;

const PACKAGE = `import fs from 'node:fs';
export function readConfig(file) {
  return fs.readFileSync(file);
}
`;

function policies(dir) {
  const fsRules = { read: ['data/**', 'scratch/**'], write: ['scratch/**'] };
  return {
    'policy-guard.json': { mode: 'block', fs: fsRules },
    'policy-packages.json': {
      mode: 'block',
      fs: fsRules,
      packages: { 'config-reader': { fs: { read: [`${dir}/data/**`] } } },
    },
  };
}

const VARIANTS = [
  { id: 'off', label: 'no guard', policy: null },
  { id: 'guard', label: 'guard', policy: 'policy-guard.json' },
  { id: 'packages', label: 'guard + packages fs rule', policy: 'policy-packages.json' },
];

const OPERATIONS = [
  { id: 'readFileSync', label: 'readFileSync 64 B (code folder)' },
  { id: 'statSync', label: 'statSync (code folder)' },
  { id: 'existsSync', label: 'existsSync (code folder)' },
  { id: 'readFileSyncWritableDir', label: 'readFileSync 64 B (writable folder: full decision)' },
  { id: 'readFileSyncFromPackage', label: 'readFileSync 64 B called from a dependency' },
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

function cleanEnv() {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key === 'NODE_OPTIONS' || key.startsWith('PERIMETER_')) delete env[key];
  return env;
}

export default {
  id: 'fs',
  title: 'File system calls',
  method: [
    'Three long-lived processes run the same loop: no guard, guard (`--import perimeter/register`, block policy with `fs.read`/`fs.write` rules), and guard with a `packages` fs rule for a dependency (turns on call-stack capture for every fs decision).',
    'Operations on a 64-byte file: `readFileSync`, `statSync` and `existsSync` in the function folder (a path with no symlink that the policy does not let the process change: its decision is remembered), `readFileSync` in a folder the policy lets the function write (never remembered: a realpath syscall and rule matching on every call), and `readFileSync` called from inside a dependency.',
    'Each round every process runs one batch of each operation, in rotating order. **added ns** is the median over rounds of (variant − unguarded) in the same round; **ratio** the median of the per-round ratios; p10–p90 shows the spread.',
    'Before measuring, each process proves its state: reading /etc/shadow is blocked with ERR_PERIMETER_BLOCKED in the guarded ones and not in the unguarded one.',
  ],
  target: `< ${TARGET_NS} ns added per fs call on an allowed path`,

  async run(node, { quick }) {
    requireBuiltGuard();
    // Many short rounds: on a shared machine a short batch of each variant is more likely to see the same load.
    const warmup = quick ? 2_000 : 10_000;
    const rounds = quick ? 3 : 41;
    const batch = quick ? 2_000 : 5_000;
    const small = `${JSON.stringify({ id: 1, name: 'small', tags: ['a', 'b'], ok: true }).padEnd(63)}\n`;
    const dir = tempTree('perimeter-bench-fs-', {
      'driver.mjs': DRIVER,
      'data/small.json': small,
      'scratch/small.json': small,
      'node_modules/config-reader/package.json': {
        name: 'config-reader',
        version: '1.0.0',
        type: 'module',
        main: 'index.js',
      },
      'node_modules/config-reader/index.js': PACKAGE,
    });
    writeFiles(dir, policies(dir));
    const env = cleanEnv();
    const workers = new Map();
    try {
      for (const variant of VARIANTS) {
        const childEnv = { ...env };
        if (variant.policy) childEnv.PERIMETER_POLICY = path.join(dir, variant.policy);
        const worker = await startChild(path.join(dir, 'driver.mjs'), {
          execPath: node.bin,
          execArgv: variant.policy ? ['--import', REGISTER] : [],
          env: childEnv,
          cwd: dir,
        });
        const expected = variant.policy ? 'blocked' : process.getuid?.() === 0 ? 'read' : 'failed: EACCES';
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
      const checks = [];
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
            fixed(median(runs), 0),
            isOff ? '' : signed(added, 0),
            isOff ? '' : ratio(median(ratios)),
            isOff ? '' : `${ratio(quantile(ratios, 0.1))} … ${ratio(quantile(ratios, 0.9))}`,
          ]);
          if (variant.id === 'guard' && op.id !== 'readFileSyncFromPackage') {
            checks.push({
              name: `${op.label}, ${variant.label}: ${signed(added, 0)} ns (target < ${TARGET_NS} ns)`,
              ok: added < TARGET_NS,
              kind: 'target',
            });
          }
        }
      }
      return {
        tables: [
          {
            title: `Per call (${rounds} rounds × ${batch} calls per variant and operation, after ${warmup} warm-up)`,
            columns: [
              { title: 'operation', align: 'left' },
              { title: 'variant', align: 'left' },
              { title: 'ns/op' },
              { title: 'added ns' },
              { title: 'ratio' },
              { title: 'p10 … p90 of round ratios' },
            ],
            rows,
          },
        ],
        checks,
      };
    } finally {
      for (const worker of workers.values()) worker.child.disconnect();
    }
  },
};

// Not awaited: run.mjs imports this module back, which must finish evaluating first.
if (isMain(import.meta.url))
  import('./run.mjs').then(({ main }) => main(['--only', 'fs', '--no-write', ...process.argv.slice(2)]));
