#!/usr/bin/env node
/**
 * Writes packages/perimeter/schema/perimeter.schema.json (the JSON Schema that ships with the package, for
 * editors and CI) from `policySchema` in src/policy/schema.ts, the single source the runtime validates against.
 * Reads the compiled module, so run it after `tsc` (`npm run build` does both).
 *
 *   node scripts/generate-schema.mjs            write the file
 *   node scripts/generate-schema.mjs --check    exit 1 if the file is missing or differs (CI)
 *   --file=<path>                               write or check another file (tests use a scratch copy)
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PACKAGE_DIR = path.join(REPO_ROOT, 'packages', 'perimeter');
const COMPILED_SCHEMA = path.join(PACKAGE_DIR, 'dist', 'policy', 'schema.js');
const SHIPPED_SCHEMA = path.join(PACKAGE_DIR, 'schema', 'perimeter.schema.json');

const args = process.argv.slice(2);
const check = args.includes('--check');
const fileArg = args.find((arg) => arg.startsWith('--file='));
const target = fileArg ? path.resolve(fileArg.slice('--file='.length)) : SHIPPED_SCHEMA;
const unknown = args.filter((arg) => arg !== '--check' && arg !== fileArg);
if (unknown.length > 0)
  fail(`unknown argument(s): ${unknown.join(' ')} (usage: generate-schema.mjs [--check] [--file=path])`);

if (!existsSync(COMPILED_SCHEMA)) {
  fail(`${rel(COMPILED_SCHEMA)} does not exist: compile first (npx tsc -b packages/perimeter, or npm run build)`);
}
const { policySchema } = createRequire(import.meta.url)(COMPILED_SCHEMA);
if (!policySchema || typeof policySchema !== 'object') fail(`${rel(COMPILED_SCHEMA)} does not export policySchema`);
const expected = `${JSON.stringify(policySchema, null, 2)}\n`;

if (check) {
  const actual = existsSync(target) ? readFileSync(target, 'utf8') : null;
  if (actual !== expected) {
    fail(
      `${rel(target)} is ${actual === null ? 'missing' : 'stale'}: it does not match policySchema in ` +
        'packages/perimeter/src/policy/schema.ts.\nRun `npm run generate:schema` (or `npm run build`) and commit the result.',
    );
  }
  console.log(`${rel(target)} is up to date`);
} else {
  mkdirSync(path.dirname(target), { recursive: true });
  const previous = existsSync(target) ? readFileSync(target, 'utf8') : null;
  // Rewriting an identical file would only touch its mtime; keep it quiet and stable for watchers.
  if (previous !== expected) writeFileSync(target, expected);
  console.log(`${rel(target)} ${previous === expected ? 'unchanged' : 'written'}`);
}

function rel(file) {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') ? relative : file;
}

function fail(message) {
  console.error(`generate-schema: ${message}`);
  process.exit(1);
}
