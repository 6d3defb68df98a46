/**
 * `perimeter policy diff <old> <new>` (exit 1 when the new policy allows anything the old did not: the CI gate
 * against drift) and `perimeter policy check <policy>` (validate with the runtime's own validator, lint,
 * unused rules; exit 0 ok, 1 error-level findings, 2 invalid policy).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { readEvents } from '../learn/events.js';
import { type LintFinding, lintPolicy, unusedRules } from '../learn/lint.js';
import { diffPolicies, type PolicyDoc } from '../learn/policy.js';
import { colours, formatDiffText, type SarifFinding, sarifRuleIdOf, toSarif } from '../learn/report.js';
import { validatePolicyObject } from './learn.js';

const requireHere = createRequire(import.meta.url);
const VERSION = (requireHere('../../package.json') as { version: string }).version;

type Format = 'text' | 'json' | 'sarif';

function formatOf(value: string | undefined): Format {
  const format = value ?? 'text';
  if (format !== 'text' && format !== 'json' && format !== 'sarif') {
    throw new Error(`--format must be text, json or sarif, not "${format}"`);
  }
  return format;
}

/** Reads and validates a policy file; prints why and returns null when it is not a valid policy. */
function loadOrReport(file: string): PolicyDoc | null {
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8'));
    validatePolicyObject(doc, file);
    return doc;
  } catch (error: any) {
    process.stderr.write(`perimeter: ${file}: ${error?.message ?? error}\n`);
    return null;
  }
}

export async function policyDiffCommand(
  oldFile: string,
  newFile: string,
  options: { format?: string },
): Promise<number> {
  const format = formatOf(options.format);
  const oldDoc = loadOrReport(oldFile);
  const newDoc = loadOrReport(newFile);
  if (!oldDoc || !newDoc) return 2;
  const changes = diffPolicies(oldDoc, newDoc, path.dirname(path.resolve(newFile)));
  const widenings = changes.filter((change) => change.widening);
  if (format === 'json') {
    process.stdout.write(
      `${JSON.stringify({ old: oldFile, new: newFile, widening: widenings.length > 0, changes }, null, 2)}\n`,
    );
  } else if (format === 'sarif') {
    const findings: SarifFinding[] = widenings.map((change) => ({
      ruleId: sarifRuleIdOf(change),
      level: 'error',
      message: change.message,
      file: path.resolve(newFile),
      pointer: change.pointer,
    }));
    process.stdout.write(`${JSON.stringify(toSarif(findings, VERSION), null, 2)}\n`);
  } else {
    process.stdout.write(formatDiffText(changes, colours(process.stdout)));
  }
  return widenings.length > 0 ? 1 : 0;
}

export async function policyCheckCommand(
  file: string,
  options: { events?: string[]; format?: string; lenient?: boolean },
): Promise<number> {
  const format = formatOf(options.format);
  const resolved = path.resolve(file);
  let doc: PolicyDoc;
  try {
    doc = JSON.parse(readFileSync(resolved, 'utf8'));
    // The runtime's loader: the same file, key and hint the function would fail to start with.
    const { loadPolicy } = requireHere('perimeter') as { loadPolicy(file: string): unknown };
    loadPolicy(resolved);
  } catch (error: any) {
    const message = String(error?.message ?? error);
    if (format === 'sarif') {
      const finding: SarifFinding = {
        ruleId: 'policy-invalid',
        level: 'error',
        message,
        file: resolved,
        pointer: error?.key
          ? `/${String(error.key)
              .replaceAll(/\[(\d+)\]/g, '.$1')
              .split('.')
              .join('/')}`
          : '',
      };
      process.stdout.write(`${JSON.stringify(toSarif([finding], VERSION), null, 2)}\n`);
    } else if (format === 'json') {
      process.stdout.write(`${JSON.stringify({ file, valid: false, code: error?.code, error: message }, null, 2)}\n`);
    } else {
      process.stderr.write(`perimeter: invalid policy: ${message}\n`);
    }
    return 2;
  }
  const findings: LintFinding[] = lintPolicy(doc);
  if (options.events && options.events.length > 0) {
    const { events } = readEvents(options.events, { lenient: options.lenient });
    findings.push(...unusedRules(doc, events, path.dirname(resolved)));
  }
  const errors = findings.filter((finding) => finding.level === 'error').length;
  if (format === 'sarif') {
    const sarif = findings.map((finding) => ({ ...finding, file: resolved }));
    process.stdout.write(`${JSON.stringify(toSarif(sarif, VERSION), null, 2)}\n`);
  } else if (format === 'json') {
    process.stdout.write(`${JSON.stringify({ file, valid: true, findings }, null, 2)}\n`);
  } else {
    const c = colours(process.stdout);
    for (const finding of findings) {
      const level =
        finding.level === 'error' ? c.red('error') : finding.level === 'warning' ? c.yellow('warning') : c.dim('note');
      process.stdout.write(`${level} ${finding.ruleId}: ${finding.message}  ${c.dim(finding.pointer)}\n`);
    }
    process.stdout.write(`${file}: valid; ${errors} error(s), ${findings.length - errors} other finding(s)\n`);
  }
  return errors > 0 ? 1 : 0;
}
