// Finding and reading the policy file, with real files in real temp folders.
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type * as LoadModule from '../../src/policy/load.js';
import { tempDir, writeTree } from '../helpers.js';

const { findPolicyFile, readPolicyFile } = require('../../../dist/policy/load.js') as typeof LoadModule;

const VALID = '{ "mode": "alert" }\n';

function policyFileWith(text: string): string {
  const dir = tempDir('perimeter-load-');
  const file = join(dir, 'perimeter.json');
  writeFileSync(file, text);
  return file;
}

/** Asserts reading `text` as a policy fails with `code`, naming the file, and returns the error for more checks. */
function readFailure(text: string, code: string): any {
  const file = policyFileWith(text);
  let caught: any;
  assert.throws(
    () => readPolicyFile(file),
    (error: any) => {
      caught = error;
      return true;
    },
  );
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.file, file);
  return caught;
}

describe('readPolicyFile', () => {
  test('a valid file compiles and remembers where it came from', () => {
    const file = policyFileWith('{\n  "mode": "alert",\n  "network": { "allow": ["https://api.example.com"] }\n}\n');
    const policy = readPolicyFile(file);
    assert.equal(policy.file, file);
    assert.equal(policy.mode, 'alert');
    assert.equal(policy.network.rules.length, 1);
  });

  test('a missing file', () => {
    const file = join(tempDir('perimeter-load-'), 'nope.json');
    assert.throws(
      () => readPolicyFile(file),
      (error: any) => {
        assert.equal(error.code, 'ERR_PERIMETER_POLICY_NOT_FOUND');
        assert.equal(error.file, file);
        assert.match(error.hint, /PERIMETER_POLICY/);
        assert.ok(error.message.includes(file), 'the message names the file');
        return true;
      },
    );
  });

  test('a file that cannot be read (a directory)', () => {
    const dir = tempDir('perimeter-load-');
    assert.throws(
      () => readPolicyFile(dir),
      (error: any) => {
        assert.equal(error.code, 'ERR_PERIMETER_POLICY_READ');
        assert.match(error.message, /EISDIR/);
        assert.equal(error.cause.code, 'EISDIR');
        return true;
      },
    );
  });

  // V8 names a position for some of these and not for others, and differently across Node majors; the loader
  // must give the same line and column everywhere.
  const invalidJson: Array<[string, string, string]> = [
    ['trailing comma', '{\n  "mode": "block",\n}\n', 'line 3, column 1'],
    ['missing comma', '{\n  "mode": "block"\n  "network": {}\n}', 'line 3, column 3'],
    ['line comment', '{\n  "mode": "block" // the default\n}', 'line 2, column 19'],
    ['comment on the first line', '// policy\n{}', 'line 1, column 1'],
    ['block comment', '{\n  /* x */ "mode": "alert"\n}', 'line 2, column 3'],
    ['single quotes', "{\n  'mode': 'block'\n}", 'line 2, column 3'],
    ['unquoted key', '{ mode: "block" }', 'line 1, column 3'],
    ['bad literal', '{\n  "network": { "platform": tru }\n}', 'line 2, column 28'],
    ['truncated', '{\n  "network": {\n    "allow": [', 'line 3, column 15'],
    ['empty file', '', 'line 1, column 1'],
    ['text after the object', '{}\n{}', 'line 2, column 1'],
    ['raw newline in a string (the string that holds it)', '{ "mode": "blo\nck" }', 'line 1, column 11'],
  ];
  for (const [name, text, where] of invalidJson) {
    test(`invalid JSON (${name}) gives the line and column`, () => {
      const error = readFailure(text, 'ERR_PERIMETER_POLICY_JSON');
      assert.equal(error.key, where);
      assert.ok(error.message.includes(where), `the message carries the location: ${error.message}`);
      assert.match(error.hint, /no comments, no trailing commas/);
      assert.ok(error.cause instanceof SyntaxError);
    });
  }

  test('valid JSON that breaks the schema is ERR_PERIMETER_POLICY_INVALID with the key', () => {
    const error = readFailure('{ "netwrok": {} }', 'ERR_PERIMETER_POLICY_INVALID');
    assert.equal(error.key, 'netwrok');
    assert.equal(error.hint, 'did you mean "network"?');
  });

  test('a bad pattern is ERR_PERIMETER_POLICY_PATTERN with the key', () => {
    const error = readFailure(
      '{ "network": { "allow": ["https://a.example.com", "tcp://db"] } }',
      'ERR_PERIMETER_POLICY_PATTERN',
    );
    assert.equal(error.key, 'network.allow[1]');
  });
});

describe('findPolicyFile', () => {
  // Four real folders, each with its own perimeter.json; removing them one by one walks down the search order.
  function layout() {
    const root = realpathSync(tempDir('perimeter-find-'));
    const dirs = {
      explicit: join(root, 'explicit'),
      handler: join(root, 'handler'),
      taskRoot: join(root, 'task'),
      cwd: join(root, 'cwd'),
    };
    for (const dir of Object.values(dirs)) writeTree(dir, { 'perimeter.json': VALID });
    writeTree(dirs.explicit, { 'custom.json': VALID });
    const main = join(dirs.handler, 'index.mjs');
    writeFileSync(main, 'export const handler = () => {};\n');
    return { root, dirs, main };
  }

  test('order: PERIMETER_POLICY, beside the main script, LAMBDA_TASK_ROOT, cwd', () => {
    const { dirs, main } = layout();
    const env = { PERIMETER_POLICY: join(dirs.explicit, 'custom.json'), LAMBDA_TASK_ROOT: dirs.taskRoot };
    const where = { env, cwd: dirs.cwd, main };
    assert.deepEqual(findPolicyFile(where), { file: join(dirs.explicit, 'custom.json'), searched: [] });

    delete (env as Record<string, string | undefined>).PERIMETER_POLICY;
    const searched = [dirs.handler, dirs.taskRoot, dirs.cwd].map((dir) => join(dir, 'perimeter.json'));
    assert.deepEqual(findPolicyFile(where), { file: join(dirs.handler, 'perimeter.json'), searched });

    rmSync(join(dirs.handler, 'perimeter.json'));
    assert.equal(findPolicyFile(where).file, join(dirs.taskRoot, 'perimeter.json'));

    rmSync(join(dirs.taskRoot, 'perimeter.json'));
    assert.equal(findPolicyFile(where).file, join(dirs.cwd, 'perimeter.json'));

    rmSync(join(dirs.cwd, 'perimeter.json'));
    assert.deepEqual(findPolicyFile(where), { file: null, searched });
  });

  test('PERIMETER_POLICY wins even when the file does not exist (reading it then says so)', () => {
    const { dirs, main } = layout();
    const missing = join(dirs.explicit, 'missing.json');
    const found = findPolicyFile({ env: { PERIMETER_POLICY: missing }, cwd: dirs.cwd, main });
    assert.deepEqual(found, { file: missing, searched: [] });
    assert.throws(() => readPolicyFile(found.file!), { code: 'ERR_PERIMETER_POLICY_NOT_FOUND' });
  });

  test('a relative PERIMETER_POLICY is resolved against cwd', () => {
    const { root, dirs } = layout();
    const found = findPolicyFile({ env: { PERIMETER_POLICY: '../explicit/custom.json' }, cwd: dirs.cwd });
    assert.equal(found.file, join(root, 'explicit', 'custom.json'));
  });

  test('without a main script or task root, only cwd is searched; duplicates are searched once', () => {
    const { dirs } = layout();
    assert.deepEqual(findPolicyFile({ env: {}, cwd: dirs.cwd }), {
      file: join(dirs.cwd, 'perimeter.json'),
      searched: [join(dirs.cwd, 'perimeter.json')],
    });
    const same = findPolicyFile({ env: { LAMBDA_TASK_ROOT: dirs.cwd }, cwd: dirs.cwd, main: join(dirs.cwd, 'a.js') });
    assert.deepEqual(same.searched, [join(dirs.cwd, 'perimeter.json')]);
  });

  test('a folder named perimeter.json stops the search and fails to read: never skipped for a file further down', () => {
    const { dirs, main } = layout();
    rmSync(join(dirs.handler, 'perimeter.json'));
    mkdirSync(join(dirs.handler, 'perimeter.json'));
    const found = findPolicyFile({ env: {}, cwd: dirs.cwd, main });
    assert.equal(found.file, join(dirs.handler, 'perimeter.json'));
    assert.throws(() => readPolicyFile(found.file!), { code: 'ERR_PERIMETER_POLICY_READ' });
  });
});
