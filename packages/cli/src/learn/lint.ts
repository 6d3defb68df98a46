/**
 * `perimeter policy check` findings beyond validity: rules that are legal but allow far more than any function
 * needs, and (given events) rules nothing used.
 */
import path from 'node:path';
import type { PerimeterEventLine } from './events.js';
import { parseNetworkTarget } from './generalise.js';
import { getList, jsonPointer, listsOf, type PolicyDoc } from './policy.js';
import { parseNetworkRule, ruleAllowsLookup, ruleAllowsSocket, ruleCovers, splitWords } from './rules.js';

export interface LintFinding {
  ruleId: string;
  level: 'error' | 'warning' | 'note';
  pointer: string;
  message: string;
}

const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'fish', 'csh', 'tcsh', 'busybox']);

export function lintPolicy(doc: PolicyDoc): LintFinding[] {
  const findings: LintFinding[] = [];
  for (const ref of listsOf(doc)) {
    const rules = getList(doc, ref) ?? [];
    const where = ref.package === null ? '' : ` (packages.${ref.package})`;
    rules.forEach((rule, index) => {
      const pointer = jsonPointer([...ref.keys, index]);
      const push = (ruleId: string, level: LintFinding['level'], message: string) =>
        findings.push({ ruleId, level, pointer, message: `${message}${where}` });
      switch (ref.capability) {
        case 'network': {
          const parsed = parseNetworkRule(rule);
          if (parsed?.kind !== 'url') break;
          const labels = parsed.host.split('.');
          if (parsed.host === '*' || parsed.host === '**') {
            push('broad-network', 'error', `"${rule}" allows every host over ${parsed.scheme}: name the hosts`);
          } else if (labels.length <= 2 && labels[0]!.includes('*')) {
            push('broad-network', 'warning', `"${rule}" allows every name under .${labels.slice(1).join('.')}`);
          } else if (parsed.port === '*' && (parsed.scheme === 'tcp' || parsed.scheme === 'udp')) {
            push('broad-network', 'warning', `"${rule}" allows every port of ${parsed.host}`);
          }
          break;
        }
        case 'fs':
        case 'addon': {
          const trimmed = rule.replace(/\/+$/, '');
          if (['/**', '/*', '', '**', '~/**'].includes(trimmed) || trimmed === '/') {
            const level = ref.keys.at(-1) === 'write' || trimmed !== '~/**' ? 'error' : 'warning';
            push(
              'broad-fs',
              level,
              `"${rule}" reaches ${trimmed.startsWith('~') ? 'all of $HOME' : 'the whole file system'}`,
            );
          }
          break;
        }
        case 'process': {
          const [program, ...args] = splitWords(rule);
          if (program && SHELLS.has(path.basename(program)) && args.length === 0) {
            push('shell-allowed', 'error', `"${rule}" trusts a shell: any script it is given runs unjudged`);
          } else if (
            program &&
            args.length === 0 &&
            ['node', 'python3', 'python', 'perl', 'ruby'].includes(path.basename(program))
          ) {
            push('shell-allowed', 'warning', `"${rule}" allows an interpreter with any script`);
          }
          break;
        }
        case 'env':
          if (rule === '*')
            push('broad-env', 'error', '"*" lets code read every environment variable, secrets included');
          break;
      }
    });
  }
  for (const capability of ['network', 'fs', 'process', 'env'] as const) {
    const mode = doc[capability]?.mode ?? doc.mode ?? 'block';
    if (mode !== 'block') {
      findings.push({
        ruleId: 'mode-not-enforced',
        level: 'note',
        pointer: doc[capability]?.mode !== undefined ? jsonPointer([capability, 'mode']) : '/mode',
        message: `${capability} runs in ${mode} mode: violations are ${mode === 'alert' ? 'reported, not stopped' : 'not even checked'}`,
      });
    }
  }
  return findings;
}

/**
 * Rules no event used. Events only show what a policy did NOT allow, so this is meaningful for events recorded
 * under a policy that did not already allow these things (a learning run under `{ "mode": "alert" }`).
 */
export function unusedRules(doc: PolicyDoc, events: readonly PerimeterEventLine[], base?: string): LintFinding[] {
  const findings: LintFinding[] = [];
  const violations = events.filter((event) => event.type === 'violation');
  for (const ref of listsOf(doc)) {
    const rules = getList(doc, ref) ?? [];
    rules.forEach((rule, index) => {
      const used = violations.some((event) => {
        if (event.capability !== ref.capability) return false;
        if (ref.package !== null && ref.package !== '*' && !(event.packages ?? [event.package]).includes(ref.package)) {
          return false;
        }
        return eventUses(ref.capability, rule, ref.keys.at(-1)!, event.target, base);
      });
      if (!used) {
        findings.push({
          ruleId: 'unused-rule',
          level: 'warning',
          pointer: jsonPointer([...ref.keys, index]),
          message: `"${rule}" was not used by any event in the given files`,
        });
      }
    });
  }
  return findings;
}

function eventUses(capability: string, rule: string, list: string, target: string, base?: string): boolean {
  switch (capability) {
    case 'network': {
      const t = parseNetworkTarget(target);
      if (!t) return false;
      if (t.kind === 'dns') return ruleAllowsLookup(rule, t.host!);
      if (t.kind === 'socket') return ruleAllowsSocket(rule, t.scheme!, t.host!, t.port ?? '*');
      if (t.kind === 'unix') return ruleCovers('network', rule, `unix:${t.path}`);
      const port = t.port ? `:${t.port}` : '';
      return ruleCovers('network', rule, `${t.method ? `${t.method} ` : ''}${t.scheme}://${t.host}${port}${t.path}`);
    }
    case 'fs': {
      const match = /^(read|write) (.+)$/.exec(target);
      return match?.[1] === list && ruleCovers('fs', rule, match[2]!, base);
    }
    case 'process':
    case 'env':
    case 'addon':
      return ruleCovers(capability, rule, target, base);
    default:
      return false;
  }
}
