/**
 * The README's first command: examples/shop/demo.mjs, run as a real process (real `perimeter dev`, real function
 * processes, real loopback servers). It must tell a story that holds, and it must be able to fail: under an
 * alert-mode policy the attack goes through and the demo says so; without the guard the attack lands (else the
 * guarded run would prove nothing); a broken policy stops that function with a clear message.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../../..');
const DEMO = join(REPO, 'examples/shop/demo.mjs');
const scratch = mkdtempSync(join(tmpdir(), 'perimeter-shop-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function demo(args: string[]): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((done) => {
    const started = Date.now();
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete env.FORCE_COLOR;
    // stdin is not a terminal, as in CI: even without --once the demo must not stay up.
    const child = spawn(process.execPath, [DEMO, ...args], { cwd: REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      out += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, out, ms: Date.now() - started });
    });
  });
}

/** The rows of "What Perimeter blocked": function and package carry down from the row that names them. */
function blockedRows(out: string) {
  const section = out.split('What Perimeter blocked')[1]?.split(/attempt\(s\) blocked/)[0] ?? '';
  const rows: Array<{ function: string; package: string; capability: string; target: string }> = [];
  let fn = '';
  let pkg = '';
  for (const line of section.split('\n').slice(1)) {
    const named = /^ {3}(\w+) +(\S+) {2}(\w+) +(.+?)( ×\d+)?$/.exec(line);
    const more = /^ {10,}(\w+) +(.+?)( ×\d+)?$/.exec(line);
    if (named) {
      [fn, pkg] = [named[1]!, named[2]!];
      rows.push({ function: fn, package: pkg, capability: named[3]!, target: named[4]! });
    } else if (more && fn) {
      rows.push({ function: fn, package: pkg, capability: more[1]!, target: more[2]! });
    }
  }
  return rows;
}

function policy(name: string, document: unknown): string {
  const file = join(scratch, name);
  writeFileSync(file, typeof document === 'string' ? document : JSON.stringify(document));
  return file;
}

describe('examples/shop/demo.mjs', () => {
  test('with Perimeter: the shop works, the attacker gets nothing, every attempt is stored as blocked', async () => {
    const run = await demo(['--once']);
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /✔ checkout {3}3 of 3 orders charged: A-1001 €42\.00 ch_\w+, A-1002 €19\.99 ch_\w+, A-1003/);
    assert.match(run.out, /✔ thumbnail {2}wrote \/tmp\/perimeter-shop\/thumbnails\/mug-01-64\.png \(64×64 PNG/);
    assert.match(run.out, /✔ webhook {4}3 SQS records: 2 processed, msg-3 .* handed back in batchItemFailures/);
    assert.match(run.out, /✔ HTTP collector {2}nothing/);
    assert.match(run.out, /✔ name server {5}no query/);
    const rows = blockedRows(run.out);
    for (const fn of ['checkout', 'thumbnail', 'webhook']) {
      const mine = rows.filter((row) => row.function === fn && row.package === 'log-beacon');
      const has = (capability: string, pattern: RegExp) =>
        mine.some((row) => row.capability === capability && pattern.test(row.target));
      assert.ok(has('fs', /^read ~\/\.npmrc$/), `${fn}: the ~/.npmrc read is listed as blocked`);
      assert.ok(has('process', /^\/usr\/bin\/curl /), `${fn}: the curl spawn is listed`);
      assert.ok(has('network', /^POST http:\/\/127\.0\.0\.1:\d+\/v1\/usage/), `${fn}: the POST to the attacker`);
      assert.ok(has('network', new RegExp(`^dns:[0-9a-f.]+\\.${fn}\\.t\\.attacker\\.test`)), `${fn}: the DNS name`);
    }
    assert.ok(
      rows.some((row) => row.function === 'checkout' && row.capability === 'env' && row.target === 'STRIPE_API_KEY'),
      'checkout: log-beacon reading STRIPE_API_KEY is listed',
    );
    assert.ok(
      rows.every((row) => row.package === 'log-beacon'),
      'no event from the shop itself or pay-client',
    );
    const blocked = Number(/(\d+) attempt\(s\) blocked, none let through/.exec(run.out)?.[1]);
    assert.ok(blocked >= 13, `at least the 13 distinct attempts were blocked (got ${blocked})`);
    assert.match(run.out, /Dashboard {2}http:\/\/127\.0\.0\.1:\d+\/_perimeter\/ {2}\(answering\)/);
    assert.match(run.out, /every order charged, every way out blocked\./);
    assert.match(run.out, /\(exiting: --once/);
    assert.doesNotMatch(run.out, /sk_test_shopdemo_7Lq2Vx9RkT4mWc8N/, 'the Stripe key is never printed');
  });

  test('without the guard the same requests work and the attack lands', async () => {
    const run = await demo(['--without-perimeter']);
    assert.equal(run.code, 0, run.out);
    assert.match(run.out, /✔ checkout {3}3 of 3 orders charged/);
    assert.match(run.out, /✘ STRIPE_API_KEY sk_test_•+Wc8N over HTTP/);
    assert.match(run.out, /✘ npm token {6}npm_\w{4}•+\w{4} from ~\/\.npmrc, through HTTP and curl/);
    assert.match(run.out, /✘ STRIPE_API_KEY in a DNS lookup: 736b5f74/);
    assert.match(run.out, /the attacker has the Stripe key and the npm token/);
  });

  test('a policy that only alerts lets the attack through, and the demo fails saying so', async () => {
    const run = await demo(['--once', '--policy', `checkout=${policy('alert.json', { mode: 'alert' })}`]);
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, /running a copy of examples\/shop/);
    assert.match(run.out, /✔ checkout {3}3 of 3 orders charged/, 'the shop itself still works');
    assert.match(run.out, /✘ HTTP collector {2}POST \/v1\/usage/);
    assert.match(run.out, /ALERTED, let through/);
    assert.match(run.out, /The demo did not go as expected:\n {2}- the attacker's HTTP collector received/);
    assert.match(run.out, /log-beacon's attempts were let through, not blocked: checkout: /);
  });

  test('a broken policy: that function does not start, the message names the error and the file', async () => {
    const broken = policy('broken.json', '{ "mode": "block", "netwrok": {} }');
    const run = await demo(['--once', '--policy', `thumbnail=${broken}`]);
    assert.equal(run.code, 1, run.out);
    assert.match(run.out, /The shop did not start completely, so no request was sent/);
    assert.match(run.out, /- thumbnail did not start \(failed\) \(policy given with --policy: .*broken\.json\)/);
    assert.match(run.out, /ERR_PERIMETER_POLICY_INVALID/);
    assert.match(run.out, /netwrok/);
    assert.match(run.out, /functions\/thumbnail\/perimeter\.json/);
  });

  test('bad arguments exit 2 with the usage', async () => {
    const run = await demo(['--policy', 'nope=x.json']);
    assert.equal(run.code, 2);
    assert.match(run.out, /--policy nope=x\.json: expected <function>=<file>/);
    const unknown = await demo(['--frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.out, /usage: node examples\/shop\/demo\.mjs/);
  });
});
