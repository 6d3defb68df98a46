/**
 * Bad event input is an error with its line number, never a silently smaller policy: a cut-off last line, a
 * line that is not JSON, an event from a newer format version, a missing field. `--lenient` skips such lines
 * and says how many.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BIN, events } from './dist.js';

const good = (target: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    perimeter: 1,
    time: '2026-11-23T14:00:00.000Z',
    type: 'violation',
    capability: 'network',
    action: 'alerted',
    target,
    package: 'app',
    function: 'f',
    invocation: null,
    reason: 'no-rule',
    ...extra,
  });

function dir(files: Record<string, string>): string {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-events-')));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return root;
}

const read = (text: string, lenient = false) => {
  const root = dir({ 'events.jsonl': text });
  return { root, result: () => events.readEvents([join(root, 'events.jsonl')], { lenient }) };
};

describe('reading events', () => {
  test('a truncated last line names the file and line', () => {
    const { root, result } = read(
      `${good('GET https://a.example.com/')}\n${good('GET https://b.example.com/').slice(0, 40)}`,
    );
    assert.throws(result, (error: any) => {
      assert.equal(error.code, 'ERR_PERIMETER_EVENTS_TRUNCATED');
      assert.equal(error.line, 2);
      assert.ok(error.message.includes(`${join(root, 'events.jsonl')}:2`));
      return true;
    });
  });

  test('a non-JSON line in the middle is a JSON error, not "truncated"', () => {
    const { result } = read(
      `${good('GET https://a.example.com/')}\nStarting function...\n${good('GET https://b.example.com/')}\n`,
    );
    assert.throws(result, { code: 'ERR_PERIMETER_EVENTS_JSON', line: 2 });
  });

  test('mixed versions: a version 2 event is refused with its line', () => {
    const { result } = read(
      `${good('GET https://a.example.com/')}\n\n${good('GET https://b.example.com/', { perimeter: 2 })}\n`,
    );
    assert.throws(result, (error: any) => error.code === 'ERR_PERIMETER_EVENTS_VERSION' && error.line === 3);
  });

  test('missing or mistyped fields, and JSON that is not an event', () => {
    assert.throws(read(`${good('x', { target: 5 })}\n`).result, { code: 'ERR_PERIMETER_EVENTS_INVALID', line: 1 });
    assert.throws(read(`${good('x', { packages: 'a' })}\n`).result, { code: 'ERR_PERIMETER_EVENTS_INVALID' });
    assert.throws(read('{"level":"info","msg":"hi"}\n').result, { code: 'ERR_PERIMETER_EVENTS_INVALID', line: 1 });
    assert.throws(read('[1,2]\n').result, { code: 'ERR_PERIMETER_EVENTS_INVALID' });
  });

  test('lenient skips bad lines and counts them; unknown fields are counted, not fatal', () => {
    const { result } = read(
      `${good('GET https://a.example.com/', { drift: true })}\nnoise\n${good('x', { perimeter: 2 })}\n${good('GET https://b.example.com/')}\n{"perimeter":1,"ti`,
      true,
    );
    const { events: list, skipped, unknownFields } = result();
    assert.equal(list.length, 2);
    assert.deepEqual(
      skipped.map((error) => [error.code, error.line]),
      [
        ['ERR_PERIMETER_EVENTS_JSON', 2],
        ['ERR_PERIMETER_EVENTS_VERSION', 3],
        ['ERR_PERIMETER_EVENTS_TRUNCATED', 5],
      ],
    );
    assert.deepEqual([...unknownFields], [['drift', 1]]);
  });

  test('a folder of .jsonl files is read in name order; a file named .sqlite that is not SQLite is refused', () => {
    const root = dir({
      'b.jsonl': `${good('GET https://b.example.com/')}\n`,
      'a.jsonl': `${good('GET https://a.example.com/')}\n`,
      'notes.txt': 'ignored',
    });
    assert.deepEqual(
      events.readEvents([root]).events.map((event) => event.target),
      ['GET https://a.example.com/', 'GET https://b.example.com/'],
    );
    const store = dir({ 'events.sqlite': '' });
    assert.throws(() => events.readEvents([join(store, 'events.sqlite')]), { code: 'ERR_PERIMETER_EVENTS_READ' });
  });

  test('the CLI exits 2 with the code and line; --lenient learns from the rest', () => {
    const root = dir({ 'events.jsonl': `${good('GET https://a.example.com/x')}\n${good('x', { perimeter: 3 })}\n` });
    const strict = spawnSync(process.execPath, [BIN, 'learn', '--events', 'events.jsonl'], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.equal(strict.status, 2);
    assert.match(
      strict.stderr,
      /ERR_PERIMETER_EVENTS_VERSION: Event format version 3 is not supported .*events\.jsonl:2/,
    );
    assert.equal(strict.stdout, '');
    const lenient = spawnSync(process.execPath, [BIN, 'learn', '--events', 'events.jsonl', '--lenient', '--json'], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.equal(lenient.status, 0, lenient.stderr);
    const output = JSON.parse(lenient.stdout);
    assert.deepEqual(output.policy.network.allow, ['GET https://a.example.com/x']);
    assert.ok(output.notes.some((note: string) => note.startsWith('skipped 1 bad line(s)')));
  });
});
