/**
 * The only place that decides. Interceptors describe what is being attempted as a `NetworkTarget`; this
 * module says whether the policy allows it. The steps are numbered as in docs/policy.md ("How a network
 * decision is made").
 */
import type { CompiledPolicy, NetworkRuleSet } from './compile.js';
import { matchGlob } from './glob.js';
import { matchHost, type NetworkRule, TCP_SCHEMES } from './pattern.js';

export type TargetKind = 'http' | 'socket' | 'udp' | 'dns' | 'unix';

export interface NetworkTarget {
  kind: TargetKind;
  /** Upper-case HTTP method, for `http` targets. */
  method: string;
  /** `http`, `https`, `ws`, `wss` for http targets; `tcp`/`tls`/`udp` for sockets. */
  scheme: string;
  /** Normalised host (see host.ts); for `unix`, empty. */
  host: string;
  port: number;
  /** URL path without query for http targets; the socket path for unix targets. */
  path: string;
}

export interface PlatformEndpoint {
  host: string;
  port: number;
}

export type Verdict =
  | { allowed: true; by: NetworkRule | 'platform' }
  | { allowed: false; reason: 'no-rule' | 'package-rule'; deniedBy?: string };

export function evaluateNetwork(
  policy: CompiledPolicy,
  target: NetworkTarget,
  platform: readonly PlatformEndpoint[],
  packagesOnStack: () => readonly string[],
): Verdict {
  // Step 1: the platform's own endpoints (Lambda Runtime API…) keep working unless the policy opts out.
  if (policy.network.platform && target.kind !== 'unix') {
    for (const endpoint of platform) {
      if (endpoint.host === target.host && (target.kind === 'dns' || endpoint.port === target.port)) {
        return { allowed: true, by: 'platform' };
      }
    }
  }
  // Step 2: some rule of the function's policy must allow it.
  const rule = findRule(policy.network, target);
  if (rule === null) return { allowed: false, reason: 'no-rule' };
  // Step 3: every package on the call stack that has rules of its own (or falls under packages["*"]) must allow
  // it too. A package can only narrow what the function may do, never widen it.
  if (policy.packageNetworkRules) {
    for (const name of packagesOnStack()) {
      const own = policy.packages.get(name) ?? policy.anyPackage;
      if (own?.network && findRule(own.network, target) === null) {
        return { allowed: false, reason: 'package-rule', deniedBy: name };
      }
    }
  }
  // Step 4: allowed.
  return { allowed: true, by: rule };
}

export function findRule(set: NetworkRuleSet, target: NetworkTarget): NetworkRule | null {
  const exact = set.byHost.get(target.host);
  if (exact) {
    for (const rule of exact) if (ruleMatches(rule, target)) return rule;
  }
  for (const rule of set.wildcard) if (ruleMatches(rule, target)) return rule;
  return null;
}

function ruleMatches(rule: NetworkRule, target: NetworkTarget): boolean {
  switch (target.kind) {
    case 'http':
      return (
        rule.scheme === target.scheme &&
        (rule.methods === null || rule.methods.has(target.method)) &&
        (rule.port === null || rule.port === target.port) &&
        matchHost(rule.host, target.host) &&
        matchGlob(rule.path, target.path)
      );
    case 'socket':
      return (
        TCP_SCHEMES.has(rule.scheme) &&
        (rule.port === null || rule.port === target.port) &&
        matchHost(rule.host, target.host)
      );
    case 'udp':
      return (
        rule.scheme === 'udp' && (rule.port === null || rule.port === target.port) && matchHost(rule.host, target.host)
      );
    case 'dns':
      // A name may be resolved only when some rule could then connect to it.
      return rule.scheme !== 'unix' && matchHost(rule.host, target.host);
    case 'unix':
      return rule.scheme === 'unix' && matchGlob(rule.path, target.path);
  }
}
