// The dashboard in a real Chromium, served by the real `perimeter dashboard --db`, over a real store filled with
// events the guard wrote while running a function with a compromised dependency.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  assertBuilt,
  launchBrowser,
  makeTempDir,
  openDashboard,
  openStore,
  runCli,
  runGuarded,
  startDashboardCommand,
  writeFixture,
} from './helpers.mjs';

const POLICIES = {
  checkout: { mode: 'block', network: { allow: ['GET https://api.example.com/**'] } },
  catalog: { mode: 'alert', network: { allow: ['GET https://api.example.com/**'] } },
};
// Attacker-chosen text, as a compromised package would put it in a DNS name: it must show as text, never run.
const HOSTILE_NAME = '<img src=x onerror=window.__pwned=1>.attacker.test';

let dir;
let store;
const POLICY_FILES = {};
let dashboard;
let browser;

before(async () => {
  assertBuilt();
  dir = makeTempDir();
  writeFixture(dir);
  store = await openStore(path.join(dir, 'events.db'));
  const checkout = runGuarded(dir, { name: 'checkout', policy: POLICIES.checkout, tag: 't1' });
  const catalog = runGuarded(dir, { name: 'catalog', policy: POLICIES.catalog, tag: 'c1' });
  POLICY_FILES.checkout = checkout.policyFile;
  const intruder = runGuarded(dir, { name: 'intruder', policy: POLICIES.checkout, tag: 'i1', lookup: HOSTILE_NAME });
  for (const event of [...checkout.events, ...catalog.events, ...intruder.events]) store.append(event);
  const now = new Date().toISOString();
  const handler = path.join(dir, 'handler.mjs');
  const base = { handler, format: 'lambda', trigger: 'http', updatedAt: now };
  store.upsertFunction({
    ...base,
    name: 'checkout',
    routes: ['POST /api/checkout'],
    policyFile: checkout.policyFile,
    policy: POLICIES.checkout,
    status: 'ready',
  });
  store.upsertFunction({
    ...base,
    name: 'catalog',
    routes: ['/catalog'],
    policyFile: catalog.policyFile,
    policy: POLICIES.catalog,
    status: 'ready',
  });
  store.upsertFunction({
    ...base,
    name: 'broken',
    routes: ['/broken'],
    policyFile: path.join(dir, 'broken.json'),
    policy: null,
    status: 'failed',
    error: 'ERR_PERIMETER_POLICY_INVALID: network.allow[0] is not a rule',
  });
  const started = Date.now() - 5000;
  store.recordInvocation({
    id: 'req-1',
    function: 'checkout',
    trigger: 'http',
    request: 'POST /api/checkout',
    startMs: started,
    durationMs: 42,
    outcome: 'ok',
    statusCode: 200,
  });
  store.recordInvocation({
    id: 'req-2',
    function: 'catalog',
    trigger: 'http',
    request: 'GET /catalog',
    startMs: started + 10,
    durationMs: 8,
    outcome: 'error',
    statusCode: 500,
    error: 'boom',
  });
  store.flush();
  dashboard = await startDashboardCommand(store.file);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  const code = await dashboard?.stop();
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  // SIGTERM is the normal way to stop it: it must close cleanly, exit code 0.
  if (dashboard) assert.equal(code, 0, `perimeter dashboard exited with ${code}: ${dashboard.output().stderr}`);
});

test('the page loads without console errors and shows the blocked events, hostile text as text', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    const rows = page.getByTestId('event-row');
    await waitFor(async () => (await rows.count()) === store.count(), 'every stored event in the table');
    const blockedBadges = page.locator('[data-testid="event-row"] .badge.blocked');
    assert.equal(await blockedBadges.count(), store.count({ action: 'blocked' }));
    assert.ok(store.count({ action: 'blocked' }) >= 3);

    const summary = store.summary();
    await waitFor(
      async () => (await page.getByTestId('total-blocked').textContent()) === summary.blocked.toLocaleString('en'),
      'header totals',
    );
    assert.equal(await page.getByTestId('total-events').textContent(), summary.total.toLocaleString('en'));
    assert.equal(await page.getByTestId('total-alerted').textContent(), summary.alerted.toLocaleString('en'));
    assert.match(await page.getByTestId('total-invocations').textContent(), /^2 \(1 failed\)$/);

    // Every blocked target the guard reported is in the table, the hostile one verbatim and inert.
    const targets = await page.locator('[data-testid="event-row"] td.target').allTextContents();
    for (const { event } of store.query({ action: 'blocked' })) {
      assert.ok(
        targets.some((text) => text.startsWith(event.target)),
        `${event.target} in the table`,
      );
    }
    assert.ok(targets.some((text) => text.includes(`dns:${HOSTILE_NAME}`)));
    assert.equal(await page.locator('[data-testid="events"] img').count(), 0);
    assert.equal(await page.evaluate(() => window.__pwned), undefined);

    // The table is a real table: headers are column headers, for screen readers too.
    const headers = await page.locator('[data-testid="events"] thead th[scope="col"]').allTextContents();
    assert.deepEqual(headers, ['Time', 'Function', 'Package', 'Action', 'Capability', 'Target', 'Reason']);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('filtering by function narrows the table, and the URL reproduces the view', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    await page.getByTestId('filter-function').selectOption('catalog');
    await page.waitForURL(/[?&]function=catalog\b/);
    const expected = store.count({ function: 'catalog' });
    assert.ok(expected > 0);
    await waitFor(async () => {
      const functions = await page.locator('[data-testid="event-row"] td:nth-child(2)').allTextContents();
      return functions.length === expected && functions.every((name) => name === 'catalog');
    }, 'only catalog rows');
    const alerted = await page.locator('[data-testid="event-row"] .badge.alerted').count();
    assert.equal(alerted, expected, 'catalog runs in alert mode: every row alerted');

    await page.getByTestId('filter-action').selectOption('blocked');
    await page.waitForURL(/action=blocked/);
    await page.getByText('No events match these filters.').waitFor();

    // A copied link opens the same view, cold.
    const link = page.url();
    const second = await openDashboard(browser, link);
    try {
      assert.equal(await second.page.getByTestId('filter-function').inputValue(), 'catalog');
      assert.equal(await second.page.getByTestId('filter-action').inputValue(), 'blocked');
      await second.page.getByText('No events match these filters.').waitFor();
      // Back to all actions: the catalog rows return.
      await second.page.getByTestId('filter-action').selectOption('');
      await waitFor(
        async () => (await second.page.getByTestId('event-row').count()) === expected,
        'catalog rows again',
      );
      assert.doesNotMatch(second.page.url(), /action=/);
      assert.deepEqual(second.problems, []);
    } finally {
      await second.close();
    }
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('a new event appears live, without a reload', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    await page.evaluate(() => {
      window.__sameDocument = true;
    });
    const before = await page.getByTestId('event-row').count();
    assert.equal(before, store.count());
    const { events } = runGuarded(dir, { name: 'checkout', policy: POLICIES.checkout, tag: 'live42' });
    for (const event of events) store.append(event);
    store.flush();

    const fresh = page.locator('[data-testid="event-row"] td.target', { hasText: 'collect?k=live42' });
    await fresh.waitFor({ timeout: 10_000 });
    // Newest first: the new events are the top rows.
    const top = await page.locator('[data-testid="event-row"] td.target').first().textContent();
    assert.ok(
      events.some((event) => top.startsWith(event.target)),
      `top row ${top} is one of the new events`,
    );
    await waitFor(async () => (await page.getByTestId('event-row').count()) === before + events.length, 'all new rows');
    await waitFor(
      async () => (await page.getByTestId('total-events').textContent()) === store.summary().total.toLocaleString('en'),
      'totals updated by the stream',
    );
    assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
    assert.equal(await page.getByTestId('live').getAttribute('data-state'), 'live');
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('the graph and the chart render', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    const summary = store.summary();
    const names = (kind) =>
      page
        .locator(`[data-testid="graph-node"][data-kind="${kind}"]`)
        .evaluateAll((nodes) => nodes.map((node) => node.getAttribute('data-name')));
    await waitFor(async () => (await names('function')).length > 0, 'graph nodes');
    assert.deepEqual(new Set(await names('function')), new Set(summary.edges.map((edge) => edge.function)));
    assert.deepEqual(new Set(await names('package')), new Set(summary.edges.map((edge) => edge.package)));
    assert.deepEqual(new Set(await names('destination')), new Set(summary.edges.map((edge) => edge.destination)));
    assert.ok((await names('package')).includes('leaky-sdk'));
    assert.ok((await page.locator('[data-testid="graph-edge"][data-kind="blocked"]').count()) > 0);
    assert.ok((await page.locator('[data-testid="graph-edge"][data-kind="alerted"]').count()) > 0);

    const canvas = page.locator('[data-testid="chart"] canvas');
    assert.equal(await canvas.count(), 1);
    const box = await canvas.boundingBox();
    assert.ok(box && box.width > 200 && box.height > 100, `chart canvas is ${JSON.stringify(box)}`);

    // A function node is a keyboard-operable filter.
    await page.locator('[data-testid="graph-node"][data-kind="function"][data-name="catalog"]').focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/function=catalog/);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('the chart holds every event: its bars add up to the totals', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    const summary = store.summary();
    const plotted = summary.timeline.buckets.reduce((sum, bucket) => sum + bucket.blocked + bucket.alerted, 0);
    assert.equal(plotted, summary.blocked + summary.alerted, 'the store’s timeline covers every event');
    await waitFor(
      async () =>
        (await page.getByTestId('chart').getAttribute('aria-label')) ===
        `Events over time: ${summary.blocked} blocked and ${summary.alerted} alerted`,
      'the chart to hold every event',
    );
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

test('selecting a function shows its policy in effect and what learn would change', async () => {
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    const item = page.locator('[data-testid="function"][data-name="checkout"] button');
    await item.focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/selected=checkout/);
    const detail = page.locator('[data-testid="detail"][data-function="checkout"]');
    const policy = JSON.parse(await detail.getByTestId('policy').textContent());
    assert.deepEqual(policy, POLICIES.checkout);

    // What the dashboard suggests is what `perimeter learn` says for the same store and policy.
    const args = [
      'learn',
      '--events',
      store.file,
      '--function',
      'checkout',
      '--policy',
      POLICY_FILES.checkout,
      '--json',
    ];
    const learn = runCli(args);
    assert.equal(learn.status, 0, learn.stderr);
    const expected = JSON.parse(learn.stdout).changes.map((change) => change.message);
    assert.ok(expected.length > 0);
    await detail.getByTestId('suggestion').waitFor();
    await waitFor(
      async () =>
        JSON.stringify(await detail.locator('[data-testid="suggestion-change"] .message').allTextContents()) ===
        JSON.stringify(expected),
      `the suggestion to be ${JSON.stringify(expected)}`,
    );

    // A function that failed to start says why.
    const broken = page.locator('[data-testid="function"][data-name="broken"]');
    assert.equal(await broken.getAttribute('data-status'), 'failed');
    assert.match(await broken.getByTestId('function-error').textContent(), /ERR_PERIMETER_POLICY_INVALID/);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});

/** Polls `check` until it returns true (10 s at most). */
async function waitFor(check, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

test('older events are a click away: the table pages back by id', async () => {
  // Enough rows for more than one page (200): the same real event, stored again and again, as a retry loop would.
  const { events } = runGuarded(dir, { name: 'checkout', policy: POLICIES.checkout, tag: 'loop' });
  for (let i = 0; i < 250; i++) store.append({ ...events[0], time: new Date(Date.now() - i).toISOString() });
  store.flush();
  const total = store.count();
  assert.ok(total > 200 && total <= 1000);
  const { page, problems, close } = await openDashboard(browser, dashboard.url);
  try {
    const rows = page.getByTestId('event-row');
    await waitFor(async () => (await rows.count()) === 200, 'the first page');
    await page.getByRole('button', { name: 'Load older events' }).click();
    await waitFor(async () => (await rows.count()) === total, 'every event after paging back');
    const ids = await rows.evaluateAll((list) => list.map((row) => Number(row.getAttribute('data-id'))));
    assert.deepEqual(
      ids,
      [...ids].sort((a, b) => b - a),
      'newest first, no duplicates across pages',
    );
    assert.equal(new Set(ids).size, ids.length);
    assert.equal(await page.getByRole('button', { name: 'Load older events' }).count(), 0);
    assert.deepEqual(problems, []);
  } finally {
    await close();
  }
});
