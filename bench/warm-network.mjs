// Warm invocations: the per-invocation cost the guard adds to a handler that is already loaded, for three
// realistic handlers: one loopback `fetch`, one `http.request` through a keep-alive Agent, and pure JSON work
// (parse + stringify of a ~10 KB document; the guard is not involved, so its ratio shows the noise floor).
//
// Three long-lived child processes run the same function code: unguarded, guarded, and guarded with a
// `packages` rule (which turns on call-stack capture for every network decision). A separate process serves
// the loopback HTTP endpoint so its work is not counted in any of them. The parent drives the children over
// IPC in rounds; within a round every variant runs one batch of each handler, in rotating order, so drift on the
// shared machine hits all variants alike. The ratio is the median of the per-round ratios to "no guard".
import path from 'node:path';
import {
  compareRounds,
  fixed,
  forkUntilReady,
  GUARDED,
  isMain,
  mean,
  measureDrivers,
  percent,
  ratio,
  requireBuiltGuard,
  runAlone,
  signed,
  tempTree,
  UNGUARDED,
  unguardedEnv,
  writeFiles,
} from './lib.mjs';

const FETCH_TARGET = 0.02; // < 2% added on the fetch handler

const SERVER = `import http from 'node:http';
const body = JSON.stringify({ id: 'ord_1', status: 'paid', amount: 4200, currency: 'eur', items: [{ sku: 'A-1', qty: 2 }] });
const server = http.createServer((request, response) => {
  request.resume();
  request.on('end', () => {
    response.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    response.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
process.on('disconnect', () => process.exit(0));
`;

// A dependency that talks to an API: with a packages rule for it, every decision reads the stack.
const CLIENT_PACKAGE = `import http from 'node:http';

export async function fetchOrder(base, id) {
  const response = await fetch(\`\${base}/orders/\${id}\`, { headers: { accept: 'application/json' } });
  return response.json();
}

export function requestOrder(agent, port, id) {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, path: \`/orders/\${id}\`, agent }, (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk) => (text += chunk));
      response.on('end', () => resolve(JSON.parse(text)));
    });
    request.on('error', reject);
    request.end();
  });
}
`;

const HANDLERS = `import http from 'node:http';
import { fetchOrder, requestOrder } from 'orders-client';

const port = Number(process.env.BENCH_SERVER_PORT);
const base = \`http://127.0.0.1:\${port}\`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

// ~10 KB of typical API JSON.
const catalogue = JSON.stringify({
  page: 1,
  items: Array.from({ length: 40 }, (_, i) => ({
    id: \`prod_\${i}\`,
    name: \`Product number \${i}\`,
    price: { amount: 1000 + i * 37, currency: 'eur' },
    tags: ['new', 'sale', \`tag-\${i % 7}\`],
    stock: { warehouse: 'fra-1', quantity: i * 3, updatedAt: '2026-01-01T00:00:00.000Z' },
    active: i % 3 !== 0,
  })),
});

export const handlers = {
  async fetch(event) {
    const order = await fetchOrder(base, event.id);
    return { statusCode: 200, body: JSON.stringify({ ok: order.status === 'paid' }) };
  },
  async httpRequest(event) {
    const order = await requestOrder(agent, port, event.id);
    return { statusCode: 200, body: JSON.stringify({ ok: order.status === 'paid' }) };
  },
  async json(event) {
    const parsed = JSON.parse(catalogue);
    parsed.page = event.id;
    for (const item of parsed.items) item.active = !item.active;
    return { statusCode: 200, body: JSON.stringify(parsed) };
  },
};
`;

// Runs batches on request. Before any measurement it proves the guard state it claims: a fetch to a path the
// policy does not allow must be blocked by the guard, and succeed without it.
const DRIVER = `import { handlers } from './handlers.mjs';
import { serveBatches } from './driver-protocol.mjs';

async function probe() {
  try {
    const response = await fetch(\`http://127.0.0.1:\${process.env.BENCH_SERVER_PORT}/admin\`);
    await response.arrayBuffer();
    return 'allowed';
  } catch (error) {
    return error.code === 'ERR_PERIMETER_BLOCKED' ? 'blocked' : 'failed: ' + (error.cause?.code ?? error.code ?? error.message);
  }
}

await serveBatches(async (name, n) => {
  const handler = handlers[name];
  const event = { id: 1 };
  const cpu = process.cpuUsage();
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await handler(event);
  const ns = Number(process.hrtime.bigint() - started);
  const used = process.cpuUsage(cpu);
  return { ns, cpuUs: used.user + used.system };
}, probe);
`;

function policies(port) {
  const network = {
    allow: ['POST https://api.stripe.com/v1/**', 'https://*.amazonaws.com', `http://127.0.0.1:${port}/orders/**`],
  };
  // The handler reads its server's port from the environment, as functions read their configuration.
  const env = { allow: ['BENCH_SERVER_PORT'] };
  return {
    'policy-guard.json': { mode: 'block', network, env },
    'policy-packages.json': {
      mode: 'block',
      network,
      env,
      packages: { 'orders-client': { network: { allow: [`http://127.0.0.1:${port}/orders/**`] } } },
    },
  };
}

const VARIANTS = [
  UNGUARDED,
  GUARDED,
  { id: 'packages', label: 'guard + packages rule', policy: 'policy-packages.json' },
];

const HANDLER_NAMES = [
  { id: 'fetch', label: 'fetch (loopback)' },
  { id: 'httpRequest', label: 'http.request, keep-alive Agent' },
  { id: 'json', label: 'JSON parse+stringify 10 KB' },
];

export default {
  id: 'warm-network',
  title: 'Warm invocations',
  method: [
    'Three long-lived processes run the same handler code: no guard, guard (`--import perimeter/register`, 3-rule block policy), and guard with a `packages` rule for the dependency that makes the call (turns on call-stack capture for every decision). The loopback HTTP server (keep-alive) runs in a fourth process.',
    'Handlers: **fetch** (a dependency `fetch`es 127.0.0.1 and parses the JSON), **http.request** (same through a keep-alive `http.Agent`), **JSON** (parse + stringify of ~10 KB, no I/O: the guard is not involved, so its ratio is the noise floor).',
    'Each round every process runs one short batch of each handler, in rotating order. **µs/inv** is wall time / invocations (sequential `await`s); **ratio** is the median over rounds of (variant batch / unguarded batch of the same round), p10–p90 of those per-round ratios shows the spread; **added µs** is the median of per-round differences.',
    '**CPU µs/inv** is `process.cpuUsage()` of the handler process over the batch (user + system, all threads): the guard only adds CPU work, and CPU time does not grow when other processes compete for the 2 cores, so **CPU ratio** is the steadier reading; the wall ratio is the user-visible one.',
    'Before measuring, each process proves its state: a `fetch` to a loopback path the policy does not allow is blocked with ERR_PERIMETER_BLOCKED in the guarded ones and succeeds in the unguarded one.',
  ],
  target: `fetch handler < ${FETCH_TARGET * 100}% added`,

  async run(node, { quick }) {
    requireBuiltGuard();
    const warmup = quick ? 50 : 300;
    // Short batches in many rounds: load from other processes comes and goes on the scale of 100 ms, and shorter
    // interleaving lets each round's variants see the same conditions.
    const rounds = quick ? 4 : 160;
    const batch = quick ? 20 : 25;
    const dir = tempTree('perimeter-bench-warm-', {
      'server.mjs': SERVER,
      'handlers.mjs': HANDLERS,
      'driver.mjs': DRIVER,
      'node_modules/orders-client/package.json': {
        name: 'orders-client',
        version: '1.0.0',
        type: 'module',
        main: 'index.js',
      },
      'node_modules/orders-client/index.js': CLIENT_PACKAGE,
    });
    const env = unguardedEnv();
    const server = await forkUntilReady(path.join(dir, 'server.mjs'), { env, cwd: dir });
    const port = server.message.port;
    writeFiles(dir, policies(port));

    try {
      // handler id → variant id → { wall, cpu } µs per invocation, one per round
      const samples = await measureDrivers({
        node,
        dir,
        driver: 'driver.mjs',
        variants: VARIANTS,
        env: () => ({ ...env, BENCH_SERVER_PORT: String(port) }),
        expectedProbe: (variant) => (variant.policy ? 'blocked' : 'allowed'),
        operations: HANDLER_NAMES,
        rounds,
        warmup,
        batchSize: () => batch,
        // The driver replies with totals for the batch.
        sample: (reply, n) => ({ wall: reply.ns / n / 1000, cpu: reply.cpuUs / n }),
      });

      const rows = [];
      const checks = [];
      for (const handler of HANDLER_NAMES) {
        const off = samples.get(handler.id).get(UNGUARDED.id);
        for (const variant of VARIANTS) {
          const runs = samples.get(handler.id).get(variant.id);
          const wall = compareRounds(
            runs.map((run) => run.wall),
            off.map((run) => run.wall),
          );
          const cpu = compareRounds(
            runs.map((run) => run.cpu),
            off.map((run) => run.cpu),
          );
          const isOff = variant === UNGUARDED;
          rows.push([
            handler.label,
            variant.label,
            fixed(mean(runs.map((run) => run.wall)), 1),
            isOff ? '' : signed(wall.added, 2),
            isOff ? '' : ratio(wall.ratio),
            isOff ? '' : `${percent(wall.p10 - 1)} … ${percent(wall.p90 - 1)}`,
            fixed(mean(runs.map((run) => run.cpu)), 1),
            isOff ? '' : ratio(cpu.ratio),
          ]);
          if (handler.id === 'fetch' && !isOff) {
            checks.push({
              name: `fetch handler, ${variant.label}: ${percent(wall.ratio - 1)} wall, ${percent(cpu.ratio - 1)} CPU (target < ${FETCH_TARGET * 100}% wall)`,
              ok: wall.ratio - 1 < FETCH_TARGET,
              kind: 'target',
            });
          }
        }
      }
      return {
        tables: [
          {
            title: `Per invocation (${rounds} rounds × ${batch} invocations per variant and handler, after ${warmup} warm-up)`,
            columns: [
              { title: 'handler', align: 'left' },
              { title: 'variant', align: 'left' },
              { title: 'µs/inv' },
              { title: 'added µs' },
              { title: 'ratio' },
              { title: 'p10 … p90 of round ratios' },
              { title: 'CPU µs/inv' },
              { title: 'CPU ratio' },
            ],
            rows,
          },
        ],
        checks,
      };
    } finally {
      server.child.disconnect();
    }
  },
};

if (isMain(import.meta.url)) runAlone('warm-network');
