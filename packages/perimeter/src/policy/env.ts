/**
 * Environment variables: compiling `env.allow` and deciding whether a name may be read. The steps are numbered as
 * in docs/policy.md ("How an environment decision is made").
 *
 * The answer for a name never changes while the policy is in force, except for package rules, which depend on
 * who is asking. So each name is classified once — readable by everyone, readable by the function but not by
 * every package, or not readable — and only the middle class needs the call stack. A read of an allowed name
 * costs one property lookup in a null-prototype cache on top of the Proxy itself.
 */

import type { Mode, PolicyDocument } from './compile.js';
import { matchSegment } from './glob.js';

/**
 * Non-secret platform variables every piece of code may read: Node's own settings (which Node reads through
 * `process.env` at run time), locale and paths, and the identity of the function on each platform. Credentials
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) are deliberately not here.
 */
export const BASELINE_NAMES: readonly string[] = [
  'PATH',
  'HOME',
  'PWD',
  'USER',
  'LOGNAME',
  'SHELL',
  'HOSTNAME',
  'TMPDIR',
  'TMP',
  'TEMP',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TERM',
  'COLORTERM',
  'NO_COLOR',
  'FORCE_COLOR',
  'NODE_ENV',
  'NODE_OPTIONS',
  'NODE_DEBUG',
  'NODE_DEBUG_NATIVE',
  'NODE_DISABLE_COLORS',
  'NODE_NO_WARNINGS',
  'NODE_PATH',
  'NODE_EXTRA_CA_CERTS',
  'NODE_TLS_REJECT_UNAUTHORIZED',
  'NODE_CHANNEL_FD',
  'NODE_CHANNEL_SERIALIZATION_MODE',
  'NODE_UNIQUE_ID',
  'NODE_V8_COVERAGE',
  'NODE_TEST_CONTEXT',
  'NODE_COMPILE_CACHE',
  'NODE_PENDING_DEPRECATION',
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_EXECUTION_ENV',
  'AWS_LAMBDA_FUNCTION_NAME',
  'AWS_LAMBDA_FUNCTION_VERSION',
  'AWS_LAMBDA_FUNCTION_MEMORY_SIZE',
  'AWS_LAMBDA_LOG_GROUP_NAME',
  'AWS_LAMBDA_LOG_STREAM_NAME',
  'AWS_LAMBDA_RUNTIME_API',
  'AWS_LAMBDA_INITIALIZATION_TYPE',
  'AWS_LAMBDA_LOG_FORMAT',
  'AWS_LAMBDA_LOG_LEVEL',
  'AWS_XRAY_CONTEXT_MISSING',
  'AWS_XRAY_DAEMON_ADDRESS',
  'LAMBDA_TASK_ROOT',
  'LAMBDA_RUNTIME_DIR',
  '_HANDLER',
  '_X_AMZN_TRACE_ID',
  'NETLIFY',
  'NETLIFY_DEV',
  'K_SERVICE',
  'K_REVISION',
  'K_CONFIGURATION',
  'FUNCTION_TARGET',
  'FUNCTION_SIGNATURE_TYPE',
  'FUNCTION_NAME',
  'FUNCTION_REGION',
  'PORT',
];
export const BASELINE_PREFIXES: readonly string[] = ['LC_', 'PERIMETER_'];

interface NameSet {
  exact: ReadonlySet<string>;
  globs: readonly string[];
}

export interface CompiledEnv {
  mode: Mode;
  allow: NameSet;
  packages: ReadonlyMap<string, NameSet>;
  anyPackage: NameSet | null;
  packageRules: boolean;
}

function compileNames(patterns: readonly string[]): NameSet {
  const exact = new Set<string>();
  const globs: string[] = [];
  for (const pattern of patterns) {
    if (pattern.includes('*')) globs.push(pattern);
    else exact.add(pattern);
  }
  return { exact, globs };
}

export function compileEnv(document: PolicyDocument, mode: Mode): CompiledEnv {
  const packages = new Map<string, NameSet>();
  let anyPackage: NameSet | null = null;
  for (const [name, pkg] of Object.entries(document.packages ?? {})) {
    const allow = pkg.env?.allow;
    if (!allow) continue;
    if (name === '*') anyPackage = compileNames(allow);
    else packages.set(name, compileNames(allow));
  }
  return {
    mode: document.env?.mode ?? mode,
    allow: compileNames(document.env?.allow ?? []),
    packages,
    anyPackage,
    packageRules: packages.size > 0 || anyPackage !== null,
  };
}

function inSet(set: NameSet, name: string): boolean {
  if (set.exact.has(name)) return true;
  for (const glob of set.globs) if (matchSegment(glob, name)) return true;
  return false;
}

export function isBaseline(name: string): boolean {
  if (BASELINE_NAMES.includes(name)) return true;
  for (const prefix of BASELINE_PREFIXES) if (name.startsWith(prefix)) return true;
  return false;
}

/** Everyone may read it. */
export const READABLE = 0;
/** The function may read it, some package rules do not allow it: ask the stack. */
export const NARROWED = 1;
/** The function's rules do not allow it. */
export const DENIED = 2;
export type NameClass = typeof READABLE | typeof NARROWED | typeof DENIED;

/** Steps 1-2: the baseline, then the function's `env.allow` (and names code created after the guard started). */
export function classifyName(policy: CompiledEnv, name: string, createdAfterStart: boolean): NameClass {
  // Step 1: the baseline of non-secret platform variables is readable by all code.
  if (isBaseline(name)) return READABLE;
  // Step 2: the function's own rules. A variable that code set after the guard started holds a value that came
  // from code, not from the platform: it is not a platform secret, so the function-level list does not hide it.
  if (!createdAfterStart && !inSet(policy.allow, name)) return DENIED;
  if (!policy.packageRules) return READABLE;
  for (const set of policy.packages.values()) if (!inSet(set, name)) return NARROWED;
  if (policy.anyPackage && !inSet(policy.anyPackage, name)) return NARROWED;
  return READABLE;
}

/**
 * Step 3: every package on the stack with env rules of its own (or under `packages["*"]`) must allow the name.
 * Returns the package that does not, or null.
 */
export function packageDenying(policy: CompiledEnv, name: string, packagesOnStack: readonly string[]): string | null {
  for (const pkg of packagesOnStack) {
    const own = policy.packages.get(pkg) ?? policy.anyPackage;
    if (own && !inSet(own, name)) return pkg;
  }
  return null;
}
