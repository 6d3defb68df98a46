// File system calls: the cost the fs guard adds to one call on an allowed path.
//
// Three long-lived child processes run the same loop: unguarded, guarded (block policy with fs rules), and
// guarded with a `packages` fs rule (which turns on call-stack capture for every fs decision). The parent drives
// them over IPC in rounds; within a round every variant runs one batch of each operation, in rotating order, so
// drift on the shared machine hits all variants alike. Added ns/op is the median over rounds of (variant −
// unguarded) in the same round.
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

const TARGET_NS = 1000; // < 1 µs added per fs call on an allowed path

// Each operation is run `n` times per batch. `code` files live in the function's folder (a path the guard
// remembers: no symlink, not writable); `scratch` files live in a folder the policy lets the function write,
// remembered too until something in the process changes the tree (a rename, a symlink, a child process…).
const DRIVER = `import fs from 'node:fs';
import path from 'node:path';
import { readConfig } from 'config-reader';
import { serveBatches } from './driver-protocol.mjs';

const here = path.dirname(new URL(import.meta.url).pathname);
const codeFile = path.join(here, 'data', 'small.json');
const scratchFile = path.join(here, 'scratch', 'small.json');

const ops = {
  readFileSync: () => fs.readFileSync(codeFile),
  statSync: () => fs.statSync(codeFile),
  existsSync: () => fs.existsSync(codeFile),
  readFileSyncWritableDir: () => fs.readFileSync(scratchFile),
  readFileSyncFromPackage: () => readConfig(codeFile),
  readFilePromise: () => fs.promises.readFile(codeFile),
  readFileCallback: () => new Promise((resolve, reject) => fs.readFile(codeFile, (e, d) => (e ? reject(e) : resolve(d)))),
};
const ASYNC = new Set(['readFilePromise', 'readFileCallback']);

function probe() {
  try {
    fs.readFileSync('/etc/shadow');
    return 'read';
  } catch (error) {
    return error.code === 'ERR_PERIMETER_BLOCKED' ? 'blocked' : 'failed: ' + error.code;
  }
}

await serveBatches(async (name, n) => {
  const op = ops[name];
  const started = process.hrtime.bigint();
  if (ASYNC.has(name)) for (let i = 0; i < n; i++) await op();
  else for (let i = 0; i < n; i++) op();
  return { ns: Number(process.hrtime.bigint() - started) / n };
}, probe);
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
  UNGUARDED,
  GUARDED,
  { id: 'packages', label: 'guard + packages fs rule', policy: 'policy-packages.json' },
];

const OPERATIONS = [
  { id: 'readFileSync', label: 'readFileSync 64 B (code folder)' },
  { id: 'statSync', label: 'statSync (code folder)' },
  { id: 'existsSync', label: 'existsSync (code folder)' },
  { id: 'readFileSyncWritableDir', label: 'readFileSync 64 B (writable folder)' },
  { id: 'readFileSyncFromPackage', label: 'readFileSync 64 B called from a dependency' },
  { id: 'readFilePromise', label: 'fs.promises.readFile 64 B (code folder), awaited' },
  { id: 'readFileCallback', label: 'fs.readFile 64 B (code folder), callback' },
];
// Async reads open on the thread pool, and on Linux the guard judges the file actually opened too (closing the
// check-then-open race): reported, but the < 1 µs budget is for the synchronous calls the issue names.
const ASYNC_OPERATIONS = new Set(['readFilePromise', 'readFileCallback']);
const UNBUDGETED = new Set(['readFileSyncFromPackage', ...ASYNC_OPERATIONS]);

export default {
  id: 'fs',
  title: 'File system calls',
  method: [
    'Three long-lived processes run the same loop: no guard, guard (`--import perimeter/register`, block policy with `fs.read`/`fs.write` rules), and guard with a `packages` fs rule for a dependency (turns on call-stack capture for every fs decision).',
    'Operations on a 64-byte file: `readFileSync`, `statSync` and `existsSync` in the function folder (a path with no symlink that the policy does not let the process change: its decision is remembered), `readFileSync` in a folder the policy lets the function write (remembered as well, and forgotten whenever the process renames, links, removes or creates entries, and for good once it starts a child process or a worker; the loop does none of these), and `readFileSync` called from inside a dependency.',
    OVERHEAD_TABLE_METHOD,
    'Async reads (`fs.promises.readFile`, `fs.readFile`) are awaited one after another; on Linux the guard also judges the file they actually opened (`/proc/self/fd`), which closes the check-then-open race, and `readFile` then reads through a second open. They are reported without a target: the < 1 µs budget is for synchronous calls.',
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
    const env = unguardedEnv();
    const samples = await measureDrivers({
      node,
      dir,
      driver: 'driver.mjs',
      variants: VARIANTS,
      env: () => ({ ...env }),
      expectedProbe: (variant) => (variant.policy ? 'blocked' : process.getuid?.() === 0 ? 'read' : 'failed: EACCES'),
      operations: OPERATIONS,
      rounds,
      warmup,
      // An async read takes ~100 µs: fewer per batch keeps the round short, as the synchronous batches are.
      batchSize: (operation) => (ASYNC_OPERATIONS.has(operation.id) ? batch / 10 : batch),
    });
    const { table, comparisons } = overheadTable({
      title: `Per call (${rounds} rounds × ${batch} calls per variant and operation, after ${warmup} warm-up)`,
      operations: OPERATIONS,
      variants: VARIANTS,
      samples,
    });
    const checks = comparisons
      .filter(({ operation, variant }) => variant === GUARDED && !UNBUDGETED.has(operation.id))
      .map((comparison) => addedNsTarget(comparison, TARGET_NS));
    return { tables: [table], checks };
  },
};

if (isMain(import.meta.url)) runAlone('fs');
