/**
 * How changes and findings are shown: coloured text for people, JSON for scripts, SARIF 2.1.0 for code-scanning
 * UIs (GitHub, GitLab), which show each result on the line of the policy file it points at.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RuleExplanation } from './learn.js';
import { lineOfPointer, type PolicyChange } from './policy.js';

export interface Colours {
  green(text: string): string;
  red(text: string): string;
  yellow(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

export function colours(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): Colours {
  const on = env.FORCE_COLOR ? env.FORCE_COLOR !== '0' : stream.isTTY === true && !env.NO_COLOR;
  const wrap = (open: number, close: number) => (text: string) => (on ? `\x1b[${open}m${text}\x1b[${close}m` : text);
  return { green: wrap(32, 39), red: wrap(31, 39), yellow: wrap(33, 39), dim: wrap(2, 22), bold: wrap(1, 22) };
}

function groupName(change: PolicyChange): string {
  return `${change.package === null ? 'function' : `packages.${change.package}`} · ${change.capability}`;
}

/** The diff `learn` prints: rules added and removed, grouped by package and capability, with evidence. */
export function formatLearnDiff(
  changes: readonly PolicyChange[],
  explanations: Record<string, Record<string, RuleExplanation>>,
  c: Colours,
): string {
  if (changes.length === 0) return `${c.dim('no change: the current policy already allows everything observed')}\n`;
  const groups = new Map<string, PolicyChange[]>();
  for (const change of changes) groups.set(groupName(change), [...(groups.get(groupName(change)) ?? []), change]);
  const lines: string[] = [];
  for (const [group, list] of [...groups].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const counts = [
      [list.filter((change) => change.widening).length, 'added'],
      [list.filter((change) => change.kind === 'removed').length, 'removed'],
      [list.filter((change) => change.kind === 'narrowed').length, 'narrowed'],
    ] as const;
    const summary = counts.filter(([count]) => count > 0).map(([count, label]) => `${count} ${label}`);
    lines.push(c.bold(`${group}: ${summary.join(', ')}`));
    for (const change of list) {
      const listKey = change.pointer.split('/').slice(1, -1).join('.');
      const why = explanations[listKey]?.[change.rule];
      const evidence = why
        ? c.dim(
            `  (${why.inferred ? 'inferred: found' : 'seen'} ${why.count}×${why.firstSeen ? ` since ${why.firstSeen}` : ''}${why.packages.length ? ` by ${why.packages.join(', ')}` : ''})`,
          )
        : '';
      if (change.kind === 'removed') lines.push(c.red(`  - ${change.rule}`));
      else if (change.widening) lines.push(`${c.green(`  + ${change.rule}`)}${evidence}`);
      else lines.push(c.yellow(`  ~ ${change.message}`));
    }
  }
  return `${lines.join('\n')}\n`;
}

/** `policy diff` as text. */
export function formatDiffText(changes: readonly PolicyChange[], c: Colours): string {
  if (changes.length === 0) return `${c.dim('no semantic change')}\n`;
  const lines: string[] = [];
  for (const change of changes) {
    const mark = change.widening ? c.red('WIDENS ') : c.green('narrows');
    lines.push(`${mark} ${groupName(change)}: ${change.message}  ${c.dim(change.pointer)}`);
  }
  const widenings = changes.filter((change) => change.widening).length;
  lines.push(
    widenings > 0
      ? c.red(`${widenings} widening(s): the new policy allows something the old one did not`)
      : c.green('no widening'),
  );
  return `${lines.join('\n')}\n`;
}

export interface SarifFinding {
  ruleId: string;
  level: 'error' | 'warning' | 'note';
  message: string;
  file: string;
  pointer: string;
}

export const SARIF_RULES: Record<string, string> = {
  'policy-widened': 'A rule in the new policy allows something the old policy did not.',
  'policy-rule-added': 'A new rule allows something the old policy did not.',
  'policy-setting-relaxed': 'A mode or setting change lets more through.',
  'policy-package-unnarrowed': 'A package lost its own rules and may now use every function-level rule.',
  'policy-invalid': 'The policy does not validate.',
  'broad-network': 'A network rule allows any host, or nearly any.',
  'broad-fs': 'A file system rule reaches the whole file system.',
  'shell-allowed': 'A shell is allowed with any script.',
  'broad-env': 'Every environment variable may be read.',
  'mode-not-enforced': 'A capability is not in block mode.',
  'unused-rule': 'No event in the given files used this rule.',
};

export function sarifRuleIdOf(change: PolicyChange): string {
  if (change.kind === 'setting') return 'policy-setting-relaxed';
  if (change.kind === 'widened' && change.rule === '(no package rules)') return 'policy-package-unnarrowed';
  return change.kind === 'widened' ? 'policy-widened' : 'policy-rule-added';
}

export function toSarif(findings: readonly SarifFinding[], toolVersion: string): object {
  const texts = new Map<string, string>();
  const used = [...new Set(findings.map((finding) => finding.ruleId))].sort();
  const region = (finding: SarifFinding) => {
    if (!texts.has(finding.file)) {
      try {
        texts.set(finding.file, readFileSync(finding.file, 'utf8'));
      } catch {
        texts.set(finding.file, '');
      }
    }
    return { startLine: lineOfPointer(texts.get(finding.file)!, finding.pointer) };
  };
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'perimeter',
            version: toolVersion,
            rules: used.map((id) => ({ id, shortDescription: { text: SARIF_RULES[id] ?? id } })),
          },
        },
        results: findings.map((finding) => ({
          ruleId: finding.ruleId,
          level: finding.level,
          message: { text: finding.message },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: toUri(finding.file) },
                region: region(finding),
              },
              logicalLocations: [{ fullyQualifiedName: finding.pointer, kind: 'member' }],
            },
          ],
          properties: { jsonPointer: finding.pointer },
        })),
      },
    ],
  };
}

function toUri(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return (relative.startsWith('..') || path.isAbsolute(relative) ? file : relative).split(path.sep).join('/');
}
