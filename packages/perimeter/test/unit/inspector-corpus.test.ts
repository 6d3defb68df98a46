// The detection corpus (test/fixtures/inspector/attack.jsonl) and the benign corpus (benign.jsonl), each value
// delivered through a real trigger shape (fixtures/inspector/corpus.cjs), scored per class. Targets from issue 7:
// >= 95% detection overall, <= 1% false positives. A detection is a finding of the entry's class with medium or
// high confidence. bench/inspector.mjs reports the same scores next to another detector's.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as InspectorModule from '../../src/inspector/index.js';
import { FIXTURES } from '../helpers.js';

const { inspectEvent } = require('../../../dist/inspector/index.js') as typeof InspectorModule;

interface Score {
  perClass: Map<string, { total: number; detected: number; missed: string[] }>;
  total: number;
  detected: number;
  benign: number;
  falsePositives: string[];
}
const corpus = require(join(FIXTURES, 'inspector', 'corpus.cjs')) as {
  score(inspect: (event: unknown) => InspectorModule.InspectionResult): Score;
};

const result = corpus.score((event) => inspectEvent(event));

test('attack corpus: >= 95% detected overall, every class present', () => {
  assert.ok(result.total >= 150, `corpus has ${result.total} attacks`);
  for (const [name, row] of result.perClass) {
    console.log(
      `${name}: ${row.detected}/${row.total}${row.missed.length ? ` missed ${JSON.stringify(row.missed)}` : ''}`,
    );
  }
  assert.deepEqual([...result.perClass.keys()].sort(), [
    'cmdi',
    'nosqli',
    'prototype-pollution',
    'sqli',
    'ssrf',
    'template',
    'traversal',
    'xss',
  ]);
  console.log(
    `overall detection ${((100 * result.detected) / result.total).toFixed(1)}% (${result.detected}/${result.total})`,
  );
  assert.ok(result.detected / result.total >= 0.95, `detection ${result.detected}/${result.total}`);
});

test('benign corpus: <= 1% false positives', () => {
  assert.ok(result.benign >= 150, `corpus has ${result.benign} benign inputs`);
  console.log(
    `false positives ${result.falsePositives.length}/${result.benign}: ${JSON.stringify(result.falsePositives)}`,
  );
  assert.ok(result.falsePositives.length / result.benign <= 0.01, JSON.stringify(result.falsePositives));
});

// The Big List of Naughty Strings, a public corpus we did not write (see corpus.cjs for how it is read and scored).
const blns = (
  require(join(FIXTURES, 'inspector', 'corpus.cjs')) as {
    scoreBlns(
      inspect: (event: unknown) => InspectorModule.InspectionResult,
    ): Map<
      string,
      { attack: boolean; class: string | null; total: number; hits: number; hitValues: string[]; missed: string[] }
    >;
  }
).scoreBlns((event) => inspectEvent(event));

test('public corpus (Big List of Naughty Strings): attack sections detected, benign sections clean', () => {
  let benign = 0;
  let flagged: string[] = [];
  for (const [section, row] of blns) {
    console.log(
      `${row.attack ? 'attack' : 'benign'} ${section}: ${row.hits}/${row.total}${row.attack && row.missed.length ? ` missed ${row.missed.join(', ')}` : ''}`,
    );
    if (!row.attack) {
      benign += row.total;
      flagged = flagged.concat(row.hitValues);
    }
  }
  const rate = (name: string) => {
    const row = blns.get(name);
    assert.ok(row, `section ${name} not found in blns.txt`);
    return row.hits / row.total;
  };
  // Script Injection has strings no browser runs (`< script >`, full-width `＜script＞`, a tab-free `jav   ascript:`);
  // the bar leaves room for exactly those.
  assert.ok(rate('Script Injection') >= 0.95, `xss ${rate('Script Injection')}`);
  assert.equal(rate('SQL Injection'), 1);
  assert.equal(rate('File Inclusion'), 1);
  assert.equal(rate('Known CVEs and Vulnerabilities'), 1);
  assert.ok(benign >= 200, `benign strings: ${benign}`);
  assert.ok(flagged.length / benign <= 0.01, `false positives: ${flagged.join(', ')}`);
});
