// Environment reads: the cost the env guard adds to one `process.env.X` read.
//
// Three long-lived child processes run the same loop: unguarded, guarded (block policy with `env.allow`), and
// guarded with `packages` env rules (`packages["*"]` narrows STRIPE_API_KEY to the `stripe` package, which turns
// on call-stack capture for reads of that one name). The parent drives them over IPC in rounds; within a round
// every variant runs one batch of each operation, in rotating order, so drift on the shared machine hits all
// variants alike. Added ns/op is the median over rounds of (variant − unguarded) in the same round.
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

const TARGET_NS = 1000; // < 1 µs added per env read

const DRIVER = `import { readKey } from 'stripe';
let sink = 0;
const ops = {
  allowed: () => { sink += process.env.APP_SETTING.length; },
  baseline: () => { sink += process.env.HOME.length; },
  denied: () => { sink += process.env.OTHER_SECRET === undefined ? 1 : 2; },
  missing: () => { sink += process.env.NOT_SET_ANYWHERE === undefined ? 1 : 2; },
  narrowedFromApp: () => { sink += process.env.STRIPE_API_KEY.length; },
  narrowedFromPackage: () => { sink += readKey().length; },
  keys: () => { sink += Object.keys(process.env).length; },
};

function probe() {
  return process.env.OTHER_SECRET === undefined ? 'hidden' : 'visible';
}

process.on('message', (message) => {
  if (message.cmd !== 'run') return;
  const op = ops[message.op];
  const n = message.n;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) op();
  process.send({ ns: Number(process.hrtime.bigint() - started) / n, sink });
});
process.on('disconnect', () => process.exit(0));
process.send({ guarded: Boolean(globalThis[Symbol.for('perimeter.guard')]), probe: probe() });
`;

const PACKAGE = `export function readKey() {
  return process.env.STRIPE_API_KEY;
}
`;

const POLICIES = {
  'policy-guard.json': { mode: 'block', env: { allow: ['APP_SETTING', 'STRIPE_API_KEY'] } },
  'policy-packages.json': {
    mode: 'block',
    env: { allow: ['APP_SETTING', 'STRIPE_API_KEY'] },
    packages: {
      '*': { env: { allow: ['APP_SETTING'] } },
      stripe: { env: { allow: ['STRIPE_API_KEY', 'APP_SETTING'] } },
    },
  },
};

const VARIANTS = [
  { id: 'off', label: 'no guard', policy: null },
  { id: 'guard', label: 'guard', policy: 'policy-guard.json' },
  { id: 'packages', label: 'guard + packages env rules', policy: 'policy-packages.json' },
];

const OPERATIONS = [
  { id: 'allowed', label: 'process.env.X, X in env.allow (no package narrows it)' },
  { id: 'baseline', label: 'process.env.HOME (baseline)' },
  { id: 'denied', label: 'process.env.X, X denied (undefined; reported a few times a second)' },
  { id: 'missing', label: 'process.env.X, X not set' },
  { id: 'narrowedFromApp', label: 'process.env.STRIPE_API_KEY from the app (narrowed: stack captured)' },
  { id: 'narrowedFromPackage', label: 'process.env.STRIPE_API_KEY from package stripe (narrowed: stack captured)' },
  { id: 'keys', label: 'Object.keys(process.env)' },
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
  // Events go to a file, not to the pipe the parent would have to drain.
  return { ...env, APP_SETTING: 'on', STRIPE_API_KEY: 'sk_test_benchmark0000000000', OTHER_SECRET: 'other-secret' };
}

export default {
  id: 'env',
  title: 'Environment reads',
  method: [
    'Three long-lived processes run the same loop: no guard, guard (`--import perimeter/register`, block policy with `env.allow`), and guard with `packages` env rules (`packages["*"]` may read APP_SETTING, `packages.stripe` may read STRIPE_API_KEY and APP_SETTING). Only a name that some package rule does not allow (here STRIPE_API_KEY) needs the call stack; every other name is decided without it.',
    'Each name is classified once per policy (readable by all, narrowed by some package, denied) and the class is cached, so an allowed read costs the Proxy trap plus one lookup. A denied read returns undefined; it is reported (with a stack capture) at most 8 times per name per second, so a hot loop over a denied name stays cheap.',
    'Each round every process runs one batch of each operation, in rotating order. **added ns** is the median over rounds of (variant − unguarded) in the same round; **ratio** the median of the per-round ratios; p10–p90 shows the spread.',
    'Before measuring, each process proves its state: OTHER_SECRET reads as undefined in the guarded ones and not in the unguarded one.',
  ],
  target: `< ${TARGET_NS} ns added per env read of an allowed name`,

  async run(node, { quick }) {
    requireBuiltGuard();
    const warmup = quick ? 2_000 : 20_000;
    const rounds = quick ? 3 : 15;
    const batch = quick ? 2_000 : 20_000;
    const dir = tempTree('perimeter-bench-env-', {
      'driver.mjs': DRIVER,
      'node_modules/stripe/package.json': { name: 'stripe', version: '1.0.0', type: 'module', main: 'index.js' },
      'node_modules/stripe/index.js': PACKAGE,
    });
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
        const expected = variant.policy ? 'hidden' : 'visible';
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
          // Reads that capture the stack are ~100× slower: smaller batches keep the round time even.
          const n = op.id.startsWith('narrowed') || op.id === 'keys' ? Math.ceil(batch / 20) : batch;
          for (const variant of rotation(VARIANTS, round + OPERATIONS.indexOf(op))) {
            const key = `${variant.id}/${op.id}`;
            if (!samples.has(key)) samples.set(key, []);
            samples.get(key)[round] = await runBatch(workers.get(variant.id), op.id, n);
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
          if (!isOff && (op.id === 'allowed' || op.id === 'baseline')) {
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
            title: `Per read (${rounds} rounds × ${batch} reads per variant and operation, ${Math.ceil(batch / 20)} for the stack-capturing ones, after ${warmup} warm-up)`,
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
  import('./run.mjs').then(({ main }) => main(['--only', 'env', '--no-write', ...process.argv.slice(2)]));
