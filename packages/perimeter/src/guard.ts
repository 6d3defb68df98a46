/**
 * The guard's state and the one function interceptors call to ask for a decision. Interceptors only describe
 * and report; `checkNetwork` asks policy/evaluate.ts and turns the verdict into an event and, in block mode,
 * an error for the interceptor to fail with.
 */
import { APP, type CapturedStack, callerPackages, captureCallers, packagesOf, UNKNOWN } from './attribution.js';
import { isPerimeterError, type PerimeterError, perimeterError } from './errors.js';
import { emit } from './events.js';
import type { CompiledPolicy, Mode } from './policy/compile.js';
import { evaluateNetwork, type NetworkTarget, type PlatformEndpoint } from './policy/evaluate.js';
import { decideFs, type FsAccess } from './policy/fs.js';
import { hostForUrl, isMetadataOrUnspecified, normalizeHost } from './policy/host.js';
import { DEFAULT_PORT } from './policy/pattern.js';
import { DateNow, MapHas, SafeMap, SafeSet, SetAdd, SetHas } from './pristine.js';
import { redact } from './redact.js';
import { scopePolicies } from './scope.js';
import { maybeVerifyIntegrity } from './tamper.js';

// Re-exported for the process-guard chunk, which shares guard.js with the main bundle: one memory to turn off.
export { stopRememberingWritablePaths } from './policy/fs.js';

interface GuardState {
  policy: CompiledPolicy;
  platform: PlatformEndpoint[];
}

let state: GuardState | null = null;

export function activePolicy(): CompiledPolicy | null {
  return state?.policy ?? null;
}

export function setActivePolicy(policy: CompiledPolicy, env: Record<string, string | undefined>): void {
  state = { policy, platform: platformEndpoints(env) };
}

/**
 * The platform's own endpoints. On AWS Lambda the runtime interface client polls `AWS_LAMBDA_RUNTIME_API`
 * (host:port) for invocations; blocking it would stop the function from ever receiving an event.
 * `PERIMETER_PLATFORM_ENDPOINTS` (comma-separated host:port) replaces the detected list.
 */
export function platformEndpoints(env: Record<string, string | undefined>): PlatformEndpoint[] {
  const list = env.PERIMETER_PLATFORM_ENDPOINTS ?? env.AWS_LAMBDA_RUNTIME_API ?? '';
  const endpoints: PlatformEndpoint[] = [];
  for (const entry of list.split(',')) {
    const trimmed = entry.trim();
    const colon = trimmed.lastIndexOf(':');
    if (colon <= 0) continue;
    const host = normalizeHost(trimmed.slice(0, colon));
    const port = Number(trimmed.slice(colon + 1));
    if (host && Number.isInteger(port)) endpoints.push({ host, port });
  }
  return endpoints;
}

/** How a target reads in an event: `POST https://api.stripe.com/v1/charges`, `tcp://10.0.0.1:5432`, … */
export function describeTarget(target: NetworkTarget, query = ''): string {
  if (target.kind === 'unix') return `unix:${target.path}`;
  const host = hostForUrl(target.host);
  if (target.kind === 'dns') return `dns:${host}`;
  const port = DEFAULT_PORT[target.scheme] === target.port ? '' : `:${target.port}`;
  if (target.kind === 'http') return `${target.method} ${target.scheme}://${host}${port}${target.path}${query}`;
  return `${target.scheme}://${host}:${target.port}`;
}

/** The pattern a user would add to allow this target: the hint in every blocked error. */
function suggestedPattern(target: NetworkTarget): string {
  const described = describeTarget(target);
  if (target.kind === 'dns') return `https://${hostForUrl(target.host)}`;
  return described;
}

export type Capability = 'network' | 'fs' | 'process' | 'env' | 'worker' | 'addon' | (string & {});

/** What an evaluator found wrong with an operation, in the terms an event and an error need. */
export interface Denial {
  capability: Capability;
  /** How the target reads in the event and the error (secrets are scrubbed later). */
  target: string;
  /** `no-rule`, `package-rule`, `default-deny`, … */
  reason: string;
  /** The package whose own rules denied it, when one did. */
  deniedBy?: string | undefined;
  /** The policy key a user would edit, e.g. `fs.read` or `packages.stripe.env.allow`. */
  key: string;
  /** The entry that would allow it, for the hint. */
  suggestion: string;
  /** More on why, for the event (redacted like the target). */
  detail?: string | undefined;
}

/**
 * Reports a denial and returns the error the interceptor must fail with, or null in alert mode (the
 * operation goes ahead, the event says `alerted`). Every capability goes through here.
 */
export function reportDenial(mode: Mode, denial: Denial, packages: readonly string[]): PerimeterError | null {
  const culprit = denial.deniedBy ?? packages[0] ?? APP;
  emit({
    type: 'violation',
    capability: denial.capability,
    action: mode === 'block' ? 'blocked' : 'alerted',
    target: denial.target,
    package: culprit,
    packages: packages.length > 0 ? [...packages] : undefined,
    reason: denial.reason,
    deniedBy: denial.deniedBy,
    detail: denial.detail,
  });
  if (mode === 'alert') reportDrift(denial, culprit);
  if (mode !== 'block') return null;
  const target = redact(denial.target);
  return perimeterError('ERR_PERIMETER_BLOCKED', `Perimeter blocked ${denial.capability} ${target}`, {
    capability: denial.capability,
    target,
    package: culprit,
    file: state?.policy.file,
    key: denial.key,
    hint: `if this is expected, add "${redact(denial.suggestion)}" to ${denial.key}`,
  });
}

/**
 * In alert mode the policy is being learned or watched: the first time a package does something the policy
 * does not allow, a `drift` event says so once for the life of the process (violations themselves repeat every
 * dedup window). Bounded: past the limit, violations still tell the story.
 */
const driftSeen = new SafeSet<string>();
const DRIFT_LIMIT = 2000;

function reportDrift(denial: Denial, culprit: string): void {
  const key = `${denial.capability}\u0000${culprit}\u0000${denial.target}`;
  if (SetHas(driftSeen, key) || driftSeen.size >= DRIFT_LIMIT) return;
  SetAdd(driftSeen, key);
  emit({
    type: 'drift',
    capability: denial.capability,
    action: 'alerted',
    target: denial.target,
    package: culprit,
    reason: 'first-occurrence',
    detail: `first time ${culprit === APP ? 'the function' : culprit} did this; the policy does not allow it`,
  });
}

/** An evaluator threw: deny (fail closed) and say so. Never lets the operation through. */
export function failClosed(capability: Capability, cause: unknown): PerimeterError {
  if (isPerimeterError(cause)) return cause;
  emit({
    type: 'violation',
    capability,
    action: 'blocked',
    target: 'unknown',
    package: APP,
    reason: 'internal-error',
    detail: String((cause as Error)?.message ?? cause),
  });
  return perimeterError('ERR_PERIMETER_INTERNAL', 'Perimeter could not decide; the operation was denied', {
    capability,
    cause,
  });
}

/**
 * Whether a rule of the function's policy allows the target whoever calls: no platform allowance (that one
 * depends on the caller), no package rule that could deny it. Such an answer may be remembered.
 */
export function allowedForAnyCaller(target: NetworkTarget): boolean {
  const current = state;
  if (current === null || current.policy.network.mode === 'allow') return false;
  try {
    return evaluateNetwork(current.policy, target, current.platform, () => [UNKNOWN]).allowed;
  } catch {
    return false;
  }
}

/** Whether the policy would allow a target, without reporting anything (for cross-checks such as resolver answers). */
export function wouldAllow(target: NetworkTarget): boolean {
  const current = state;
  if (current === null) return true;
  const narrower = scopePolicies();
  try {
    if (current.policy.network.mode !== 'allow') {
      if (!evaluateNetwork(current.policy, target, current.platform, () => []).allowed) return false;
    }
    if (narrower === undefined) return true;
    for (let i = 0; i < narrower.length; i++) {
      const policy = narrower[i]!;
      if (policy.document.network === undefined || policy.network.mode === 'allow') continue;
      if (!evaluateNetwork(policy, target, current.platform, () => []).allowed) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Decides a network operation. Returns null when it may proceed (allowed, or alert mode), or the error the
 * interceptor must fail with. Any internal failure denies (fail closed) and is reported.
 */
export function checkNetwork(
  target: NetworkTarget,
  query = '',
  packagesHint?: readonly string[],
  seen?: { packages?: readonly string[] },
): PerimeterError | null {
  const current = state;
  if (current === null) return null;
  maybeVerifyIntegrity();
  const mode = current.policy.network.mode;
  const narrower = scopePolicies();
  if (mode === 'allow' && narrower === undefined) return null;
  let packages: readonly string[] | undefined = packagesHint;
  const stack = () => (packages ??= callerPackages());
  try {
    const verdict =
      mode === 'allow' ? ALLOWED_BY_MODE : evaluateNetwork(current.policy, target, current.platform, stack);
    if (verdict.allowed) {
      return narrower === undefined ? null : checkNarrowerNetwork(narrower, target, query, current.platform, stack);
    }
    if (mode === 'alert' && alertedAtRequestLevel(target)) return null;
    return reportDenial(
      mode,
      {
        capability: 'network',
        target: describeTarget(target, query),
        reason: verdict.reason,
        deniedBy: verdict.deniedBy,
        key: verdict.deniedBy ? `packages.${verdict.deniedBy}.network.allow` : 'network.allow',
        suggestion: suggestedPattern(target),
      },
      stack(),
    );
  } catch (cause) {
    return failClosed('network', cause);
  } finally {
    // The callers, when the decision had to read them: a fetch reuses them for its redirect hops.
    if (seen !== undefined && packages !== undefined) seen.packages = packages;
  }
}

const ALLOWED_BY_MODE = { allowed: true } as const;

/**
 * Judges what a DNS name resolved to, just before a socket connects to it. The name itself was allowed, but an
 * answer in the metadata or "this host" ranges (policy/host.ts isMetadataOrUnspecified) is denied unless a rule of
 * the function (or of a package) names that very address, or it is a platform endpoint: a wildcard rule such as
 * `https://**` must not carry a request to the credentials endpoint through `169.254.169.254.nip.io` or a
 * rebinding name. `packages` are the callers captured when the connection was started (the answer arrives on a
 * resolver callback, with nobody on the stack).
 */
export function checkResolvedAddress(
  target: NetworkTarget,
  name: string,
  address: string,
  packages: () => readonly string[],
): PerimeterError | null {
  const current = state;
  if (current === null) return null;
  const host = normalizeHost(address) ?? address;
  if (!isMetadataOrUnspecified(host)) return null;
  const mode = current.policy.network.mode;
  if (mode === 'allow') return null;
  try {
    if (namesAddress(current.policy, current.platform, host)) return null;
    const resolved: NetworkTarget = { ...target, host };
    return reportDenial(
      mode,
      {
        capability: 'network',
        target: describeTarget(resolved),
        reason: 'resolved-to-internal',
        key: 'network.allow',
        suggestion: describeTarget(resolved),
        detail: `${name} resolved to ${host} (cloud metadata or this host); only a rule naming ${host} allows it`,
      },
      packages(),
    );
  } catch (cause) {
    return failClosed('network', cause);
  }
}

function namesAddress(policy: CompiledPolicy, platform: readonly PlatformEndpoint[], host: string): boolean {
  // A replaced Map iterator could only hide allowances, never add one: this fails towards denying.
  if (MapHas(policy.network.byHost, host)) return true;
  for (let i = 0; i < platform.length; i++) if (platform[i]!.host === host) return true;
  for (const pkg of policy.packages.values()) if (pkg.network !== null && MapHas(pkg.network.byHost, host)) return true;
  return false;
}

/**
 * In alert mode a request that was reported at the HTTP level goes ahead and then meets the DNS and socket
 * layers, which would report the same destination again (and, for fetch, without the caller on the stack).
 * One report per request is what a reader and `learn` want: hosts alerted at the request level are remembered
 * briefly and their lower-level alerts are left out. Block mode never gets there.
 */
const requestLevelAlerts = new SafeMap<string, number>();
const REQUEST_ALERT_MEMORY_MS = 60_000;

function alertedAtRequestLevel(target: NetworkTarget): boolean {
  const now = DateNow();
  if (target.kind === 'http') {
    if (requestLevelAlerts.size > 1000) requestLevelAlerts.clear();
    requestLevelAlerts.set(target.host, now);
    return false;
  }
  if (target.kind !== 'socket' && target.kind !== 'dns') return false;
  const at = requestLevelAlerts.get(target.host);
  return at !== undefined && now - at < REQUEST_ALERT_MEMORY_MS;
}

/**
 * The policies a `withPolicy` scope added (scope.ts): each must allow what the function policy allowed. A policy
 * without a `network` section narrows nothing here; its own network mode decides block or alert.
 */
function checkNarrowerNetwork(
  narrower: readonly CompiledPolicy[],
  target: NetworkTarget,
  query: string,
  platform: readonly PlatformEndpoint[],
  stack: () => readonly string[],
): PerimeterError | null {
  for (let i = 0; i < narrower.length; i++) {
    const policy = narrower[i]!;
    if (policy.document.network === undefined || policy.network.mode === 'allow') continue;
    const verdict = evaluateNetwork(policy, target, platform, stack);
    if (verdict.allowed) continue;
    const error = reportDenial(
      policy.network.mode,
      {
        capability: 'network',
        target: describeTarget(target, query),
        reason: verdict.reason === 'no-rule' ? 'scope-policy' : verdict.reason,
        deniedBy: verdict.deniedBy,
        key: verdict.deniedBy ? `withPolicy packages.${verdict.deniedBy}.network.allow` : 'withPolicy network.allow',
        suggestion: suggestedPattern(target),
      },
      stack(),
    );
    // An alerting narrower only reports; an outer or inner one may still block.
    if (error !== null) return error;
  }
  return null;
}

/**
 * Decides one file system access to `path` (a string the caller has already taken from a Buffer or file: URL).
 * `follow` is false for operations on the directory entry itself (lstat, unlink, rename…). Returns null when
 * it may proceed, or the error the interceptor must fail with; an internal failure denies.
 */
export function checkFs(access: FsAccess, path: string, follow = true): PerimeterError | null {
  let packages: readonly string[] | undefined;
  return judgeFs(access, path, follow, () => (packages ??= callerPackages()));
}

/** The real path the last checkFs/checkFsOpened judged, or null when nothing was judged (no policy, mode allow). */
let lastFsReal: string | null = null;

export function lastJudgedFsPath(): string | null {
  return lastFsReal;
}

/**
 * The callers of an fs call that will be judged again later, off their stack (the file it opened, on the thread
 * pool): captured only when a package rule can make the decision depend on them. Null: judged later as
 * `<unknown>`, which then only names the culprit in the event.
 */
export function fsCallersForLater(): CapturedStack | null {
  const current = state;
  if (current === null || !current.policy.fs.packageRules) return null;
  return captureCallers();
}

/** checkFs for a path judged after the call returned (what an asynchronous open really opened). */
export function checkFsOpened(access: FsAccess, path: string, callers: CapturedStack | null): PerimeterError | null {
  let packages: readonly string[] | undefined;
  return judgeFs(access, path, true, () => (packages ??= callers === null ? [UNKNOWN] : packagesOf(callers)));
}

function judgeFs(
  access: FsAccess,
  path: string,
  follow: boolean,
  stack: () => readonly string[],
): PerimeterError | null {
  lastFsReal = null;
  const current = state;
  if (current === null) return null;
  const policy = current.policy.fs;
  if (policy.mode === 'allow') return null;
  try {
    const { verdict, real } = decideFs(policy, access, path, follow, stack);
    lastFsReal = real;
    if (verdict.allowed) return null;
    return reportDenial(
      policy.mode,
      {
        capability: 'fs',
        target: `${access} ${real}`,
        reason: verdict.reason,
        deniedBy: verdict.deniedBy,
        key: verdict.deniedBy ? `packages.${verdict.deniedBy}.fs.${access}` : `fs.${access}`,
        suggestion: real,
      },
      stack(),
    );
  } catch (cause) {
    return failClosed('fs', cause);
  }
}
