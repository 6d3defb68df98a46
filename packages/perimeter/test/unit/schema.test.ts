// The shipped JSON Schema is generated from policySchema, reachable through the package exports, and only uses
// keywords the runtime validator understands (otherwise editors and the runtime would disagree on a policy).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as SchemaModule from '../../src/policy/schema.js';
import { PACKAGE_ROOT, tempDir } from '../helpers.js';

const { policySchema } = require('../../../dist/policy/schema.js') as typeof SchemaModule;

const REPO_ROOT = join(PACKAGE_ROOT, '..', '..');
const SHIPPED = join(PACKAGE_ROOT, 'schema', 'perimeter.schema.json');
const GENERATOR = join(REPO_ROOT, 'scripts', 'generate-schema.mjs');

function generated(): string {
  return `${JSON.stringify(policySchema, null, 2)}\n`;
}

test('the shipped schema file is exactly the generated schema', () => {
  assert.equal(readFileSync(SHIPPED, 'utf8'), generated(), 'run `npm run generate:schema`');
});

test('perimeter/schema.json resolves through the package exports to the shipped file', () => {
  const resolved = require.resolve('perimeter/schema.json');
  assert.equal(realpathSync(resolved), realpathSync(SHIPPED));
  assert.deepEqual(require('perimeter/schema.json'), policySchema);
  const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8'));
  assert.ok(manifest.files.includes('schema'), 'the schema folder is published');
});

test('the schema identifies itself as a draft 2020-12 schema for an object', () => {
  assert.equal(policySchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  assert.equal(policySchema.type, 'object');
  assert.equal(policySchema.additionalProperties, false);
  assert.ok('$schema' in policySchema.properties, 'a policy may point at the schema with "$schema"');
});

// validate.ts interprets these; annotations change nothing. A new keyword (pattern, oneOf, minimum, …) must be
// taught to validate.ts first, or a policy the editor rejects would load at run time (or the reverse).
const INTERPRETED = new Set(['type', 'enum', 'properties', 'additionalProperties', 'items', 'minLength']);
const ANNOTATIONS = new Set(['$schema', '$id', '$comment', 'title', 'description', 'default', 'examples']);

test('every keyword in the schema is one the runtime validator interprets', () => {
  const unknown: string[] = [];
  const visit = (schema: Record<string, unknown>, where: string) => {
    for (const [keyword, value] of Object.entries(schema)) {
      if (!INTERPRETED.has(keyword) && !ANNOTATIONS.has(keyword)) unknown.push(`${where}: ${keyword}`);
      if (keyword === 'properties') {
        for (const [name, child] of Object.entries(value as Record<string, any>)) visit(child, `${where}.${name}`);
      } else if ((keyword === 'items' || keyword === 'additionalProperties') && typeof value === 'object') {
        visit(value as Record<string, unknown>, `${where}[${keyword}]`);
      }
    }
  };
  visit(policySchema as unknown as Record<string, unknown>, '(root)');
  assert.deepEqual(unknown, []);
});

test('generate-schema.mjs --check passes on the shipped file and fails clearly on a stale or missing one', () => {
  const ok = spawnSync(process.execPath, [GENERATOR, '--check'], { cwd: REPO_ROOT, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /up to date/);

  const stale = join(tempDir('perimeter-schema-'), 'perimeter.schema.json');
  writeFileSync(stale, generated().replace('"block"', '"blocked"'));
  const failed = spawnSync(process.execPath, [GENERATOR, '--check', `--file=${stale}`], { encoding: 'utf8' });
  assert.equal(failed.status, 1);
  assert.match(failed.stderr, /is stale: it does not match policySchema/);
  assert.match(failed.stderr, /npm run generate:schema/);

  const missing = join(tempDir('perimeter-schema-'), 'nothing-here.json');
  const absent = spawnSync(process.execPath, [GENERATOR, '--check', `--file=${missing}`], { encoding: 'utf8' });
  assert.equal(absent.status, 1);
  assert.match(absent.stderr, /is missing/);
});

test('generate-schema.mjs writes the generated schema with 2-space indentation and a final newline', () => {
  const file = join(tempDir('perimeter-schema-'), 'out', 'perimeter.schema.json');
  const run = spawnSync(process.execPath, [GENERATOR, `--file=${file}`], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const text = readFileSync(file, 'utf8');
  assert.equal(text, generated());
  assert.ok(text.startsWith('{\n  "$schema": '));
  assert.ok(text.endsWith('}\n'));
});
