/**
 * From observations (events of an alert-mode run, or findings of the static pass) to the smallest policy that
 * allows them, merged into the current policy. Never removes what the current policy allows unless asked
 * (`prune`), keeps every key it does not manage, and explains every rule it adds.
 */
import { loadPolicyFromObject } from 'perimeter';
import type { PerimeterEventLine } from './events.js';
import {
  formatHttpRule,
  generaliseFsPaths,
  generalisePath,
  hostKey,
  type ParsedTarget,
  parseNetworkTarget,
  pathRulesForHost,
} from './generalise.js';
import {
  functionList,
  getList,
  type ListRef,
  listName,
  listsOf,
  type PolicyDoc,
  packageList,
  setList,
} from './policy.js';
import { type Capability, quoteWord, ruleAllowsLookup, ruleAllowsSocket, ruleCovers, splitWords } from './rules.js';

/** One thing the function did (or, from the static pass, probably does). */
export interface Observation {
  capability: Capability | 'worker';
  /** For fs: 'read' | 'write'. */
  list: string;
  target: string;
  /** npm packages on the call stack, outermost first (not `app`). */
  packages: string[];
  count: number;
  time?: string;
  inferred?: boolean;
  /** Where it was seen: `events.jsonl:12` or `src/handler.ts:4`. */
  where: string;
}

export interface RuleExplanation {
  packages: string[];
  count: number;
  firstSeen?: string;
  lastSeen?: string;
  example: string;
  where: string;
  inferred?: boolean;
  note?: string;
}

/** Which capabilities get `packages.<name>` entries for packages that were seen using them. */
export type PerPackage = 'none' | 'network' | 'all';

export interface LearnOptions {
  perPackage?: PerPackage;
  prune?: boolean;
  /** Folder relative fs rules are resolved against (the policy's folder). */
  base?: string;
}

export interface LearnResult {
  policy: PolicyDoc;
  /** By list name (`network.allow`, `packages.stripe.network.allow`), then rule. */
  explanations: Record<string, Record<string, RuleExplanation>>;
  notes: string[];
  /** Rules the current policy had that `prune` removed. */
  pruned: Array<{ list: string; rule: string }>;
}

const LEARNABLE_REASONS = new Set(['no-rule', 'package-rule', 'workers-not-allowed']);

export interface EventSelection {
  observations: Observation[];
  /** Violations not learned from, by reason (e.g. `sensitive-path`: 3). */
  ignored: Map<string, number>;
}

const hostVerdicts = new Map<string, boolean>();

/** Whether the runtime would accept a rule naming this target's host (its own validator decides, nothing else). */
function learnableHost(target: string): boolean {
  const parsed = parseNetworkTarget(target);
  if (parsed === null) return false;
  if (parsed.kind === 'unix' || parsed.host === undefined) return true;
  let verdict = hostVerdicts.get(parsed.host);
  if (verdict === undefined) {
    try {
      loadPolicyFromObject({ network: { allow: [`https://${parsed.host}`] } });
      verdict = true;
    } catch {
      verdict = false;
    }
    if (hostVerdicts.size > 10_000) hostVerdicts.clear();
    hostVerdicts.set(parsed.host, verdict);
  }
  return verdict;
}

/** Picks the violations a policy can be learned from; counts the rest by why they were left out. */
export function observationsFromEvents(events: readonly PerimeterEventLine[], functionName?: string): EventSelection {
  const observations: Observation[] = [];
  const ignored = new Map<string, number>();
  const skip = (why: string) => ignored.set(why, (ignored.get(why) ?? 0) + 1);
  for (const event of events) {
    if (event.type !== 'violation') continue;
    if (functionName !== undefined && event.function !== functionName) continue;
    if (event.action !== 'alerted' && event.action !== 'blocked') continue;
    const reason = event.reason ?? 'no-rule';
    if (!LEARNABLE_REASONS.has(reason)) {
      skip(reason);
      continue;
    }
    const packages =
      event.packages ?? (event.package !== 'app' && event.package !== '<unknown>' ? [event.package] : []);
    const base = {
      packages: packages.filter((name) => name !== 'app' && name !== '<unknown>'),
      // A repeat summary stands for `repeats` more occurrences of a line already counted (docs/events.md).
      count: event.repeats ?? 1,
      time: event.time,
      where: `${event.source.file}:${event.source.line}`,
    };
    switch (event.capability) {
      case 'network':
        // Targets come from what the code tried, and a hostile dependency chooses them: a DNS name such as
        // `<img src=x>.attacker.test` can never be a rule, and must not stop learn from writing the others.
        if (!learnableHost(event.target)) {
          skip('network target whose host no rule can name');
          break;
        }
        observations.push({ ...base, capability: event.capability, list: 'allow', target: event.target });
        break;
      case 'process':
      case 'env':
      case 'addon':
        observations.push({ ...base, capability: event.capability, list: 'allow', target: event.target });
        break;
      case 'fs': {
        const match = /^(read|write) (.+)$/.exec(event.target);
        if (match) observations.push({ ...base, capability: 'fs', list: match[1]!, target: match[2]! });
        else skip(`fs target not understood`);
        break;
      }
      case 'worker':
        observations.push({ ...base, capability: 'worker', list: 'allow', target: event.target });
        break;
      default:
        skip(`capability ${event.capability}`);
    }
  }
  return { observations, ignored };
}

interface Placed {
  observation: Observation;
  ref: ListRef;
  rule: string;
  note?: string;
}

export function learnPolicy(
  current: PolicyDoc,
  observations: readonly Observation[],
  options: LearnOptions = {},
): LearnResult {
  const perPackage = options.perPackage ?? 'network';
  const policy: PolicyDoc = structuredClone(current);
  const notes: string[] = [];
  const placed: Placed[] = [];
  const allRules = (ref: ListRef) => getList(policy, ref) ?? [];
  const covered = (ref: ListRef, target: string) =>
    allRules(ref).find((rule) => ruleCovers(ref.capability, rule, target, options.base));

  // 1. Function-level rules: what is not already allowed becomes a generalised rule.
  // The static pass yields rules already (a base URL means any path below it); runs yield requests.
  const networkRef = functionList('network', 'allow');
  const inferredNetwork = observations.filter((o) => o.capability === 'network' && o.inferred);
  addRules(
    policy,
    networkRef,
    inferredNetwork.filter((o) => !covered(networkRef, o.target)).map((o) => o.target),
  );
  for (const o of inferredNetwork) {
    placed.push({ observation: o, ref: networkRef, rule: covered(networkRef, o.target) ?? o.target });
  }
  const network = observations.filter((o) => o.capability === 'network' && !o.inferred);
  placed.push(...learnNetwork(policy, network, notes));
  for (const list of ['read', 'write']) {
    const ref = functionList('fs', list);
    const seen = observations.filter((o) => o.capability === 'fs' && o.list === list);
    const fresh = seen.filter((o) => !covered(ref, o.target));
    const shapes = generaliseFsPaths([...new Set(fresh.map((o) => o.target))]);
    addRules(policy, ref, [...shapes.values()]);
    for (const o of seen) placed.push({ observation: o, ref, rule: covered(ref, o.target) ?? o.target });
  }
  const processRef = functionList('process', 'allow');
  const spawns = observations.filter((o) => o.capability === 'process');
  addRules(policy, processRef, processRules(spawns.filter((o) => !covered(processRef, exactProcess(o.target)))));
  for (const o of spawns) {
    placed.push({ observation: o, ref: processRef, rule: covered(processRef, exactProcess(o.target)) ?? o.target });
  }
  for (const capability of ['env', 'addon'] as const) {
    const ref = functionList(capability, 'allow');
    const seen = observations.filter((o) => o.capability === capability);
    addRules(
      policy,
      ref,
      seen.filter((o) => !covered(ref, o.target)).map((o) => o.target),
    );
    for (const o of seen) placed.push({ observation: o, ref, rule: covered(ref, o.target) ?? o.target });
  }
  const workers = observations.filter((o) => o.capability === 'worker');
  if (workers.length > 0 && policy.worker?.allow !== true) {
    policy.worker = { ...(policy.worker ?? {}), allow: true };
    notes.push(`worker.allow set to true: ${workers.length} worker start(s) seen`);
  }

  // 2. Package rules: a package already narrowed keeps being narrowed, now including what it was seen doing.
  const packagePlaced: Placed[] = [];
  for (const item of placed) {
    const { observation, ref } = item;
    for (const name of new Set(observation.packages)) {
      const own = packageList(name, ref.capability, ref.keys.at(-1)!);
      const section = policy.packages?.[name]?.[ref.capability];
      const anySection = current.packages?.['*']?.[ref.capability];
      if (section && typeof section === 'object') {
        // Already narrowed (an entry from the current policy, or created below): extend it.
      } else if (anySection && typeof anySection === 'object') {
        // Under packages["*"]: give it an entry of its own that starts from what "*" allowed.
        for (const list of ['allow', 'read', 'write']) {
          if (Array.isArray(anySection[list]))
            setList(policy, packageList(name, ref.capability, list), [...anySection[list]]);
        }
      } else if (wantsPackageEntry(perPackage, ref.capability) && functionLevelWasEmpty(current, ref.capability)) {
        policy.packages ??= {};
        policy.packages[name] ??= {};
        policy.packages[name][ref.capability] = {};
      } else {
        continue;
      }
      const existing = covered(own, item.rule);
      const rule = existing ?? item.rule;
      if (!existing) addRules(policy, own, [rule]);
      packagePlaced.push({ ...item, ref: own, rule });
    }
  }
  if (perPackage !== 'none') {
    const skippedPackages = new Set<string>();
    for (const item of placed) {
      for (const name of item.observation.packages) {
        if (!policy.packages?.[name]?.[item.ref.capability] && wantsPackageEntry(perPackage, item.ref.capability)) {
          skippedPackages.add(`${name} (${item.ref.capability})`);
        }
      }
    }
    if (skippedPackages.size > 0) {
      notes.push(
        `no packages.<name> entry was created for ${[...skippedPackages].sort().join(', ')}: the current policy already allowed things at function level that these packages may rely on without any event showing it; add package rules by hand, or learn from a run under a policy without those rules`,
      );
    }
  }
  placed.push(...packagePlaced);

  // 3. Prune: only on request, only rules no observation needed.
  const pruned: Array<{ list: string; rule: string }> = [];
  if (options.prune) {
    const used = new Set(placed.map((item) => `${listName(item.ref)}\0${item.rule}`));
    for (const ref of listsOf(policy)) {
      const rules = getList(policy, ref);
      if (!rules) continue;
      const kept = rules.filter((rule) => used.has(`${listName(ref)}\0${rule}`));
      for (const rule of rules) if (!kept.includes(rule)) pruned.push({ list: listName(ref), rule });
      setList(policy, ref, kept);
    }
  }

  return { policy, explanations: explain(placed), notes, pruned };
}

function wantsPackageEntry(perPackage: PerPackage, capability: Capability): boolean {
  return perPackage === 'all' || (perPackage === 'network' && capability === 'network');
}

/**
 * A new package entry is only safe when the function-level lists of that capability were empty before: then
 * every use was reported, so the events show everything the package needs. Otherwise the package may rely on
 * rules that were already there, and a package entry built from events alone would cut it off.
 */
function functionLevelWasEmpty(current: PolicyDoc, capability: Capability): boolean {
  const section = current[capability];
  if (!section || typeof section !== 'object') return true;
  return ['allow', 'read', 'write'].every((list) => !Array.isArray(section[list]) || section[list].length === 0);
}

function addRules(policy: PolicyDoc, ref: ListRef, rules: readonly string[]): void {
  if (rules.length === 0) return;
  const list = [...(getList(policy, ref) ?? [])];
  for (const rule of rules) if (!list.includes(rule)) list.push(rule);
  setList(policy, ref, list.sort());
}

function learnNetwork(policy: PolicyDoc, observations: readonly Observation[], notes: string[]): Placed[] {
  const ref = functionList('network', 'allow');
  const placed: Placed[] = [];
  const parsed = observations.map((o) => ({ o, t: parseNetworkTarget(o.target) }));
  for (const { o, t } of parsed) if (!t) notes.push(`network target not understood, not learned: ${o.target}`);
  const existing = () => getList(policy, ref) ?? [];
  const exact = (t: ParsedTarget) =>
    t.kind === 'http' ? `${t.method ? `${t.method} ` : ''}${hostKey(t.scheme!, t.host!, t.port)}${t.path}` : '';

  // HTTP-level requests first: they carry the most information (method, path).
  const byHost = new Map<string, Array<{ o: Observation; t: ParsedTarget }>>();
  for (const entry of parsed) {
    const { t } = entry;
    if (t?.kind !== 'http') continue;
    if (existing().some((rule) => ruleCovers('network', rule, exact(t)))) continue;
    const key = hostKey(t.scheme!, t.host!, t.port);
    byHost.set(key, [...(byHost.get(key) ?? []), { o: entry.o, t }]);
  }
  const learned: string[] = [];
  for (const [key, entries] of byHost) {
    const shapes = entries.map(({ t }) => ({ method: t.method, shape: generalisePath(t.path!) }));
    for (const { methods, path } of pathRulesForHost(shapes)) learned.push(formatHttpRule(methods, key, path));
  }
  addRules(policy, ref, learned);

  // Sockets: an https rule for the host already lets its TCP connection through.
  const sockets: string[] = [];
  for (const { t } of parsed) {
    if (t?.kind !== 'socket') continue;
    const port = t.port ?? '*';
    if (existing().some((rule) => ruleAllowsSocket(rule, t.scheme!, t.host!, port))) continue;
    sockets.push(`${t.scheme}://${t.host}:${port}`);
  }
  addRules(policy, ref, sockets);
  for (const { t } of parsed) {
    if (t?.kind === 'unix' && !existing().some((rule) => ruleCovers('network', rule, `unix:${t.path}`))) {
      addRules(policy, ref, [`unix:${t.path}`]);
    }
  }

  // DNS lookups with no connection to the same name. The policy has no lookup-only rule: any rule naming the
  // host allows the lookup, so the narrowest one that names it is used, and the sidecar says why it is there.
  const dnsNotes = new Map<string, string>();
  for (const { t } of parsed) {
    if (t?.kind !== 'dns') continue;
    if (existing().some((rule) => ruleAllowsLookup(rule, t.host!))) continue;
    const rule = `HEAD https://${t.host}/`;
    addRules(policy, ref, [rule]);
    dnsNotes.set(
      rule,
      `only a DNS lookup of ${t.host} was seen (no request, no connection by that name): any rule naming a host allows its lookup, and "HEAD https://${t.host}/" is the narrowest such rule; if the lookup is not expected, remove the rule and investigate`,
    );
  }

  for (const { o, t } of parsed) {
    if (!t) continue;
    let rule: string | undefined;
    if (t.kind === 'http') rule = existing().find((r) => ruleCovers('network', r, exact(t)));
    else if (t.kind === 'socket') rule = existing().find((r) => ruleAllowsSocket(r, t.scheme!, t.host!, t.port ?? '*'));
    else if (t.kind === 'dns') rule = existing().find((r) => ruleAllowsLookup(r, t.host!));
    else rule = existing().find((r) => ruleCovers('network', r, `unix:${t.path}`));
    if (rule) placed.push({ observation: o, ref, rule, note: dnsNotes.get(rule) });
  }
  return placed;
}

/** The target as a rule that allows exactly it (arguments quoted). */
function exactProcess(target: string): string {
  return splitWords(target).map(quoteWord).join(' ');
}

/** Up to three argument forms per program are kept exactly; more, and the program is allowed with any arguments. */
function processRules(observations: readonly Observation[]): string[] {
  const forms = new Map<string, Set<string>>();
  for (const o of observations) {
    const [program, ...args] = splitWords(o.target);
    if (!program) continue;
    const set = forms.get(program) ?? new Set<string>();
    set.add(args.some((arg) => arg.includes('[REDACTED]')) ? '\0any' : args.map(quoteWord).join(' '));
    forms.set(program, set);
  }
  const rules: string[] = [];
  for (const [program, set] of forms) {
    if (set.size > 3 || set.has('\0any')) rules.push(quoteWord(program));
    else for (const args of set) rules.push(args ? `${quoteWord(program)} ${args}` : quoteWord(program));
  }
  return rules;
}

function explain(placed: readonly Placed[]): Record<string, Record<string, RuleExplanation>> {
  const out: Record<string, Record<string, RuleExplanation>> = {};
  for (const { observation, ref, rule, note } of placed) {
    const list = (out[listName(ref)] ??= {});
    const entry = (list[rule] ??= {
      packages: [],
      count: 0,
      // Targets are redacted by the runtime; env targets are names, never values.
      example: observation.target,
      where: observation.where,
    });
    entry.count += observation.count;
    const who = observation.packages.length > 0 ? observation.packages : ['app'];
    entry.packages = [...new Set([...entry.packages, ...who])].sort();
    if (observation.time) {
      if (!entry.firstSeen || observation.time < entry.firstSeen) entry.firstSeen = observation.time;
      if (!entry.lastSeen || observation.time > entry.lastSeen) entry.lastSeen = observation.time;
    }
    if (observation.inferred) entry.inferred = true;
    if (note) entry.note = note;
  }
  return out;
}
