/**
 * Turns a validated policy document into the form the hot path reads: modes resolved per capability, network
 * patterns compiled and indexed by exact host, package rules looked up by name.
 */
import { type CompiledEnv, compileEnv } from './env.js';
import { type CompiledFs, compileFs } from './fs.js';
import { compileNetworkPattern, type NetworkRule } from './pattern.js';
import { type CompiledProcess, compileProcess } from './process-rules.js';
import {
  type CompiledAddonRules,
  type CompiledWorkerRules,
  compileAddonRules,
  compileWorkerRules,
} from './runtime-caps.js';

export type Mode = 'block' | 'alert' | 'allow';

export interface PolicyDocument {
  mode?: Mode;
  network?: { mode?: Mode; allow?: string[]; platform?: boolean };
  fs?: { mode?: Mode; read?: string[]; write?: string[] };
  process?: { mode?: Mode; allow?: string[]; unguardedNode?: boolean };
  env?: { mode?: Mode; allow?: string[] };
  worker?: { mode?: Mode; allow?: boolean };
  addon?: { mode?: Mode; allow?: string[] };
  packages?: Record<string, PackageDocument>;
}

export interface PackageDocument {
  network?: { allow?: string[] };
  fs?: { read?: string[]; write?: string[] };
  process?: { allow?: string[] };
  env?: { allow?: string[] };
}

/** Network rules indexed for lookup: exact hosts in a map, every other shape in a short list. */
export interface NetworkRuleSet {
  rules: readonly NetworkRule[];
  byHost: ReadonlyMap<string, readonly NetworkRule[]>;
  wildcard: readonly NetworkRule[];
}

export interface CompiledPackage {
  name: string;
  network: NetworkRuleSet | null;
  document: PackageDocument;
}

export interface CompiledPolicy {
  /** The file it came from, or `<inline>` for a policy given in code. */
  file: string;
  document: PolicyDocument;
  mode: Mode;
  network: NetworkRuleSet & { mode: Mode; platform: boolean };
  packages: ReadonlyMap<string, CompiledPackage>;
  /** Rules for every dependency that has no entry of its own (`packages["*"]`). */
  anyPackage: CompiledPackage | null;
  worker: CompiledWorkerRules;
  addon: CompiledAddonRules;
  /** True when some package narrows network access, so a decision needs to know who is calling. */
  packageNetworkRules: boolean;
  /** Every package's network rules: when all of them allow a target, who is calling cannot change the answer. */
  packageNetworkSets: readonly NetworkRuleSet[];
  /** File system rules, defaults and always-denied areas (policy/fs.ts). */
  fs: CompiledFs;
  /** Child process rules (policy/process.ts). */
  process: CompiledProcess;
  /** Environment variable rules (policy/env.ts). */
  env: CompiledEnv;
}

export function compilePolicy(document: PolicyDocument, file: string): CompiledPolicy {
  const mode = document.mode ?? 'block';
  const packages = new Map<string, CompiledPackage>();
  let anyPackage: CompiledPackage | null = null;
  for (const [name, pkg] of Object.entries(document.packages ?? {})) {
    const compiled: CompiledPackage = {
      name,
      document: pkg,
      network: pkg.network?.allow ? compileRuleSet(pkg.network.allow, `packages.${name}.network.allow`, file) : null,
    };
    if (name === '*') anyPackage = compiled;
    else packages.set(name, compiled);
  }
  const all = [...packages.values(), ...(anyPackage ? [anyPackage] : [])];
  return {
    file,
    document,
    mode,
    network: {
      ...compileRuleSet(document.network?.allow ?? [], 'network.allow', file),
      mode: document.network?.mode ?? mode,
      platform: document.network?.platform ?? true,
    },
    packages,
    anyPackage,
    worker: compileWorkerRules(document, mode),
    addon: compileAddonRules(document, mode, file),
    packageNetworkRules: all.some((p) => p.network !== null),
    packageNetworkSets: all.flatMap((p) => (p.network ? [p.network] : [])),
    fs: compileFs(document),
    process: compileProcess(document, mode, file),
    env: compileEnv(document, mode),
  };
}

export function compileRuleSet(patterns: readonly string[], key: string, file: string): NetworkRuleSet {
  const rules = patterns.map((p, i) => compileNetworkPattern(p, `${key}[${i}]`, file));
  const byHost = new Map<string, NetworkRule[]>();
  const wildcard: NetworkRule[] = [];
  for (const rule of rules) {
    if (rule.host.kind === 'exact') {
      const list = byHost.get(rule.host.host) ?? [];
      list.push(rule);
      byHost.set(rule.host.host, list);
    } else {
      wildcard.push(rule);
    }
  }
  return { rules, byHost, wildcard };
}
