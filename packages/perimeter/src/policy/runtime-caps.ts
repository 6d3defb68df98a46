/**
 * Decisions for the capabilities that hand out the whole runtime rather than one resource: worker threads,
 * native addons and Node's raw internal bindings. Each step is numbered as in docs/policy.md ("Workers, native
 * addons and internals").
 *
 * - `worker`: `{ "mode", "allow": true }`. A worker is a second JavaScript thread with the same powers as the
 *   function, so it is all-or-nothing; an allowed worker runs under the same policy (intercept/worker.ts).
 * - `addon`: `{ "mode", "allow": [globs of .node files] }`. A native addon is machine code: once loaded, no
 *   JavaScript guard can see what it does, so the decision is which files may be loaded at all.
 * - raw bindings (`process.binding('tcp_wrap')`, …) give the operations every other capability guards without
 *   the public functions we intercept. They cannot be judged per target, so a binding is allowed only when the
 *   capability it bypasses is not checked at all (mode `allow`).
 */
import { ArrayPush, pathDirname, pathResolve, StringStartsWith, splitString } from '../pristine.js';
import type { Mode, PolicyDocument } from './compile.js';
import { compileGlob, type GlobMatcher, matchGlob } from './glob.js';

export interface CompiledWorkerRules {
  mode: Mode;
  allow: boolean;
}

export interface CompiledAddonRules {
  mode: Mode;
  patterns: readonly string[];
  allow: readonly GlobMatcher[];
}

export function compileWorkerRules(document: PolicyDocument, mode: Mode): CompiledWorkerRules {
  return { mode: document.worker?.mode ?? mode, allow: document.worker?.allow === true };
}

/** Relative globs are read from the policy file's folder (the function's folder for an inline policy). */
export function compileAddonRules(document: PolicyDocument, mode: Mode, file: string): CompiledAddonRules {
  const base = file === '<inline>' ? process.cwd() : pathDirname(file);
  const patterns = (document.addon?.allow ?? []).map((p) =>
    StringStartsWith(p, '/') || StringStartsWith(p, '**') ? p : pathResolve(base, p),
  );
  return { mode: document.addon?.mode ?? mode, patterns, allow: patterns.map(compileGlob) };
}

export type RuntimeVerdict = { allowed: true } | { allowed: false; reason: string };

export function evaluateWorker(rules: CompiledWorkerRules): RuntimeVerdict {
  // Step 1: mode allow, or `worker.allow: true`, lets workers start.
  if (rules.mode === 'allow' || rules.allow) return { allowed: true };
  // Step 2: anything else is denied (workers are off by default).
  return { allowed: false, reason: 'workers-not-allowed' };
}

/** `file` is the real path of the .node file (symlinks resolved), judged before it is opened. */
export function evaluateAddon(rules: CompiledAddonRules, file: string): RuntimeVerdict {
  // Step 1: mode allow loads any addon.
  if (rules.mode === 'allow') return { allowed: true };
  // Step 2: some glob of addon.allow must match the real path.
  const globs = rules.allow;
  for (let i = 0; i < globs.length; i++) if (matchGlob(globs[i]!, file)) return { allowed: true };
  // Step 3: anything else is denied.
  return { allowed: false, reason: 'no-rule' };
}

/**
 * The raw bindings that perform I/O on their own, and the capability each one bypasses. Measured on Node 20,
 * 22, 24 and 26: every name here is reachable through `process.binding` on all four (the others it offers —
 * buffer, constants, os, util, zlib, … — do no I/O). `inspector` is here because a session on the inspector can
 * pause Node's internals and evaluate code where `internalBinding` is in scope.
 */
const RAW_BINDINGS: Record<string, 'network' | 'fs' | 'process' | 'internals'> = {
  // A null prototype: the lookup below must not be answerable by `Object.prototype` (which a dependency controls).
  __proto__: null as any,
  tcp_wrap: 'network',
  udp_wrap: 'network',
  pipe_wrap: 'network',
  tls_wrap: 'network',
  stream_wrap: 'network',
  js_stream: 'network',
  js_udp_wrap: 'network',
  cares_wrap: 'network',
  tty_wrap: 'fs',
  fs: 'fs',
  fs_dir: 'fs',
  fs_event_wrap: 'fs',
  spawn_sync: 'process',
  process_wrap: 'process',
  inspector: 'internals',
  worker: 'internals',
};

/** The capability a raw binding bypasses, or null for bindings that do no I/O. */
export function rawBindingCapability(name: string): 'network' | 'fs' | 'process' | 'internals' | null {
  return RAW_BINDINGS[name] ?? null;
}

/** The mode that applies to a raw binding: the mode of the capability it bypasses. */
export function rawBindingMode(document: PolicyDocument, mode: Mode, capability: string): Mode {
  const section = (document as Record<string, { mode?: Mode } | undefined>)[capability];
  return section?.mode ?? mode;
}

const FORBIDDEN_WORKER_FLAGS: Record<string, true> = {
  __proto__: null as any,
  '--expose-internals': true,
  '--expose_internals': true,
  '--allow-natives-syntax': true,
  '--allow_natives_syntax': true,
};

/** Worker flags that hand the worker's code Node's internals (`--expose-internals` → internalBinding). */
export function forbiddenWorkerFlags(execArgv: readonly unknown[]): string[] {
  const found: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i];
    if (typeof arg !== 'string') continue;
    if (FORBIDDEN_WORKER_FLAGS[splitString(arg, '=')[0]!] === true) ArrayPush(found, arg);
  }
  return found;
}
