// Environment reads: the cost the env guard adds to one `process.env.X` read.
//
// Three long-lived child processes run the same loop: unguarded, guarded (block policy with `env.allow`), and
// guarded with `packages` env rules (`packages["*"]` narrows STRIPE_API_KEY to the `stripe` package, which turns
// on call-stack capture for reads of that one name). The parent drives them over IPC in rounds; within a round
// every variant runs one batch of each operation, in rotating order, so drift on the shared machine hits all
// variants alike. Added ns/op is the median over rounds of (variant − unguarded) in the same round.
import path from 'node:path';
import {
  addedNsTarget,
  GUARDED,
  isMain,
  measureDrivers,
  OVERHEAD_TABLE_METHOD,
  overheadTable,
  requireBuiltGuard,
  runAlone,
  tempTree,
  UNGUARDED,
  unguardedEnv,
  writeFiles,
} from './lib.mjs';

const TARGET_NS = 1000; // < 1 µs added per env read

const DRIVER = `import { readKey } from 'stripe';
import { serveBatches } from './driver-protocol.mjs';
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

await serveBatches((name, n) => {
  const op = ops[name];
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) op();
  return { ns: Number(process.hrtime.bigint() - started) / n, sink };
}, probe);
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
  UNGUARDED,
  GUARDED,
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

export default {
  id: 'env',
  title: 'Environment reads',
  method: [
    'Three long-lived processes run the same loop: no guard, guard (`--import perimeter/register`, block policy with `env.allow`), and guard with `packages` env rules (`packages["*"]` may read APP_SETTING, `packages.stripe` may read STRIPE_API_KEY and APP_SETTING). Only a name that some package rule does not allow (here STRIPE_API_KEY) needs the call stack; every other name is decided without it.',
    'Each name is classified once per policy (readable by all, narrowed by some package, denied) and the class is cached, so an allowed read costs the Proxy trap plus one lookup. A denied read returns undefined; it is reported (with a stack capture) at most 8 times per name per second, so a hot loop over a denied name stays cheap.',
    OVERHEAD_TABLE_METHOD,
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
    const env = {
      ...unguardedEnv(),
      APP_SETTING: 'on',
      STRIPE_API_KEY: 'sk_test_benchmark0000000000',
      OTHER_SECRET: 'other-secret',
    };
    const samples = await measureDrivers({
      node,
      dir,
      driver: 'driver.mjs',
      variants: VARIANTS,
      // Events go to a file, not to the pipe the parent would have to drain.
      env: (variant) => ({ ...env, PERIMETER_EVENTS_FILE: path.join(dir, `events-${variant.id}.jsonl`) }),
      expectedProbe: (variant) => (variant.policy ? 'hidden' : 'visible'),
      operations: OPERATIONS,
      rounds,
      warmup,
      // Reads that capture the stack are ~100× slower: smaller batches keep the round time even.
      batchSize: (op) => (op.id.startsWith('narrowed') || op.id === 'keys' ? Math.ceil(batch / 20) : batch),
    });
    const { table, comparisons } = overheadTable({
      title: `Per read (${rounds} rounds × ${batch} reads per variant and operation, ${Math.ceil(batch / 20)} for the stack-capturing ones, after ${warmup} warm-up)`,
      operations: OPERATIONS,
      variants: VARIANTS,
      samples,
    });
    const checks = comparisons
      .filter(({ operation }) => operation.id === 'allowed' || operation.id === 'baseline')
      .map((comparison) => addedNsTarget(comparison, TARGET_NS));
    return { tables: [table], checks };
  },
};

if (isMain(import.meta.url)) runAlone('env');
