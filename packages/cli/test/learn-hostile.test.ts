/**
 * Event targets are chosen by the code that made the call, and a hostile dependency chooses its own: learn must
 * write the rules it can and leave out, with a note, the targets no rule can name, instead of failing the run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BIN } from './dist.js';

const line = (target: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    perimeter: 1,
    time: '2026-11-23T14:00:00.000Z',
    type: 'violation',
    capability: 'network',
    action: 'alerted',
    target,
    package: 'app',
    function: 'checkout',
    invocation: 'req-1',
    reason: 'no-rule',
    ...extra,
  });

test('a made-up host in an event is left out with a note; the rest is learned', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-learn-hostile-')));
  writeFileSync(
    join(dir, 'events.jsonl'),
    `${[
      line('GET https://api.stripe.com/v1/charges'),
      line('dns:<img src=x onerror=alert(1)>.attacker.test'),
      line('HEAD https://<img src=x onerror=alert(1)>.attacker.test/'),
      line('GET https://api.stripe.com/v1/charges', { repeats: 4 }),
    ].join('\n')}\n`,
  );
  const run = spawnSync(process.execPath, [BIN, 'learn', '--events', 'events.jsonl', '--json'], {
    cwd: dir,
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout);
  assert.deepEqual(out.policy.network.allow, ['GET https://api.stripe.com/v1/charges']);
  // One line plus a summary of four more.
  assert.equal(out.explanations['network.allow']['GET https://api.stripe.com/v1/charges'].count, 5);
  assert.match(JSON.stringify(out.notes), /no rule can name/);
});
