/**
 * Child processes. Every asynchronous spawn in Node — `spawn`, `exec`, `execFile`, `fork`, `util.promisify(exec)`
 * (which calls execFile through `exec[util.promisify.custom]`), and `new ChildProcess().spawn()` — ends in
 * `ChildProcess.prototype.spawn` with normalised options, so that one method is judged. The synchronous forms
 * call module-local functions with no shared choke point, so `spawnSync`, `execSync` and `execFileSync` are each
 * wrapped and their arguments normalised here the way Node does it.
 *
 * Arguments, environment and cwd are copied before they are judged and the copies are what the child gets, so a
 * getter or Proxy cannot show the judge one value and the OS another. The program is pinned to the path that was
 * judged (PATH is not searched a second time).
 *
 * Every child carries the guard: `--require <dist/register.js>` goes first in its NODE_OPTIONS and
 * PERIMETER_POLICY points at this process's policy file (an inline policy is written once to a private temp
 * file), whatever env the caller passed — a node child, or a node started later by a shell child, runs under the
 * same policy. `process.unguardedNode: true` turns this off.
 *
 * A denied async spawn fails like a spawn of a missing program: the ChildProcess is returned, nothing runs, and
 * it emits 'error' (ERR_PERIMETER_BLOCKED) on the next tick, then 'close'; exec/execFile call back with the error.
 * `execSync`/`execFileSync` throw it; `spawnSync` returns it as `result.error`, as it does for ENOENT.
 */

import { callerPackages } from '../attribution.js';
import type { PerimeterError } from '../errors.js';
import { activePolicy, failClosed, reportDenial, stopRememberingWritablePaths } from '../guard.js';
import { type CompiledProcess, evaluateProcess, type SpawnRequest } from '../policy/process.js';
import {
  ArrayIsArray,
  fsOpenSync,
  fsWriteSync,
  JSONStringify,
  ObjectDefineProperty,
  ownDirectory,
  pathJoin,
  pathResolve,
  processCwd,
  processEnvRaw,
  ReflectApply,
} from '../pristine.js';
import { guardProperty } from './patch.js';
import {
  fileURLToPathPristine,
  fsCloseSync,
  fsMkdtempSync,
  ObjectKeys,
  startupPerimeterVars,
} from './spawn-captures.js';

const mkdtempSync = fsMkdtempSync;
const closeSync = fsCloseSync;
const REGISTER = pathJoin(ownDirectory, 'register.js');

let inlinePolicyFile: string | null = null;

/** The policy file a child guard loads: the file this process loaded, or the inline policy written out once. */
function policyFileForChildren(): string {
  const policy = activePolicy()!;
  if (policy.file.startsWith('/')) return policy.file;
  if (inlinePolicyFile === null) {
    const dir = mkdtempSync(pathJoin(processEnvRaw.TMPDIR || '/tmp', 'perimeter-policy-'));
    const file = pathJoin(dir, 'perimeter.json');
    const fd = fsOpenSync(file, 'wx', 0o600);
    try {
      fsWriteSync(fd, JSONStringify(policy.document));
    } finally {
      closeSync(fd);
    }
    inlinePolicyFile = file;
  }
  return inlinePolicyFile;
}

function quoteOption(value: string): string {
  return /[\s"\\]/.test(value) ? `"${value.replace(/["\\]/g, '\\$&')}"` : value;
}

/** The variables set on every child so that it runs under this guard and this policy. */
function guardVariables(callerNodeOptions: string | undefined): Array<[string, string]> {
  const preload = `--require ${quoteOption(REGISTER)}`;
  const nodeOptions =
    callerNodeOptions === undefined || callerNodeOptions === ''
      ? preload
      : callerNodeOptions.startsWith(preload)
        ? callerNodeOptions
        : `${preload} ${callerNodeOptions}`;
  return [['NODE_OPTIONS', nodeOptions], ['PERIMETER_POLICY', policyFileForChildren()], ...startupPerimeterVars];
}

function processPolicy(): CompiledProcess | null {
  return activePolicy()?.process ?? null;
}

interface Judged {
  error: PerimeterError | null;
  /** The absolute path that was judged, to run instead of searching PATH again. */
  resolved: string | null;
}

function judge(policy: CompiledProcess, request: SpawnRequest, envNames: () => readonly string[]): Judged {
  // `allow` mode checks nothing; the child still gets the guard (its other capabilities are still checked).
  if (policy.mode === 'allow') return { error: null, resolved: null };
  let packages: readonly string[] | undefined;
  const stack = () => (packages ??= callerPackages());
  try {
    const verdict = evaluateProcess(policy, request, envNames, stack);
    if (verdict.allowed) return { error: null, resolved: verdict.resolved };
    const error = reportDenial(
      policy.mode,
      {
        capability: 'process',
        target: verdict.target,
        reason: verdict.detail ? `${verdict.reason}: ${verdict.detail}` : verdict.reason,
        deniedBy: verdict.deniedBy,
        key: verdict.deniedBy ? `packages.${verdict.deniedBy}.process.allow` : 'process.allow',
        suggestion: verdict.suggestion,
      },
      stack(),
    );
    return { error, resolved: null };
  } catch (cause) {
    return { error: failClosed('process', cause), resolved: null };
  }
}

function toPath(value: unknown): string {
  if (value === undefined || value === null) return processCwd();
  if (typeof value === 'string') return pathResolve(processCwd(), value);
  if (value instanceof URL) return fileURLToPathPristine(value);
  return pathResolve(processCwd(), String(value));
}

// ---------------------------------------------------------------------------------------------------------------
// ChildProcess.prototype.spawn

interface SpawnOptions {
  file: string;
  args?: unknown[];
  envPairs?: unknown[];
  cwd?: unknown;
  [key: string]: unknown;
}

interface ChildLike {
  emit(event: string, ...args: unknown[]): boolean;
  spawnfile?: string;
  spawnargs?: unknown[];
}

function pairsLookup(pairs: readonly string[]): { get: (name: string) => string | undefined; names: () => string[] } {
  const map = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq > 0) map.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  return { get: (name) => map.get(name), names: () => [...map.keys()] };
}

function spawnWrapper(original: Function) {
  return function spawn(this: ChildLike, options: SpawnOptions) {
    // A child changes the file system where the fs guard cannot see it, and may leave a grandchild behind that
    // goes on doing so: remembered reads of writable paths stop for good (policy/fs.ts, "The hot path").
    stopRememberingWritablePaths();
    const policy = processPolicy();
    if (policy === null || options === null || typeof options !== 'object' || typeof options.file !== 'string') {
      return ReflectApply(original, this, [options]);
    }
    let judged: Judged;
    let copy: SpawnOptions;
    try {
      const args = ArrayIsArray(options.args) ? [...options.args].map(String) : [];
      const pairs = ArrayIsArray(options.envPairs) ? [...options.envPairs].map(String) : [];
      const env = pairsLookup(pairs);
      const cwd = toPath(options.cwd);
      copy = { ...options, args, envPairs: pairs, cwd: options.cwd === undefined ? undefined : cwd };
      judged = judge(policy, { file: options.file, args: args.slice(1), env: env.get, cwd }, env.names);
      if (judged.error === null && !policy.unguardedNode) {
        const vars = guardVariables(env.get('NODE_OPTIONS'));
        const names = new Set(vars.map(([name]) => name));
        copy.envPairs = [
          ...pairs.filter((p) => !names.has(p.slice(0, p.indexOf('=')))),
          ...vars.map(([n, v]) => `${n}=${v}`),
        ];
      }
    } catch (cause) {
      judged = { error: failClosed('process', cause), resolved: null };
      copy = options;
    }
    if (judged.error) return failSpawn(this, original, options, judged.error);
    if (judged.resolved !== null) copy.file = judged.resolved;
    const result = ReflectApply(original, this, [copy]);
    this.spawnfile = options.file;
    return result;
  };
}

/**
 * Makes `child` fail the way a spawn of a program that cannot be executed does — same events, same stdio
 * objects, same exit code path — without running anything: Node is asked to spawn `/` (a directory, so exec
 * fails with EACCES in the forked child before any program is loaded), and that error is replaced by ours.
 */
function failSpawn(child: ChildLike, original: Function, options: SpawnOptions, error: PerimeterError): unknown {
  const decoy: SpawnOptions = {
    ...options,
    file: '/',
    args: ['/'],
    envPairs: [],
    cwd: undefined,
    detached: false,
    uid: undefined,
    gid: undefined,
  };
  const emit = child.emit;
  ObjectDefineProperty(child, 'emit', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function emitBlocked(this: ChildLike, event: string, ...rest: unknown[]) {
      if (event === 'error') {
        delete (child as { emit?: unknown }).emit;
        return ReflectApply(emit, this, ['error', error]);
      }
      return ReflectApply(emit, this, [event, ...rest]);
    },
  });
  let result: unknown;
  try {
    result = ReflectApply(original, child, [decoy]);
  } finally {
    child.spawnfile = options.file;
    child.spawnargs = ArrayIsArray(options.args) ? options.args : [];
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// spawnSync, execSync, execFileSync

type SyncKind = 'spawnSync' | 'execSync' | 'execFileSync';

interface SyncCall {
  /** Arguments to call the original with (options replaced by the judged copy). */
  callArgs: unknown[];
  request: SpawnRequest;
  envNames: () => string[];
  options: Record<string, unknown>;
  env: Record<string, string>;
  shell: boolean;
}

function normalizeSync(kind: SyncKind, input: unknown[]): SyncCall | null {
  let file = input[0];
  let args: unknown[] = [];
  let options: Record<string, unknown> | undefined;
  if (kind === 'execSync') {
    options = input[1] as Record<string, unknown> | undefined;
  } else if (ArrayIsArray(input[1])) {
    args = [...input[1]];
    options = input[2] as Record<string, unknown> | undefined;
  } else if (input[1] !== null && typeof input[1] === 'object') {
    options = input[1] as Record<string, unknown>;
  } else {
    options = input[2] as Record<string, unknown> | undefined;
  }
  if (typeof file !== 'string') return null;
  const copied: Record<string, unknown> = options !== null && typeof options === 'object' ? { ...options } : {};
  let shell = copied.shell as unknown;
  if (kind === 'execSync' && !shell) shell = true;
  const stringArgs = args.map(String);
  let programArgs = stringArgs;
  if (shell) {
    const command = [file, ...stringArgs].join(' ');
    file = typeof shell === 'string' ? shell : '/bin/sh';
    programArgs = ['-c', command];
  }
  const source = (copied.env ?? process.env) as Record<string, unknown>;
  const env: Record<string, string> = {};
  for (const key of ObjectKeys(source)) {
    const value = source[key];
    if (value !== undefined) env[key] = String(value);
  }
  const cwd = toPath(copied.cwd);
  if (copied.cwd !== undefined) copied.cwd = cwd;
  copied.env = env;
  const request: SpawnRequest = {
    file: file as string,
    args: programArgs,
    env: (name) => (Object.hasOwn(env, name) ? env[name] : undefined),
    cwd,
  };
  const callArgs = kind === 'execSync' ? [input[0], copied] : [input[0], stringArgs, copied];
  return { callArgs, request, envNames: () => ObjectKeys(env), options: copied, env, shell: Boolean(shell) };
}

function syncWrapper(kind: SyncKind, original: Function) {
  return function (this: unknown, ...input: unknown[]) {
    stopRememberingWritablePaths();
    const policy = processPolicy();
    if (policy === null) return ReflectApply(original, this, input);
    let call: SyncCall | null;
    let judged: Judged;
    try {
      call = normalizeSync(kind, input);
      if (call === null) return ReflectApply(original, this, input); // Node rejects a non-string program itself
      judged = judge(policy, call.request, call.envNames);
      if (judged.error === null && !policy.unguardedNode) {
        for (const [name, value] of guardVariables(call.env.NODE_OPTIONS)) call.env[name] = value;
      }
    } catch (cause) {
      judged = { error: failClosed('process', cause), resolved: null };
      call = null;
    }
    if (judged.error || call === null) {
      const error = judged.error ?? failClosed('process', new Error('unreadable spawn arguments'));
      if (kind === 'spawnSync') {
        return { error, pid: 0, output: null, stdout: null, stderr: null, status: null, signal: null };
      }
      throw error;
    }
    if (judged.resolved !== null && !call.shell && kind !== 'execSync') {
      // Run exactly what was judged; argv[0] stays what the caller asked for.
      if (call.options.argv0 === undefined) call.options.argv0 = call.callArgs[0];
      call.callArgs[0] = judged.resolved;
    } else if (judged.resolved !== null && call.shell) {
      call.options.shell = judged.resolved;
    }
    return ReflectApply(original, this, call.callArgs);
  };
}

let patched = false;

export function patchChildProcess(cp: typeof import('node:child_process')): void {
  if (patched) return;
  patched = true;
  guardProperty(cp.ChildProcess.prototype, 'spawn', spawnWrapper);
  for (const kind of ['spawnSync', 'execSync', 'execFileSync'] as const) {
    guardProperty(cp, kind, (original) => syncWrapper(kind, original));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// process.execve

/**
 * `process.execve(file, args, env)` (Node >= 23.11) replaces this process with `file`: a spawn whose parent goes
 * away. It is judged exactly like `spawnSync(file, args.slice(1), { env })`: the same process rules, shells judged
 * by what they run, the same env handling (default: this process's filtered `process.env`), and a node program
 * carries the guard in its NODE_OPTIONS. execve(2) does not search PATH, so a relative `file` is made absolute
 * against the current directory before it is judged, and the path judged is the path run. Returns the arguments
 * to call Node with, or the error to throw (a denial throws, as Node does for arguments it refuses).
 */
export function judgeExecve(input: unknown[]): { error: PerimeterError | null; callArgs: unknown[] } {
  const policy = processPolicy();
  if (policy === null) return { error: null, callArgs: input };
  try {
    const file = input[0];
    const given = input[1];
    // Node validates these itself and throws before anything runs.
    if (typeof file !== 'string' || (given !== undefined && !ArrayIsArray(given)))
      return { error: null, callArgs: input };
    const args = given === undefined ? [] : [...(given as unknown[])].map(String);
    const requested = input[2];
    const source = (requested !== undefined && requested !== null ? requested : process.env) as Record<string, unknown>;
    const env: Record<string, string> = {};
    for (const key of ObjectKeys(source)) {
      const value = source[key];
      if (value !== undefined) env[key] = String(value);
    }
    const cwd = processCwd();
    const absolute = pathResolve(cwd, file);
    const request: SpawnRequest = {
      file: absolute,
      args: args.slice(1),
      env: (name) => (Object.hasOwn(env, name) ? env[name] : undefined),
      cwd,
    };
    const judged = judge(policy, request, () => ObjectKeys(env));
    if (judged.error) return { error: judged.error, callArgs: input };
    if (!policy.unguardedNode) for (const [name, value] of guardVariables(env.NODE_OPTIONS)) env[name] = value;
    return { error: null, callArgs: [judged.resolved ?? absolute, args, env] };
  } catch (cause) {
    return { error: failClosed('process', cause), callArgs: input };
  }
}
