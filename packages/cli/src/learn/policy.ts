/**
 * Policy documents as data: the allow lists they hold, stable serialisation, and the semantic diff
 * (`perimeter policy diff`, and the diff `learn` prints). A diff is about what code may do, not about text: a
 * rule replaced by a broader one is a widening, a new `packages.<name>` entry is a narrowing, a mode going
 * from block to alert is a widening.
 */
import type { Capability } from './rules.js';
import { ruleCovers } from './rules.js';

export type PolicyDoc = Record<string, any>;

/** A list of rules inside a policy: where it is and what it governs. */
export interface ListRef {
  capability: Capability;
  /** `null` for the function's own rules. */
  package: string | null;
  /** Keys from the document root, e.g. ['packages', 'stripe', 'network', 'allow']. */
  keys: string[];
}

const FUNCTION_LISTS: Array<[Capability, string, string]> = [
  ['network', 'network', 'allow'],
  ['fs', 'fs', 'read'],
  ['fs', 'fs', 'write'],
  ['process', 'process', 'allow'],
  ['env', 'env', 'allow'],
  ['addon', 'addon', 'allow'],
];
const PACKAGE_LISTS = FUNCTION_LISTS.filter(([capability]) => capability !== 'addon');

export function functionList(capability: Capability, list: string): ListRef {
  return { capability, package: null, keys: [capability, list] };
}

export function packageList(name: string, capability: Capability, list: string): ListRef {
  return { capability, package: name, keys: ['packages', name, capability, list] };
}

export function listName(ref: ListRef): string {
  return ref.keys.join('.');
}

export function listsOf(doc: PolicyDoc): ListRef[] {
  const refs = FUNCTION_LISTS.map(([capability, section, list]) => functionList(capability, list ?? section));
  for (const name of Object.keys(doc.packages ?? {}).sort()) {
    for (const [capability, , list] of PACKAGE_LISTS) refs.push(packageList(name, capability, list));
  }
  return refs;
}

export function getList(doc: PolicyDoc, ref: ListRef): string[] | undefined {
  let node: any = doc;
  for (const key of ref.keys) {
    if (node === null || typeof node !== 'object') return undefined;
    node = node[key];
  }
  return Array.isArray(node) ? node : undefined;
}

export function setList(doc: PolicyDoc, ref: ListRef, rules: string[]): void {
  let node: any = doc;
  for (const key of ref.keys.slice(0, -1)) {
    if (node[key] === null || typeof node[key] !== 'object') node[key] = {};
    node = node[key];
  }
  node[ref.keys.at(-1)!] = rules;
}

/** Sorted keys, sorted rule lists, 2-space indentation, final newline: the same policy always reads the same. */
export function stableStringify(doc: unknown): string {
  return `${JSON.stringify(sortDeep(doc), null, 2)}\n`;
}

function sortDeep(value: unknown, parentKey?: string): unknown {
  if (Array.isArray(value)) {
    const items = value.map((item) => sortDeep(item));
    return items.every((item) => typeof item === 'string') && parentKey !== undefined
      ? [...new Set(items as string[])].sort()
      : items;
  }
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortDeep((value as any)[key], key);
  return out;
}

export function jsonPointer(keys: readonly (string | number)[]): string {
  return `/${keys.map((key) => String(key).replaceAll('~', '~0').replaceAll('/', '~1')).join('/')}`;
}

// -------------------------------------------------------------------------------------------------------------
// Semantic diff

export type ChangeKind = 'added' | 'widened' | 'removed' | 'narrowed' | 'setting';

export interface PolicyChange {
  kind: ChangeKind;
  /** Whether the new policy allows something the old did not. */
  widening: boolean;
  capability: Capability | 'mode' | 'worker' | 'platform';
  package: string | null;
  /** The rule (or setting value) in the new policy; for `removed`, the old rule. */
  rule: string;
  /** Old rules a widened rule replaces or covers. */
  replaces?: string[];
  /** Where: JSON pointer into the new document (old document for removals). */
  pointer: string;
  message: string;
}

const MODE_RANK: Record<string, number> = { block: 0, alert: 1, allow: 2 };
const MODE_CAPABILITIES = ['network', 'fs', 'process', 'env', 'worker', 'addon'] as const;

function effectiveMode(doc: PolicyDoc, capability: string): string {
  return doc[capability]?.mode ?? doc.mode ?? 'block';
}

/**
 * What a package may do for one capability list, as rules: its own entry, else `packages["*"]`, else null
 * (only the function's rules apply). Function lists return their own rules (missing = none).
 */
function effectiveRules(doc: PolicyDoc, ref: ListRef): string[] | null {
  if (ref.package === null) return getList(doc, ref) ?? [];
  const own = doc.packages?.[ref.package]?.[ref.capability];
  if (own && typeof own === 'object') return own[ref.keys.at(-1)!] ?? [];
  if (ref.package !== '*') {
    const any = doc.packages?.['*']?.[ref.capability];
    if (any && typeof any === 'object') return any[ref.keys.at(-1)!] ?? [];
  }
  return null;
}

export function diffPolicies(oldDoc: PolicyDoc, newDoc: PolicyDoc, base?: string): PolicyChange[] {
  const changes: PolicyChange[] = [];
  for (const capability of MODE_CAPABILITIES) {
    const before = effectiveMode(oldDoc, capability);
    const after = effectiveMode(newDoc, capability);
    if (before !== after) {
      const widening = (MODE_RANK[after] ?? 0) > (MODE_RANK[before] ?? 0);
      const pointer = newDoc[capability]?.mode !== undefined ? jsonPointer([capability, 'mode']) : '/mode';
      changes.push({
        kind: 'setting',
        widening,
        capability: 'mode',
        package: null,
        rule: `${capability}: ${after}`,
        pointer,
        message: `${capability} mode ${before} → ${after}${widening ? ' (denials are no longer enforced as before)' : ''}`,
      });
    }
  }
  const flag = (keys: string[], fallback: boolean, label: string, capability: PolicyChange['capability']) => {
    const read = (doc: PolicyDoc) => {
      const value = doc[keys[0]!]?.[keys[1]!];
      return typeof value === 'boolean' ? value : fallback;
    };
    const before = read(oldDoc);
    const after = read(newDoc);
    if (before === after) return;
    changes.push({
      kind: 'setting',
      widening: after === true,
      capability,
      package: null,
      rule: `${keys.join('.')}: ${after}`,
      pointer: jsonPointer(keys),
      message: `${label} ${before} → ${after}`,
    });
  };
  flag(['worker', 'allow'], false, 'worker.allow', 'worker');
  flag(['network', 'platform'], true, 'network.platform', 'platform');
  flag(['process', 'unguardedNode'], false, 'process.unguardedNode', 'process');

  const seen = new Set<string>();
  for (const ref of [...listsOf(oldDoc), ...listsOf(newDoc)]) {
    const name = listName(ref);
    if (seen.has(name)) continue;
    seen.add(name);
    const before = effectiveRules(oldDoc, ref);
    const after = effectiveRules(newDoc, ref);
    const who = ref.package === null ? 'the function' : `package ${ref.package}`;
    if (before !== null && after === null) {
      changes.push({
        kind: 'widened',
        widening: true,
        capability: ref.capability,
        package: ref.package,
        rule: '(no package rules)',
        replaces: before,
        pointer: jsonPointer(ref.keys.slice(0, 3)),
        message: `${who} is no longer narrowed for ${name.split('.').slice(2).join('.')}: it may now use every function-level rule`,
      });
      continue;
    }
    if (before === null && after !== null) {
      if (getList(newDoc, ref) === undefined && newDoc.packages?.[ref.package!]?.[ref.capability] === undefined) {
        continue;
      }
      changes.push({
        kind: 'narrowed',
        widening: false,
        capability: ref.capability,
        package: ref.package,
        rule: `${after.length} rule(s)`,
        pointer: jsonPointer(ref.keys),
        message: `${who} now has its own ${ref.keys.slice(2).join('.')} list (${after.length} rule(s)): narrower than before`,
      });
      continue;
    }
    if (before === null || after === null) continue;
    const newList = getList(newDoc, ref) ?? after;
    const ownNew = getList(newDoc, ref) !== undefined;
    const removed = before.filter((rule) => !after.includes(rule));
    for (const rule of after) {
      if (before.includes(rule)) continue;
      if (before.some((old) => ruleCovers(ref.capability, old, rule, base))) continue;
      const replaces = removed.filter((old) => ruleCovers(ref.capability, rule, old, base));
      const index = newList.indexOf(rule);
      changes.push({
        kind: replaces.length > 0 ? 'widened' : 'added',
        widening: true,
        capability: ref.capability,
        package: ref.package,
        rule,
        replaces: replaces.length > 0 ? replaces : undefined,
        pointer: ownNew && index >= 0 ? jsonPointer([...ref.keys, index]) : jsonPointer(ref.keys),
        message:
          replaces.length > 0
            ? `${name}: "${replaces.join('", "')}" widened to "${rule}"`
            : `${name}: "${rule}" added (${who} may now do this)`,
      });
    }
    for (const rule of removed) {
      if (after.some((now) => ruleCovers(ref.capability, now, rule, base))) continue;
      const oldList = getList(oldDoc, ref) ?? before;
      changes.push({
        kind: 'removed',
        widening: false,
        capability: ref.capability,
        package: ref.package,
        rule,
        pointer: jsonPointer([...ref.keys, Math.max(0, oldList.indexOf(rule))]),
        message: `${name}: "${rule}" removed`,
      });
    }
  }
  return changes;
}

/** 1-based line of the value a JSON pointer names, found by walking the keys through the text. Best effort. */
export function lineOfPointer(text: string, pointer: string): number {
  const keys = pointer
    .split('/')
    .slice(1)
    .map((key) => key.replaceAll('~1', '/').replaceAll('~0', '~'));
  let position = 0;
  let document: any;
  try {
    document = JSON.parse(text);
  } catch {
    return 1;
  }
  let node = document;
  for (const key of keys) {
    if (Array.isArray(node)) {
      const item = node[Number(key)];
      const found = typeof item === 'string' ? text.indexOf(JSON.stringify(item), position) : -1;
      if (found >= 0) position = found;
      node = item;
    } else if (node && typeof node === 'object') {
      const found = text.indexOf(`${JSON.stringify(key)}`, position);
      if (found >= 0) position = found;
      node = node[key];
    } else break;
  }
  return text.slice(0, position).split('\n').length;
}
