/**
 * The part of child-process policy that runs when the policy loads: compiling `process.allow` (a rule's program
 * is resolved now, so a typo shows at start) and resolving programs the way the OS does. It is in the main
 * bundle; deciding a spawn (policy/process.ts, with the shell parser) is in the process-guard chunk, loaded when
 * child_process is first handed to user code. The file-system functions are captured here, at start, because the
 * chunk loads after the fs guard has wrapped them and after dependencies ran.
 */
import { getBuiltinModule, pathResolve, processEnvRaw } from '../pristine.js';
import type { Mode, PolicyDocument } from './compile.js';

// Captured when the guard loads, before the fs guard wraps them: resolving a program must not be judged as a
// read, and a dependency must not be able to answer for the file system.
const fs = getBuiltinModule('fs') as typeof import('node:fs');
const statSync = fs.statSync;
const accessSync = fs.accessSync;
// realpath(3): one system call, where the JS realpath walks every component.
const realpathNative = fs.realpathSync.native;
const X_OK = fs.constants.X_OK;

export interface ExecRule {
  /** The entry as written, for events and hints. */
  source: string;
  /** `process.allow[2]` */
  key: string;
  /** What the entry names: an absolute path or a bare name. */
  command: string;
  /** The real path of the program it names, once known. */
  real: string | null;
  /** Per-argument globs; null = any arguments. (A list of alternatives, for rules that may grow them.) */
  args: ArgPattern[][] | null;
}

/** One argument glob (`*` within the argument), or `**` for any number of remaining arguments. */
export type ArgPattern = string;

export interface CompiledProcess {
  mode: Mode;
  rules: ExecRule[];
  /** Node children may run without the guard (no NODE_OPTIONS injection). */
  unguardedNode: boolean;
  packages: ReadonlyMap<string, ExecRule[]>;
  anyPackage: ExecRule[] | null;
  /** True when some package narrows child processes, so a decision needs the call stack. */
  packageRules: boolean;
}

export function compileProcess(document: PolicyDocument, mode: Mode, file: string): CompiledProcess {
  const section = document.process as { mode?: Mode; allow?: string[]; unguardedNode?: boolean } | undefined;
  const base = file.startsWith('/') ? pathResolve(file, '..') : process.cwd();
  const packages = new Map<string, ExecRule[]>();
  let anyPackage: ExecRule[] | null = null;
  for (const [name, pkg] of Object.entries(document.packages ?? {})) {
    const allow = (pkg.process as { allow?: string[] } | undefined)?.allow;
    if (!allow) continue;
    const rules = allow.map((r, i) => compileRule(r, `packages.${name}.process.allow[${i}]`, base));
    if (name === '*') anyPackage = rules;
    else packages.set(name, rules);
  }
  return {
    mode: section?.mode ?? mode,
    rules: (section?.allow ?? []).map((r, i) => compileRule(r, `process.allow[${i}]`, base)),
    unguardedNode: section?.unguardedNode === true,
    packages,
    anyPackage,
    packageRules: packages.size > 0 || anyPackage !== null,
  };
}

export function compileRule(source: string, key: string, base: string): ExecRule {
  const parts = splitRule(source);
  let command = parts[0] ?? '';
  if (command.includes('/') && !command.startsWith('/')) command = pathResolve(base, command);
  const rule: ExecRule = { source, key, command, real: null, args: parts.length > 1 ? [parts.slice(1)] : null };
  rule.real = ruleTarget(rule);
  return rule;
}

/** `/usr/bin/git log **` → words; double quotes keep an argument with spaces together. */
function splitRule(source: string): string[] {
  const words: string[] = [];
  let word = '';
  let quoted = false;
  let inWord = false;
  for (const c of source.trim()) {
    if (c === '"') {
      quoted = !quoted;
      inWord = true;
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** The real path a rule names; bare names resolve through this process's PATH (retried later if not found). */
export function ruleTarget(rule: ExecRule): string | null {
  const found = rule.command.startsWith('/')
    ? executableFile(rule.command)
    : searchPath(rule.command, processEnvRaw.PATH, process.cwd());
  return found === null ? null : realOrNull(found);
}

// ---------------------------------------------------------------------------------------------------------------
// Resolving a program the way the OS does

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

export function executableFile(path: string): string | null {
  try {
    // No exception for a miss: a PATH search misses in most folders, and a thrown error costs microseconds.
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined || !stats.isFile() || (stats.mode & 0o111) === 0) return null;
    if (!isRoot) accessSync(path, X_OK);
    return path;
  } catch {
    return null;
  }
}

export function realOrNull(path: string): string | null {
  try {
    return realpathNative(path);
  } catch {
    return null;
  }
}

function searchPath(name: string, pathValue: string | undefined, cwd: string): string | null {
  // libuv's execvpe: the child's PATH, or the default search path when the child has none.
  for (const dir of (pathValue ?? '/usr/bin:/bin').split(':')) {
    const found = executableFile(pathResolve(cwd, dir === '' ? '.' : dir, name));
    if (found !== null) return found;
  }
  return null;
}

/** The absolute path the OS would execute for `file`, or null if it would fail to find one. */
export function resolveExecutable(file: string, pathValue: string | undefined, cwd: string): string | null {
  if (file === '') return null;
  if (file.includes('/')) return executableFile(pathResolve(cwd, file));
  return searchPath(file, pathValue, cwd);
}

/** Where this process's own node binary really is: taken at start, before a dependency can change `process.execPath`. */
export const nodeExecReal = realOrNull(process.execPath);
