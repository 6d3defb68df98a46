// Load on `perimeter dev`: the gateway in front of one function, driven by autocannon on loopback, with the guard
// in the function's process and without it. The handler is a realistic small one: it parses a JSON body, reads two
// env variables, makes one allowed outbound `fetch` to a loopback "payments" server and answers JSON. So the guard
// is on the path of every request: the preload, the env reads, the egress decision, the invocation scope.
//
// Both variants run in the same benchmark run, alternated in rounds (off, guard, guard, off, …), each round a fresh
// autocannon run against an already warmed function; the table reports medians of the rounds and the ratio.
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fixed, isMain, median, REPO_ROOT, ratio, requireBuiltGuard, runAlone, tempTree } from './lib.mjs';

const require = createRequire(import.meta.url);
const CONNECTIONS = 16;
const ROUND_SECONDS = 4;
const ROUNDS = 6;
const TARGET_RATIO = 1.02;

const HANDLER = `export async function handler(event) {
  const order = JSON.parse(event.body);
  const response = await fetch(process.env.PAYMENTS_URL + '/v1/charges', {
    method: 'POST',
    headers: { authorization: 'Bearer ' + process.env.PAYMENTS_KEY, 'content-type': 'application/json' },
    body: JSON.stringify({ amount: order.amount, currency: order.currency }),
  });
  const charge = await response.json();
  return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ok: true, charge: charge.id, guarded: Boolean(globalThis[Symbol.for('perimeter.guard')]) }) };
}
`;

export default {
  id: 'dev-gateway',
  title: '`perimeter dev`: gateway + guarded function under load',
  method: [
    `One function behind the \`perimeter dev\` gateway (API Gateway v2 event), its handler parses the JSON body, reads two env variables and \`fetch\`es a loopback payments server (allowed by the policy) before answering.`,
    `autocannon in the benchmark's process, ${CONNECTIONS} connections, POST with a 120-byte JSON body; ${ROUNDS} rounds of ${ROUND_SECONDS} s per variant, alternating guard off / on, after a warm-up; medians of the rounds.`,
    '"no guard" runs the same function process without `--import perimeter/register` (everything else identical: gateway, IPC, event store). The function runs on the Node under test; the gateway and autocannon on the system Node.',
  ],
  target: `< ${Math.round((TARGET_RATIO - 1) * 100)} % fewer requests/s with the guard`,

  async run(node, { quick }) {
    requireBuiltGuard();
    const autocannon = require('autocannon');
    const { startDev } = await import(path.join(REPO_ROOT, 'packages/cli/dist/index.js'));
    const payments = await startPayments();
    const dir = tempTree('perimeter-bench-dev-', {
      'perimeter.config.json': {
        functions: {
          checkout: {
            handler: 'checkout.mjs',
            routes: ['POST /checkout'],
            env: { PAYMENTS_URL: payments.url, PAYMENTS_KEY: 'sk_test_bench' },
          },
        },
      },
      'checkout.mjs': HANDLER,
      'perimeter.json': {
        mode: 'block',
        network: { allow: [`POST ${payments.url}/v1/charges`] },
        env: { allow: ['PAYMENTS_URL', 'PAYMENTS_KEY'] },
      },
    });
    const body = JSON.stringify({
      amount: 4200,
      currency: 'eur',
      items: [{ sku: 'tee-blue-m', qty: 2 }],
      note: 'gift',
    });
    const rounds = quick ? 2 : ROUNDS;
    const seconds = quick ? 1 : ROUND_SECONDS;
    const samples = { off: [], guard: [] };
    try {
      const servers = {};
      for (const variant of ['off', 'guard']) {
        servers[variant] = await startDev({
          dir,
          port: 0,
          node: node.bin,
          watch: false,
          output: null,
          guard: variant === 'guard',
          db: path.join(dir, `.perimeter/${variant}.db`),
        });
      }
      const load = (variant, duration) =>
        autocannon({
          url: `${servers[variant].url}/checkout`,
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          connections: CONNECTIONS,
          duration,
        });
      // Proof of the variant: the function itself says whether the guard runs in its process.
      for (const variant of ['off', 'guard']) {
        const reply = await fetch(`${servers[variant].url}/checkout`, { method: 'POST', body });
        const { guarded } = await reply.json();
        if (guarded !== (variant === 'guard')) throw new Error(`${variant}: the function reports guarded=${guarded}`);
      }
      for (const variant of ['off', 'guard']) {
        const warm = await load(variant, 1);
        if (warm.non2xx > 0 || warm.errors > 0) {
          throw new Error(`${variant}: warm-up had ${warm.non2xx} non-2xx answers and ${warm.errors} errors`);
        }
      }
      for (let round = 0; round < rounds; round++) {
        const order = round % 2 === 0 ? ['off', 'guard'] : ['guard', 'off'];
        for (const variant of order) {
          const result = await load(variant, seconds);
          samples[variant].push({
            rps: result.requests.average,
            p50: result.latency.p50,
            p99: result.latency.p99,
            failures: result.non2xx + result.errors + result.timeouts,
          });
        }
      }
      const violations = servers.guard.store.count({ type: 'violation' });
      for (const server of Object.values(servers)) await server.close();
      const summary = (variant) => ({
        rps: median(samples[variant].map((s) => s.rps)),
        p50: median(samples[variant].map((s) => s.p50)),
        p99: median(samples[variant].map((s) => s.p99)),
        failures: samples[variant].reduce((sum, s) => sum + s.failures, 0),
      });
      const off = summary('off');
      const on = summary('guard');
      const slowdown = off.rps / on.rps;
      return {
        tables: [
          {
            title: 'requests per second and latency',
            columns: [
              { title: 'variant', align: 'left' },
              { title: 'req/s' },
              { title: 'p50 ms' },
              { title: 'p99 ms' },
              { title: 'failed' },
              { title: 'req/s ratio (off / guard)' },
            ],
            rows: [
              ['no guard', fixed(off.rps, 0), fixed(off.p50, 1), fixed(off.p99, 1), String(off.failures), ''],
              ['guard', fixed(on.rps, 0), fixed(on.p50, 1), fixed(on.p99, 1), String(on.failures), ratio(slowdown)],
            ],
          },
        ],
        checks: [
          { kind: 'check', name: 'every request answered 2xx', ok: off.failures === 0 && on.failures === 0 },
          { kind: 'check', name: `no violation under load (saw ${violations})`, ok: violations === 0 },
          {
            kind: 'target',
            name: `guard costs ${fixed((slowdown - 1) * 100, 1)} % of req/s`,
            ok: slowdown < TARGET_RATIO,
          },
        ],
      };
    } finally {
      await payments.close();
    }
  },
};

/** A loopback "payments" server answering every charge like a real API would, with a small JSON body. */
async function startPayments() {
  let next = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: `ch_${++next}`, object: 'charge', status: 'succeeded' }));
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

if (isMain(import.meta.url)) runAlone('dev-gateway');
