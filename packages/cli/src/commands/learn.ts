/**
 * `perimeter learn`: the least-privilege policy written from what the function was seen doing (alert-mode
 * events) and/or what its code names (`--from-code`), merged into the current policy, shown as a diff, and
 * with `--write` saved atomically next to a sidecar that explains every rule.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { cliError } from '../errors.js';
import { readEvents } from '../learn/events.js';
import {
  learnPolicy,
  type Observation,
  observationsFromEvents,
  type PerPackage,
  type RuleExplanation,
} from '../learn/learn.js';
import { diffPolicies, getList, type PolicyDoc, stableStringify } from '../learn/policy.js';
import { colours, formatLearnDiff } from '../learn/report.js';
import { scanCode } from '../learn/static.js';

export interface LearnOptions {
  events?: string[];
  fromCode?: string[];
  includeDeps?: boolean;
  function?: string;
  policy?: string;
  out?: string;
  write?: boolean;
  json?: boolean;
  perPackage?: string;
  prune?: boolean;
  lenient?: boolean;
}

const requireHere = createRequire(import.meta.url);

export function validatePolicyObject(doc: unknown, file: string): void {
  const { loadPolicyFromObject } = requireHere('perimeter') as {
    loadPolicyFromObject(doc: unknown, file?: string): unknown;
  };
  loadPolicyFromObject(doc, file);
}

export function sidecarPath(policyFile: string): string {
  return policyFile.endsWith('.json') ? `${policyFile.slice(0, -5)}.learn.json` : `${policyFile}.learn.json`;
}

/** Temp file in the same folder, then rename: a reader never sees half a policy. */
export function writeAtomically(file: string, text: string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  writeFileSync(temp, text, { mode: 0o644 });
  renameSync(temp, file);
}

export async function learnCommand(options: LearnOptions): Promise<number> {
  const events = options.events ?? [];
  const code = options.fromCode ?? [];
  if (events.length === 0 && code.length === 0) {
    throw cliError('ERR_PERIMETER_LEARN_INPUT', 'Nothing to learn from', {
      hint: 'pass --events <file.jsonl|dir|events.db> (an alert-mode run) and/or --from-code <dir|file>',
    });
  }
  const perPackage = (options.perPackage ?? 'network') as PerPackage;
  if (!['none', 'network', 'all'].includes(perPackage)) {
    throw cliError('ERR_PERIMETER_LEARN_INPUT', `--per-package must be none, network or all, not "${perPackage}"`);
  }
  const policyFile = path.resolve(options.policy ?? 'perimeter.json');
  const outFile = path.resolve(options.out ?? policyFile);
  let current: PolicyDoc = { mode: 'alert' };
  if (existsSync(policyFile)) {
    current = JSON.parse(readFileSync(policyFile, 'utf8'));
    validatePolicyObject(current, policyFile);
  }

  const observations: Observation[] = [];
  const log: string[] = [];
  if (events.length > 0) {
    const read = readEvents(events, { lenient: options.lenient });
    const selection = observationsFromEvents(read.events, options.function);
    observations.push(...selection.observations);
    log.push(`read ${read.events.length} event(s) from ${read.files.length} file(s)`);
    if (read.skipped.length > 0) {
      log.push(
        `skipped ${read.skipped.length} bad line(s) (--lenient); first: ${read.skipped[0]!.message.split('\n')[0]}`,
      );
    }
    for (const [field, count] of read.unknownFields) log.push(`ignored unknown event field "${field}" (${count}×)`);
    for (const [reason, count] of selection.ignored) {
      log.push(
        `not learned: ${count} violation(s) with reason ${reason}${reason === 'sensitive-path' ? ' (secrets areas are opened by hand only)' : ''}`,
      );
    }
  }
  let builtins: Record<string, string[]> | undefined;
  if (code.length > 0) {
    const scanned = scanCode(code, { includeDeps: options.includeDeps });
    observations.push(...scanned.observations);
    log.push(`scanned ${scanned.files} file(s): ${scanned.observations.length} finding(s)`);
    for (const { file, error } of scanned.unparsed) log.push(`could not parse ${file}: ${error}`);
    builtins = Object.fromEntries(
      [...scanned.builtins].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, [...v].sort()]),
    );
  }

  const result = learnPolicy(current, observations, {
    perPackage,
    prune: options.prune,
    base: path.dirname(policyFile),
  });
  validatePolicyObject(result.policy, outFile);
  const changes = diffPolicies(current, result.policy, path.dirname(policyFile));
  const policyText = stableStringify(result.policy);
  const sidecar = buildSidecar(outFile, result.policy, result.explanations, builtins);

  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ policy: JSON.parse(policyText), changes, explanations: result.explanations, builtins, notes: [...log, ...result.notes], pruned: result.pruned }, null, 2)}\n`,
    );
  } else {
    const out = options.write ? process.stdout : process.stderr;
    for (const line of [...log, ...result.notes]) process.stderr.write(`perimeter: ${line}\n`);
    out.write(formatLearnDiff(changes, result.explanations, colours(out)));
    if (!options.write) process.stdout.write(policyText);
  }
  if (options.write) {
    writeAtomically(outFile, policyText);
    writeAtomically(sidecarPath(outFile), stableStringify(sidecar));
    if (!options.json) process.stdout.write(`wrote ${outFile} and ${sidecarPath(outFile)}\n`);
  }
  return 0;
}

function buildSidecar(
  outFile: string,
  policy: PolicyDoc,
  explanations: Record<string, Record<string, RuleExplanation>>,
  builtins: Record<string, string[]> | undefined,
): object {
  // Explanations of rules from earlier runs stay until a new run explains the same rule again.
  let previous: Record<string, Record<string, RuleExplanation>> = {};
  try {
    previous = JSON.parse(readFileSync(sidecarPath(outFile), 'utf8')).rules ?? {};
  } catch {}
  const rules: Record<string, Record<string, RuleExplanation>> = structuredClone(previous);
  for (const [list, entries] of Object.entries(explanations)) rules[list] = { ...(rules[list] ?? {}), ...entries };
  // Only rules the policy still has: a pruned or hand-removed rule keeps no stale explanation.
  for (const [list, entries] of Object.entries(rules)) {
    const present = new Set(getList(policy, { capability: 'network', package: null, keys: list.split('.') }) ?? []);
    for (const rule of Object.keys(entries)) if (!present.has(rule)) delete entries[rule];
    if (Object.keys(entries).length === 0) delete rules[list];
  }
  return {
    $comment:
      'Written by `perimeter learn`: why each rule of the policy beside this file exists. Counts include repeats; "inferred" rules come from the static pass (--from-code), not from a run. Safe to commit; contains no secret values.',
    policy: path.basename(outFile),
    rules,
    ...(builtins ? { builtins } : {}),
  };
}
