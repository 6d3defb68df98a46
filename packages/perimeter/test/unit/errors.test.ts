// docs/errors.md and the table of codes in src/errors.ts never drift apart: every code is documented, and the
// docs mention no code that does not exist (a retired code is never reused, so stale docs would mislead).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as ErrorsModule from '../../src/errors.js';
import { PACKAGE_ROOT } from '../helpers.js';

const { codes, perimeterError, isPerimeterError, PERIMETER_ERROR } =
  require('../../../dist/errors.js') as typeof ErrorsModule;

const DOCS = readFileSync(join(PACKAGE_ROOT, '..', '..', 'docs', 'errors.md'), 'utf8');
const CODE = /ERR_PERIMETER_[A-Z0-9_]+/g;

/** Codes that have their own heading (`## ERR_PERIMETER_X`) or table row (`| \`ERR_PERIMETER_X\` | …`). */
function documentedCodes(): Set<string> {
  const documented = new Set<string>();
  for (const line of DOCS.split('\n')) {
    const heading = /^#{2,4}\s+`?(ERR_PERIMETER_[A-Z0-9_]+)`?\s*$/.exec(line);
    const row = /^\|\s*`?(ERR_PERIMETER_[A-Z0-9_]+)`?\s*\|/.exec(line);
    const code = heading?.[1] ?? row?.[1];
    if (code) documented.add(code);
  }
  return documented;
}

test('every code in src/errors.ts is documented in docs/errors.md', () => {
  const documented = documentedCodes();
  const missing = Object.keys(codes).filter((code) => !documented.has(code));
  assert.deepEqual(missing, [], 'add a "## CODE" section to docs/errors.md for each');
});

test('docs/errors.md mentions no code that does not exist', () => {
  const mentioned = new Set(DOCS.match(CODE) ?? []);
  const stale = [...mentioned].filter((code) => !(code in codes));
  assert.deepEqual(stale, [], 'remove or correct these in docs/errors.md');
});

test('each documented code has an example message and what to do', () => {
  const sections = DOCS.split(/^## /m).slice(1);
  for (const code of Object.keys(codes)) {
    const section = sections.find((text) => text.startsWith(code) || text.startsWith(`\`${code}\``));
    assert.ok(section, `${code} has a "## ${code}" section`);
    assert.match(section, /```/, `${code}: an example`);
    assert.match(section, /what to do/i, `${code}: what to do`);
  }
});

test('codes follow ERR_PERIMETER_<AREA>_<WHAT> and carry a one-line description', () => {
  for (const [code, description] of Object.entries(codes)) {
    assert.match(code, /^ERR_PERIMETER_[A-Z0-9]+(_[A-Z0-9]+)*$/);
    assert.ok(description.length > 10 && !description.includes('\n'), code);
  }
});

test('perimeterError builds a coded, branded error with file, key and hint in the message', () => {
  const error = perimeterError('ERR_PERIMETER_POLICY_INVALID', 'Invalid policy: mode: bad', {
    file: '/srv/perimeter.json',
    key: 'mode',
    hint: 'use one of block, alert, allow',
  });
  assert.equal(error.code, 'ERR_PERIMETER_POLICY_INVALID');
  assert.equal(
    error.message,
    'Invalid policy: mode: bad (/srv/perimeter.json: mode)\n  hint: use one of block, alert, allow',
  );
  assert.equal(error.file, '/srv/perimeter.json');
  assert.equal(isPerimeterError(error), true);
  assert.equal((error as any)[Symbol.for('perimeter.error')], true, 'recognised across copies of the library');
  assert.equal(PERIMETER_ERROR, Symbol.for('perimeter.error'));
  assert.equal(isPerimeterError(Object.assign(new Error('x'), { code: 'ERR_PERIMETER_BLOCKED' })), false);
  assert.equal(isPerimeterError(null), false);
  const typed = perimeterError('ERR_PERIMETER_BLOCKED', 'blocked', {}, TypeError);
  assert.ok(typed instanceof TypeError, 'a denial can look like the error the operation normally throws');
});
