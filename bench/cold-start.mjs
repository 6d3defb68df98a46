// Cold start: from process start to "handler ready", for a realistic ESM handler file, without the guard and with
// it preloaded through --import and --require. Also: the guard's own start time measured inside the process,
// and a check that starting the guard makes no network call.
//
// Wall time is measured by the parent around a synchronous spawn (exec, Node bootstrap, preload, handler module,
// exit), so it is what a platform pays per cold start, plus a constant spawn overhead that cancels in the
// difference. "CPU" is process.cpuUsage() printed by the handler once it is defined: the work done to get there,
// which, unlike wall time, does not grow while other processes hold the cores. Variants run in rotating order
// within each round, and the added time is the median of the per-round differences, so machine-wide drift
// (other processes, thermal) cancels.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  fixed,
  isMain,
  median,
  quantile,
  REGISTER,
  REGISTER_IMPORT,
  ratio,
  requireBuiltGuard,
  rotation,
  runAlone,
  signed,
  tempTree,
  unguardedEnv,
} from './lib.mjs';

const ADDED_MS_TARGET = 5;

// What a function file typically does at load: import its clients, build them, export the handler.
const HANDLER = `import http from 'node:http';
import { randomUUID } from 'node:crypto';

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

export async function handler(event) {
  const body = JSON.stringify({ id: randomUUID(), event });
  return new Promise((resolve, reject) => {
    const request = http.request(
      { host: '127.0.0.1', port: 8080, path: '/orders', method: 'POST', agent },
      (response) => {
        response.resume();
        response.on('end', () => resolve({ statusCode: response.statusCode }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

// The platform would now call handler(); the benchmark stops the clock here.
const timing = globalThis[Symbol.for('perimeter.bench.timing')];
const cpu = process.cpuUsage();
process.stdout.write(
  JSON.stringify({ ready: performance.now(), cpu: (cpu.user + cpu.system) / 1000, guard: timing?.guard, guardCpu: timing?.guardCpu }),
);
`;

// The same handler plus dependencies loaded at start: 20 CommonJS packages of 10 files each (a small real function
// loads a few hundred files from node_modules).
const DEPENDENCY_PACKAGES = 20;
const DEPENDENCY_FILES = DEPENDENCY_PACKAGES * 10;

function dependencyFiles() {
  const files = {
    'handler-deps.mjs': `import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const loaded = [];
for (let i = 0; i < ${DEPENDENCY_PACKAGES}; i++) loaded.push(require(\`dep-\${i}\`));
${HANDLER}`,
  };
  for (let p = 0; p < DEPENDENCY_PACKAGES; p++) {
    files[`node_modules/dep-${p}/package.json`] = { name: `dep-${p}`, version: '1.0.0', main: 'index.js' };
    const parts = Array.from({ length: 9 }, (_, f) => `require('./lib/part-${f}.js')`);
    files[`node_modules/dep-${p}/index.js`] = `'use strict';\nmodule.exports = [${parts.join(', ')}];\n`;
    for (let f = 0; f < 9; f++) {
      files[`node_modules/dep-${p}/lib/part-${f}.js`] =
        `'use strict';\nconst table = ${JSON.stringify(Array.from({ length: 40 }, (_, i) => `${p}-${f}-${i}`))};\nmodule.exports = function part${f}(key) { return table.indexOf(key); };\n`;
    }
  }
  return files;
}

// Small, like a first real policy: a few hosts, one wildcard, a loopback dependency. The hosts are names on
// purpose: a guard that resolved them at start would show up in the network check below.
const POLICY = {
  mode: 'block',
  network: {
    allow: [
      'POST https://api.stripe.com/v1/**',
      'https://*.amazonaws.com',
      'https://hooks.slack.com/services/**',
      'http://127.0.0.1:8080',
    ],
  },
};

// Timing preloads placed around the guard (--require t0 --require guard --require t1): the guard's own import
// and policy load, measured in the process with the same clock, without the handler.
const TIMER_KEY = "Symbol.for('perimeter.bench.timing')";
const START_TIMER = `globalThis[${TIMER_KEY}] = { started: performance.now(), cpu: process.cpuUsage() };\n`;
const STOP_TIMER = `{
  const t = globalThis[${TIMER_KEY}];
  t.guard = performance.now() - t.started;
  const cpu = process.cpuUsage(t.cpu);
  t.guardCpu = (cpu.user + cpu.system) / 1000;
}
`;

function variants(dir) {
  const timers = (ext) => [path.join(dir, `start-timer.${ext}`), path.join(dir, `stop-timer.${ext}`)];
  const [startCjs, stopCjs] = timers('cjs');
  const [startMjs, stopMjs] = timers('mjs');
  return [
    { id: 'none', label: 'no guard', args: [] },
    { id: 'import', label: '--import perimeter/register', args: ['--import', REGISTER_IMPORT], baseline: 'none' },
    { id: 'require', label: '--require perimeter/register', args: ['--require', REGISTER], baseline: 'none' },
    // A function with dependencies: every file the module loader reads is a file system access the guard sees.
    { id: 'deps-none', label: `no guard, +${DEPENDENCY_FILES} dependency files`, args: [], main: 'handler-deps.mjs' },
    {
      id: 'deps-import',
      label: `--import, +${DEPENDENCY_FILES} dependency files`,
      args: ['--import', REGISTER_IMPORT],
      main: 'handler-deps.mjs',
      baseline: 'deps-none',
    },
    // In-process breakdown; the floor is the two timers with nothing between them.
    { id: 'timer-floor', args: ['--require', startCjs, '--require', stopCjs], timing: true },
    { id: 'timed-require', args: ['--require', startCjs, '--require', REGISTER, '--require', stopCjs], timing: true },
    {
      id: 'timed-import',
      args: ['--import', startMjs, '--import', REGISTER_IMPORT, '--import', stopMjs],
      timing: true,
    },
  ];
}

function runOnce(node, variant, dir, env) {
  const started = performance.now();
  const result = spawnSync(node.bin, [...variant.args, path.join(dir, variant.main ?? 'handler.mjs')], {
    cwd: dir,
    env,
    encoding: 'utf8',
  });
  const wall = performance.now() - started;
  if (result.status !== 0 || result.stderr) {
    throw new Error(
      `cold start "${variant.id}" on Node ${node.version} exited with ${result.status ?? result.signal}: ${result.stderr}`,
    );
  }
  const printed = JSON.parse(result.stdout);
  return { wall, ready: printed.ready, cpu: printed.cpu, guard: printed.guard, guardCpu: printed.guardCpu };
}

/** Counts inet connect/send system calls of a guarded start with strace (-f: every thread and child). */
function networkCallsAtStart(node, dir, env, preloadArgs) {
  const which = spawnSync('sh', ['-c', 'command -v strace'], { encoding: 'utf8' });
  if (which.status !== 0) return { skipped: 'strace not installed (apt-get install -y strace)' };
  const traceFile = path.join(dir, `strace-${preloadArgs[0].replace(/^-+/, '')}.txt`);
  const result = spawnSync(
    'strace',
    [
      '-f',
      '-qq',
      '-o',
      traceFile,
      '-e',
      'trace=connect,sendto,sendmsg,sendmmsg',
      node.bin,
      ...preloadArgs,
      'handler.mjs',
    ],
    { cwd: dir, env, encoding: 'utf8' },
  );
  if (result.status !== 0 || !existsSync(traceFile)) {
    return { skipped: `strace failed (${result.status}): ${result.stderr.trim().split('\n').at(-1)}` };
  }
  const lines = readFileSync(traceFile, 'utf8').split('\n');
  const inet = lines.filter((line) => /AF_INET6?\b/.test(line));
  const any = lines.filter((line) => /\b(connect|sendto|sendmsg|sendmmsg)\(/.test(line));
  return { inet: inet.length, all: any.length, sample: inet.slice(0, 3) };
}

export default {
  id: 'cold-start',
  title: 'Cold start',
  method: [
    'A handler file (ESM: imports `node:http` and `node:crypto`, builds a keep-alive Agent, exports a handler, prints `performance.now()` and exits) started as a fresh process, with a 4-rule policy file beside it (found the way the preload finds it in production).',
    '**wall**: parent-side time around `spawnSync` (exec → exit). **CPU**: `process.cpuUsage()` (user + system, all threads) in the handler once it is defined: the work done from process start to ready, which unlike wall time does not grow when other processes compete for the cores. Variants alternate in rotating order within each round; **added** is the median of the per-round differences to "no guard", **ratio** is median/median of wall.',
    '**guard start (in process)**: `performance.now()` in a `--require`/`--import` preload before and after the guard preload, minus the same two timers with nothing between them. `--import` loads what `--import perimeter/register` resolves to (`dist/register.mjs`), `--require` loads `dist/register.js`.',
    '**+200 dependency files**: the same handler first `require`s 20 CommonJS packages of 10 files each from `node_modules` (every file the module loader reads passes the fs guard); its added time is against the same app without the guard.',
    '**network calls at start**: the guarded start run under `strace -f -e trace=connect,sendto,sendmsg,sendmmsg`; any AF_INET/AF_INET6 call counts.',
  ],
  target: `< ${ADDED_MS_TARGET} ms added (median)`,

  async run(node, { quick }) {
    requireBuiltGuard();
    const rounds = quick ? 4 : 30;
    const dir = tempTree('perimeter-bench-cold-', {
      'handler.mjs': HANDLER,
      ...dependencyFiles(),
      'perimeter.json': POLICY,
      'start-timer.cjs': START_TIMER,
      'stop-timer.cjs': STOP_TIMER,
      'start-timer.mjs': START_TIMER,
      'stop-timer.mjs': STOP_TIMER,
    });
    const env = unguardedEnv();
    const all = variants(dir);
    const samples = new Map(all.map((variant) => [variant.id, []]));
    for (const variant of all) runOnce(node, variant, dir, env); // warm the page cache, not measured
    for (let round = 0; round < rounds; round++) {
      for (const variant of rotation(all, round)) samples.get(variant.id)[round] = runOnce(node, variant, dir, env);
    }

    const startRows = all
      .filter((variant) => !variant.timing)
      .map((variant) => {
        const runs = samples.get(variant.id);
        const wall = runs.map((run) => run.wall);
        const cpu = runs.map((run) => run.cpu);
        const base = samples.get(variant.baseline ?? variant.id);
        const addedWall = median(runs.map((run, i) => run.wall - base[i].wall));
        const addedCpu = median(runs.map((run, i) => run.cpu - base[i].cpu));
        return {
          id: variant.id,
          baseline: variant.baseline,
          addedWall,
          addedCpu,
          cells: [
            variant.label,
            fixed(median(wall)),
            fixed(quantile(wall, 0.9)),
            variant.baseline ? signed(addedWall) : '',
            variant.baseline ? ratio(median(wall) / median(base.map((run) => run.wall))) : '',
            fixed(median(cpu)),
            variant.baseline ? signed(addedCpu) : '',
          ],
        };
      });

    const floor = median(samples.get('timer-floor').map((run) => run.guard));
    const cpuFloor = median(samples.get('timer-floor').map((run) => run.guardCpu));
    const guardRows = ['timed-require', 'timed-import'].map((id) => {
      const guard = samples.get(id).map((run) => run.guard - floor);
      const guardCpu = samples.get(id).map((run) => run.guardCpu - cpuFloor);
      return [
        id === 'timed-require' ? '--require' : '--import',
        fixed(median(guard), 2),
        fixed(quantile(guard, 0.9), 2),
        fixed(median(guardCpu), 2),
      ];
    });

    const network = [
      ['--import', networkCallsAtStart(node, dir, env, ['--import', REGISTER_IMPORT])],
      ['--require', networkCallsAtStart(node, dir, env, ['--require', REGISTER])],
    ];

    const checks = [];
    for (const row of startRows.filter((r) => r.baseline)) {
      checks.push({
        name: `cold start ${row.id}: added ${fixed(row.addedWall)} ms wall, ${fixed(row.addedCpu)} ms CPU (target < ${ADDED_MS_TARGET} ms)`,
        ok: row.addedWall < ADDED_MS_TARGET && row.addedCpu < ADDED_MS_TARGET,
        kind: 'target',
      });
    }
    for (const [flag, outcome] of network) {
      if (outcome.skipped)
        checks.push({ name: `network calls at start (${flag}): ${outcome.skipped}`, ok: true, kind: 'skipped' });
      else
        checks.push({
          name: `network calls at start (${flag}): ${outcome.inet} inet connect/send system calls`,
          ok: outcome.inet === 0,
          kind: 'check',
          detail: outcome.sample.join('\n'),
        });
    }

    return {
      tables: [
        {
          title: `Process start → handler ready (ms, ${rounds} runs per variant)`,
          columns: [
            { title: 'variant', align: 'left' },
            { title: 'wall median' },
            { title: 'wall p90' },
            { title: 'added' },
            { title: 'ratio' },
            { title: 'CPU median' },
            { title: 'CPU added' },
          ],
          rows: startRows.map((row) => row.cells),
        },
        {
          title: 'Guard start inside the process: import + policy load + interceptor install (ms)',
          columns: [
            { title: 'preload', align: 'left' },
            { title: 'wall median' },
            { title: 'wall p90' },
            { title: 'CPU median' },
          ],
          rows: guardRows,
        },
        {
          title: 'Network system calls during a guarded start (strace)',
          columns: [{ title: 'preload', align: 'left' }, { title: 'inet connect/send' }, { title: 'any connect/send' }],
          rows: network.map(([flag, outcome]) =>
            outcome.skipped ? [flag, 'skipped', outcome.skipped] : [flag, String(outcome.inet), String(outcome.all)],
          ),
        },
      ],
      checks,
    };
  },
};

if (isMain(import.meta.url)) runAlone('cold-start');
