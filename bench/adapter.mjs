// What the `perimeter/lambda` wrapper adds to each invocation: a no-op async handler invoked in-process (awaited,
// one after another, as a runtime does) 100k times per sample, bare and wrapped, in a guarded process. The wrapper
// enters an invocation scope (AsyncLocalStorage), calls the handler, and flushes events when its promise settles.
// Target: under 1 µs added per invocation.
//
// Runs in a child process of the Node under test (`<node> --import perimeter/register bench/adapter.mjs --child`),
// so each major measures its own V8 and the guard is running as in production.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  childStdout,
  DIST,
  fixed,
  isMain,
  median,
  quantile,
  REGISTER,
  REPO_ROOT,
  ratio,
  requireBuiltGuard,
  runAlone,
  tempTree,
} from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);
const INVOCATIONS = 100_000;
const TARGET_NS = 1000;

export default {
  id: 'adapter',
  title: 'Lambda wrapper overhead per invocation',
  method: [
    `A no-op \`async (event, context) => undefined\` handler, awaited ${INVOCATIONS.toLocaleString('en')} times in a row per sample, in a process started with \`--import perimeter/register\` and a blocking policy; median of the samples, p10–p90 shown.`,
    '"wrapped" is `guard(handler)` from `perimeter/lambda`: invocation scope (function name, request id from the context), the call, a synchronous event flush when the promise settles. "wrapped + policy" adds a per-invocation narrower policy (`guard(handler, { policy })`).',
    '"bare, no AsyncLocalStorage in the process" is measured in a separate process where no scope was ever entered. On Node 20 and 22 the first AsyncLocalStorage turns on promise hooks, which slow every `await` in the process (wrapped or not); "added" is against "bare" measured beside the wrapped handlers, so that process-wide cost is the difference between the two bare rows. Node 24+ (AsyncContextFrame) has no such cost.',
  ],
  target: `< ${TARGET_NS} ns added per invocation`,

  async run(node, { quick }) {
    requireBuiltGuard();
    const dir = tempTree('perimeter-bench-adapter-', {
      'perimeter.json': {
        mode: 'block',
        network: { allow: ['https://api.stripe.com/v1/**'] },
        // The benchmark's own files and settings; the measured handler touches neither.
        fs: { read: [`${REPO_ROOT}/**`] },
        env: { allow: ['BENCH_*'] },
      },
    });
    const runChild = (extra) => childOutput(node, dir, [...extra, ...(quick ? ['--quick'] : [])]);
    // Two processes: in the first no invocation scope is ever entered, so no AsyncLocalStorage exists. On Node 20
    // and 22 creating one turns on promise hooks, which slow every await in the process, wrapped or not; the second
    // process measures bare and wrapped handlers side by side with that cost already paid by both.
    const pristine = JSON.parse(await runChild(['--bare-only']));
    const results = [...pristine, ...JSON.parse(await runChild([]))];
    const bare = results.find((r) => r.name === 'bare');
    const checks = [];
    return {
      tables: [
        {
          title: 'ns per invocation',
          columns: [
            { title: 'handler', align: 'left' },
            { title: 'ns/invocation' },
            { title: 'p10 … p90' },
            { title: 'added ns' },
            { title: 'ratio to bare' },
          ],
          rows: results.map((r) => {
            const added = r.median - bare.median;
            const wrapped = r.name.startsWith('wrapped');
            if (wrapped) checks.push({ name: `${r.name}: added ${fixed(added, 0)} ns`, ok: added < TARGET_NS });
            return [
              r.name,
              fixed(r.median, 1),
              `${fixed(r.p10, 1)} … ${fixed(r.p90, 1)}`,
              wrapped ? fixed(added, 1) : '',
              wrapped ? ratio(r.median / bare.median) : '',
            ];
          }),
        },
      ],
      notes: checks.map((c) => `${c.ok ? 'within' : 'OVER'} target: ${c.name}`),
    };
  },
};

function childOutput(node, dir, extra) {
  const args = ['--import', REGISTER, SELF, '--child', ...extra];
  return childStdout('adapter', node.bin, args, {
    cwd: dir,
    env: { ...process.env, NODE_OPTIONS: '', PERIMETER_POLICY: path.join(dir, 'perimeter.json') },
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Child side.

async function sample(handler, invocations) {
  const event = { amount: 1 };
  const context = { functionName: 'bench', awsRequestId: 'req-0' };
  const started = process.hrtime.bigint();
  for (let i = 0; i < invocations; i++) await handler(event, context);
  return Number(process.hrtime.bigint() - started) / invocations;
}

async function child(quick, bareOnly) {
  const noop = async (_event, _context) => undefined;
  const samples = quick ? 3 : 15;
  const invocations = quick ? INVOCATIONS / 10 : INVOCATIONS;
  if (bareOnly) {
    await sample(noop, invocations / 10);
    const values = [];
    for (let s = 0; s < samples; s++) values.push(await sample(noop, invocations));
    const name = 'bare, no AsyncLocalStorage in the process';
    process.stdout.write(
      JSON.stringify([{ name, median: median(values), p10: quantile(values, 0.1), p90: quantile(values, 0.9) }]),
    );
    return;
  }
  const require = createRequire(path.join(DIST, 'index.js'));
  const { guard } = require(path.join(DIST, 'lambda.js'));
  const variants = [
    { name: 'bare', handler: noop },
    { name: 'wrapped', handler: guard(noop) },
    { name: 'wrapped + policy', handler: guard(noop, { policy: { network: { allow: ['https://api.stripe.com'] } } }) },
  ];
  for (const v of variants) await sample(v.handler, invocations / 10); // warm-up: compilation, inline caches
  const perVariant = new Map(variants.map((v) => [v.name, []]));
  // Interleaved, so that a slow moment on a shared machine hits every variant alike.
  for (let s = 0; s < samples; s++) {
    for (const v of variants) perVariant.get(v.name).push(await sample(v.handler, invocations));
  }
  const results = variants.map((v) => {
    const values = perVariant.get(v.name);
    return { name: v.name, median: median(values), p10: quantile(values, 0.1), p90: quantile(values, 0.9) };
  });
  process.stdout.write(JSON.stringify(results));
}

if (process.argv.includes('--child')) {
  await child(process.argv.includes('--quick'), process.argv.includes('--bare-only'));
} else if (isMain(import.meta.url)) {
  runAlone('adapter');
}
