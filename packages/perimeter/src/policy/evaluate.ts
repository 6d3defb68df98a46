/**
 * The only place that decides. Interceptors describe what is being attempted as a `NetworkTarget`; this
 * module says whether the policy allows it. The steps are numbered as in docs/policy.md ("How a network
 * decision is made").
 */

import { MapGet, SetHas } from '../pristine.js';
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
    // Index loops, here and below: `for…of` goes through the array iterator, which a dependency can replace to
    // feed the loop an endpoint or a rule of its own making.
    for (let i = 0; i < platform.length; i++) {
      const endpoint = platform[i]!;
      if (endpoint.host === target.host && (target.kind === 'dns' || endpoint.port === target.port)) {
        // Only for the platform's runtime and the app: a dependency on the Runtime API could take the next
        // invocation's event or post a forged response. A dependency falls through to the rules like any target.
        if (onlyPlatformCode(packagesOnStack())) return { allowed: true, by: 'platform' };
        break;
      }
    }
  }
  // Step 2: some rule of the function's policy must allow it.
  const rule = findRule(policy.network, target);
  if (rule === null) return { allowed: false, reason: 'no-rule' };
  // Step 3: every package on the call stack that has rules of its own (or falls under packages["*"]) must allow
  // it too. A package can only narrow what the function may do, never widen it.
  // Reading the stack costs microseconds; matching a few rules costs nanoseconds. Only when some package's
  // rules would deny the target does it matter who is calling.
  if (policy.packageNetworkRules && !everyPackageAllows(policy, target)) {
    const names = packagesOnStack();
    for (let i = 0; i < names.length; i++) {
      const name = names[i]!;
      const own = MapGet(policy.packages, name) ?? policy.anyPackage;
      if (own?.network && findRule(own.network, target) === null) {
        return { allowed: false, reason: 'package-rule', deniedBy: name };
      }
    }
  }
  // Step 4: allowed.
  return { allowed: true, by: rule };
}

/**
 * Runtimes that ship as npm packages and poll the Runtime API themselves (`npx aws-lambda-ric` in a container image).
 * The runtime under LAMBDA_RUNTIME_DIR (/var/runtime) is outside node_modules, so it is attributed like the app.
 */
export const PLATFORM_PACKAGES: readonly string[] = ['aws-lambda-ric'];

/** Whether the packages on a stack are all the platform's own (or there are none: the app, the runtime). */
export function onlyPlatformCode(packages: readonly string[]): boolean {
  for (let i = 0; i < packages.length; i++) {
    let known = false;
    for (let j = 0; j < PLATFORM_PACKAGES.length; j++) if (packages[i] === PLATFORM_PACKAGES[j]) known = true;
    if (!known) return false;
  }
  return true;
}

export function findRule(set: NetworkRuleSet, target: NetworkTarget): NetworkRule | null {
  const exact = MapGet(set.byHost, target.host);
  if (exact) {
    for (let i = 0; i < exact.length; i++) if (ruleMatches(exact[i]!, target)) return exact[i]!;
  }
  const wildcard = set.wildcard;
  for (let i = 0; i < wildcard.length; i++) if (ruleMatches(wildcard[i]!, target)) return wildcard[i]!;
  return null;
}

function ruleMatches(rule: NetworkRule, target: NetworkTarget): boolean {
  switch (target.kind) {
    case 'http':
      return (
        rule.scheme === target.scheme &&
        (rule.methods === null || SetHas(rule.methods, target.method)) &&
        (rule.port === null || rule.port === target.port) &&
        matchHost(rule.host, target.host) &&
        matchGlob(rule.path, target.path)
      );
    case 'socket':
      return (
        SetHas(TCP_SCHEMES, rule.scheme) &&
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

function everyPackageAllows(policy: CompiledPolicy, target: NetworkTarget): boolean {
  const sets = policy.packageNetworkSets;
  for (let i = 0; i < sets.length; i++) if (findRule(sets[i]!, target) === null) return false;
  return true;
}
