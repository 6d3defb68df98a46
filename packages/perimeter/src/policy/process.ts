/**
 * Child processes: compiling `process.allow` and deciding whether a spawn may run. The steps are numbered as in
 * docs/policy.md ("How a child process decision is made").
 *
 * A rule names an executable (an absolute path, or a bare name resolved through PATH when the policy loads) and
 * optionally the arguments it may get. A spawn is judged by the program the OS would really run: resolved
 * through the child's PATH and cwd, then through symlinks, so `/tmp/x -> /usr/bin/curl` is curl. A shell is
 * judged by the commands in its script (policy/shell.ts) unless the policy trusts that shell outright, and a
 * wrapper (`env`, `nice`, `timeout`, `xargs`, `sudo`, `find -exec`, …) by itself *and* by the program it runs.
 */
import { processEnvRaw, safeSetOf } from '../pristine.js';
import { matchSegment } from './glob.js';
import {
  type ArgPattern,
  type CompiledProcess,
  type ExecRule,
  nodeExecReal,
  realOrNull,
  resolveExecutable,
  ruleTarget,
} from './process-rules.js';
import { isSensitiveVariable, parseShell } from './shell.js';

export { type CompiledProcess, compileProcess, type ExecRule, resolveExecutable } from './process-rules.js';

// ---------------------------------------------------------------------------------------------------------------
// Deciding

export interface Arg {
  text: string;
  /** Unknown until run time (a shell expansion, xargs input). */
  dynamic: boolean;
}

export interface SpawnRequest {
  /** The program as given (`options.file`). */
  file: string;
  /** Arguments after argv[0]. */
  args: readonly string[];
  /** The child's environment. */
  env: (name: string) => string | undefined;
  cwd: string;
}

export type ProcessVerdict =
  | { allowed: true; resolved: string; node: boolean }
  | {
      allowed: false;
      reason: 'no-rule' | 'not-found' | 'unjudgeable' | 'unsafe-env' | 'unguarded-node' | 'package-rule';
      /** The command that was denied, as it reads in an event. */
      target: string;
      /** The entry that would allow it. */
      suggestion: string;
      detail?: string;
      deniedBy?: string;
    };

type Denied = Extract<ProcessVerdict, { allowed: false }>;

/** Variables a caller may not hand a child with a value this process was not started with: they load code. */
function unsafeEnvironment(env: SpawnRequest['env'], names: () => readonly string[]): string | null {
  for (const name of names()) {
    if (
      name === 'LD_PRELOAD' ||
      name === 'LD_AUDIT' ||
      name === 'LD_LIBRARY_PATH' ||
      name === 'BASH_ENV' ||
      name === 'ENV' ||
      name === 'PS4' ||
      name === 'SHELLOPTS' ||
      name === 'BASHOPTS' ||
      name.startsWith('BASH_FUNC_')
    ) {
      if (env(name) !== processEnvRaw[name]) return name;
    }
  }
  return null;
}

export function evaluateProcess(
  policy: CompiledProcess,
  request: SpawnRequest,
  envNames: () => readonly string[],
  packagesOnStack: () => readonly string[],
): ProcessVerdict {
  // Step 1: resolve the program as the OS would: the child's PATH and cwd, then symlinks.
  const resolved = resolveExecutable(request.file, request.env('PATH'), request.cwd);
  if (resolved === null) {
    return { allowed: false, reason: 'not-found', target: request.file, suggestion: request.file };
  }
  // Step 2: an environment that makes an allowed program load other code (LD_PRELOAD, BASH_ENV, …) is denied.
  const unsafe = unsafeEnvironment(request.env, envNames);
  if (unsafe !== null) {
    return {
      allowed: false,
      reason: 'unsafe-env',
      target: `${request.file} (with ${unsafe} set)`,
      suggestion: `nothing: ${unsafe} may not be passed to a child process`,
    };
  }
  const args = request.args.map((text) => ({ text, dynamic: false }));
  // Steps 3-5: the function's rules must allow the program, what a shell runs and what a wrapper runs.
  const context: Context = { env: request.env, cwd: request.cwd, unguardedNode: policy.unguardedNode, node: false };
  const denied = judge(policy.rules, resolved, request.file, args, context, 0);
  if (denied) return denied;
  // Step 6: every package on the stack with process rules of its own (or under packages["*"]) must allow it too.
  if (policy.packageRules) {
    for (const name of packagesOnStack()) {
      const own = policy.packages.get(name) ?? policy.anyPackage;
      if (!own) continue;
      const byPackage = judge(own, resolved, request.file, args, { ...context, node: false }, 0);
      if (byPackage) return { ...byPackage, reason: 'package-rule', deniedBy: name };
    }
  }
  return { allowed: true, resolved, node: context.node };
}

interface Context {
  env: (name: string) => string | undefined;
  cwd: string;
  unguardedNode: boolean;
  /** Set when some program in the chain is node (the caller then makes sure the guard goes with it). */
  node: boolean;
}

const SHELLS = safeSetOf(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'rbash', 'pdksh', 'yash', 'posh']);
const MAX_DEPTH = 8;

function basename(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function isNodeProgram(real: string): boolean {
  return real === nodeExecReal || /^(node|nodejs)(\d+)?$/.test(basename(real));
}

function describe(program: string, args: readonly Arg[]): string {
  const text = [program, ...args.map((a) => (a.dynamic ? (a.text === '' ? '$…' : `${a.text}…`) : a.text))].join(' ');
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

function findRule(rules: readonly ExecRule[], real: string, args: readonly Arg[]): ExecRule | null {
  for (const rule of rules) {
    if (rule.real === null) rule.real = ruleTarget(rule);
    if (rule.real !== real) continue;
    if (rule.args === null) return rule;
    for (const alternative of rule.args) if (argsMatch(alternative, args)) return rule;
  }
  return null;
}

function argsMatch(patterns: readonly ArgPattern[], args: readonly Arg[]): boolean {
  for (let i = 0; i < patterns.length; i++) {
    const pattern = patterns[i]!;
    if (pattern === '**') return true;
    const arg = args[i];
    if (arg === undefined) return false;
    if (arg.dynamic ? pattern !== '*' : !matchSegment(pattern, arg.text)) return false;
  }
  return patterns.length === args.length;
}

function unjudgeable(program: string, args: readonly Arg[], why: string): Denied {
  return {
    allowed: false,
    reason: 'unjudgeable',
    target: describe(program, args),
    suggestion: program,
    detail: why,
  };
}

/** Judges one program with its arguments; returns the denial, or null when it may run. */
function judge(
  rules: readonly ExecRule[],
  resolved: string,
  invokedAs: string,
  args: readonly Arg[],
  context: Context,
  depth: number,
): Denied | null {
  if (depth > MAX_DEPTH) return unjudgeable(resolved, args, 'wrappers nested too deep');
  const real = realOrNull(resolved) ?? resolved;
  const name = basename(real);
  const rule = findRule(rules, real, args);
  if (isNodeProgram(real)) context.node = true;
  const shellName = SHELLS.has(name) ? name : SHELLS.has(basename(invokedAs)) ? basename(invokedAs) : null;
  if (shellName !== null || (name === 'busybox' && args[0] !== undefined && SHELLS.has(args[0].text))) {
    // Step 4: a shell allowed with any arguments is trusted with any script; otherwise its script is judged.
    if (rule !== null) return null;
    const shellArgs = shellName !== null ? args : args.slice(1);
    return judgeShell(rules, real, shellArgs, context, depth);
  }
  // Step 3: a rule must name the program (by its real path) and match its arguments.
  if (rule === null) {
    return { allowed: false, reason: 'no-rule', target: describe(real, args), suggestion: real };
  }
  // Step 5: a wrapper runs another program, which must be allowed as well.
  return judgeWrapped(rules, name, args, context, depth);
}

function judgeShell(
  rules: readonly ExecRule[],
  shell: string,
  args: readonly Arg[],
  context: Context,
  depth: number,
): Denied | null {
  let script: Arg | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.dynamic) return unjudgeable(shell, args, 'a dynamic shell option');
    const text = arg.text;
    if (text === '-o' || text === '+o') {
      i++;
      continue;
    }
    if (text === '--norc' || text === '--noprofile' || text === '--posix') continue;
    if (text.startsWith('--')) return unjudgeable(shell, args, `shell option ${text}`);
    if ((text.startsWith('-') || text.startsWith('+')) && text.length > 1) {
      if (/[silO]/.test(text.slice(1))) return unjudgeable(shell, args, `shell option ${text}`);
      if (text.includes('c')) {
        script = args[i + 1];
        break;
      }
      continue;
    }
    return unjudgeable(shell, args, 'a shell script file or standard input');
  }
  if (script === undefined) return unjudgeable(shell, args, 'a shell reading standard input');
  if (script.dynamic) return unjudgeable(shell, args, 'a dynamic script');
  const parsed = parseShell(script.text);
  if (!parsed.ok) return unjudgeable(shell, [{ text: '-c', dynamic: false }, script], parsed.reason);
  for (const command of parsed.commands) {
    const denied = judgeShellCommand(rules, command.words, command.afterCd, context, depth);
    if (denied) return denied;
  }
  return null;
}

/** Builtins that start no program and run no code of their own. */
const SAFE_BUILTINS = safeSetOf([
  ':',
  'true',
  'false',
  'echo',
  'printf',
  'test',
  '[',
  'cd',
  'pushd',
  'popd',
  'pwd',
  'export',
  'unset',
  'readonly',
  'local',
  'declare',
  'typeset',
  'set',
  'shift',
  'exit',
  'return',
  'wait',
  'read',
  'umask',
  'ulimit',
  'getopts',
  'break',
  'continue',
  'times',
  'type',
  'kill',
  'jobs',
  'shopt',
  'dirs',
]);

function judgeShellCommand(
  rules: readonly ExecRule[],
  words: readonly Arg[],
  afterCd: boolean,
  context: Context,
  depth: number,
): Denied | null {
  if (words.length === 0) return null;
  let index = 0;
  // `command x` and `builtin x` run x; `command -v x` only looks it up.
  while (words[index]?.text === 'command' || words[index]?.text === 'builtin') {
    const next = words[index + 1];
    if (next === undefined || next.text === '-v' || next.text === '-V') return null;
    if (next.text.startsWith('-')) return unjudgeable(words[index]!.text, words.slice(index + 1), 'command options');
    index++;
  }
  const head = words[index]!;
  const rest = words.slice(index + 1);
  if (SAFE_BUILTINS.has(head.text)) {
    if (head.text === 'printf' && rest.some((w) => w.text === '-v')) {
      return unjudgeable('printf', rest, 'printf -v');
    }
    if (head.text === 'shopt' && rest.some((w) => w.text.includes('expand_aliases'))) {
      return unjudgeable('shopt', rest, 'aliases');
    }
    return null;
  }
  if (afterCd && head.text.includes('/') && !head.text.startsWith('/')) {
    return unjudgeable(head.text, rest, 'a relative program path after the directory changed');
  }
  const resolved = resolveExecutable(head.text, context.env('PATH'), context.cwd);
  if (resolved === null)
    return { allowed: false, reason: 'not-found', target: describe(head.text, rest), suggestion: head.text };
  return judge(rules, resolved, head.text, rest, context, depth + 1);
}

interface WrapperGrammar {
  /** Short options that take a value. */
  value: string;
  /** Long options that take the next argument as their value. */
  long: readonly string[];
  /** Arguments between the options and the command (timeout's duration…). */
  positional: number;
  /** Short options that make the wrapper run something we cannot see (sudo -s, -i). */
  opaque?: string;
}

const WRAPPERS: Record<string, WrapperGrammar> = {
  nice: { value: 'n', long: ['--adjustment'], positional: 0 },
  nohup: { value: '', long: [], positional: 0 },
  timeout: { value: 'sk', long: ['--signal', '--kill-after'], positional: 1 },
  stdbuf: { value: 'ioe', long: ['--input', '--output', '--error'], positional: 0 },
  setsid: { value: '', long: [], positional: 0 },
  ionice: { value: 'cnp', long: ['--class', '--classdata', '--pid'], positional: 0 },
  chrt: { value: 'T', long: ['--sched-runtime', '--sched-period', '--sched-deadline'], positional: 1 },
  taskset: { value: '', long: [], positional: 1 },
  time: { value: 'fo', long: ['--format', '--output'], positional: 0 },
  sudo: {
    value: 'ugChpDrtUTR',
    long: ['--user', '--group', '--close-from', '--host', '--prompt', '--chdir', '--role', '--type', '--other-user'],
    positional: 0,
    opaque: 'sie',
  },
  doas: { value: 'uC', long: [], positional: 0, opaque: 's' },
  xargs: {
    value: 'aEdIiLlnPs',
    long: [
      '--arg-file',
      '--delimiter',
      '--max-args',
      '--max-lines',
      '--max-procs',
      '--max-chars',
      '--eof',
      '--process-slot-var',
    ],
    positional: 0,
  },
};

function judgeWrapped(
  rules: readonly ExecRule[],
  name: string,
  args: readonly Arg[],
  context: Context,
  depth: number,
): Denied | null {
  let inner: readonly Arg[] | null = null;
  let innerContext = context;
  if (name === 'env') {
    let i = 0;
    let path: string | undefined;
    for (; i < args.length; i++) {
      const arg = args[i]!;
      if (arg.dynamic) return unjudgeable('env', args, 'a dynamic env argument');
      const text = arg.text;
      if (text === '-0' || text === '-v' || text === '--null' || text === '--debug') continue;
      if (text === '--') {
        i++;
        break;
      }
      if (text.startsWith('-')) return unjudgeable('env', args, `env ${text}`);
      const eq = text.indexOf('=');
      if (eq > 0) {
        const variable = text.slice(0, eq);
        if (variable === 'PATH') path = text.slice(eq + 1);
        else if (isSensitiveVariable(variable)) return unjudgeable('env', args, `a change to ${variable}`);
        continue;
      }
      break;
    }
    inner = args.slice(i);
    if (path !== undefined) innerContext = { ...context, env: (n) => (n === 'PATH' ? path : context.env(n)) };
  } else if (name === 'find') {
    return judgeFindExec(rules, args, context, depth);
  } else if (name === 'busybox') {
    if (args[0] === undefined || args[0].text.startsWith('-')) return null;
    inner = args;
  } else if (Object.hasOwn(WRAPPERS, name)) {
    const grammar = WRAPPERS[name]!;
    const parsed = skipOptions(args, grammar);
    if (typeof parsed === 'string') return unjudgeable(name, args, parsed);
    inner = parsed.rest;
    if (name === 'xargs') {
      if (inner.length === 0) inner = [{ text: 'echo', dynamic: false }];
      if (parsed.replace !== null && inner[0]!.text.includes(parsed.replace)) {
        return unjudgeable('xargs', args, 'the command comes from the input');
      }
      // The input supplies more arguments.
      inner = [...inner, { text: '', dynamic: true }];
    }
    if (name === 'sudo' || name === 'doas') {
      // sudo resets the environment: a node started through it would lose the guard.
      const target = inner[0] && resolveExecutable(inner[0].text, context.env('PATH'), context.cwd);
      if (target && isNodeProgram(realOrNull(target) ?? target) && !context.unguardedNode) {
        return {
          allowed: false,
          reason: 'unguarded-node',
          target: describe(name, args),
          suggestion: 'process.unguardedNode',
        };
      }
    }
  } else {
    return null;
  }
  if (inner === null || inner.length === 0) return null;
  const head = inner[0]!;
  if (head.dynamic) return unjudgeable(name, args, 'the command is only known at run time');
  const resolved = resolveExecutable(head.text, innerContext.env('PATH'), innerContext.cwd);
  if (resolved === null) {
    return { allowed: false, reason: 'not-found', target: describe(head.text, inner.slice(1)), suggestion: head.text };
  }
  const denied = judge(rules, resolved, head.text, inner.slice(1), innerContext, depth + 1);
  if (innerContext !== context && innerContext.node) context.node = true;
  return denied;
}

function skipOptions(
  args: readonly Arg[],
  grammar: WrapperGrammar,
): { rest: readonly Arg[]; replace: string | null } | string {
  let i = 0;
  let replace: string | null = null;
  for (; i < args.length; i++) {
    const arg = args[i]!;
    if (arg.dynamic) return 'a dynamic option';
    const text = arg.text;
    if (text === '--') {
      i++;
      break;
    }
    if (text.startsWith('--')) {
      if (text.startsWith('--replace')) replace = text.includes('=') ? text.slice(text.indexOf('=') + 1) : '{}';
      if (!text.includes('=') && grammar.long.includes(text)) i++;
      continue;
    }
    if (!text.startsWith('-') || text.length === 1) break;
    for (let j = 1; j < text.length; j++) {
      const flag = text[j]!;
      if (grammar.opaque?.includes(flag)) return `option -${flag}`;
      if (grammar.value.includes(flag)) {
        const attached = text.slice(j + 1);
        const value = attached !== '' ? attached : args[++i]?.text;
        if (flag === 'I') replace = value ?? '';
        if (flag === 'i') replace = attached !== '' ? attached : '{}';
        if (flag === 'i' && attached === '') i--; // xargs -i takes no separate value
        break;
      }
    }
  }
  if (i + grammar.positional > args.length) return 'missing arguments';
  return { rest: args.slice(i + grammar.positional), replace };
}

function judgeFindExec(
  rules: readonly ExecRule[],
  args: readonly Arg[],
  context: Context,
  depth: number,
): Denied | null {
  for (let i = 0; i < args.length; i++) {
    const text = args[i]!.text;
    if (text !== '-exec' && text !== '-execdir' && text !== '-ok' && text !== '-okdir') continue;
    const command: Arg[] = [];
    for (i++; i < args.length && args[i]!.text !== ';' && args[i]!.text !== '+'; i++) {
      const arg = args[i]!;
      command.push(arg.text.includes('{}') ? { text: arg.text, dynamic: true } : arg);
    }
    const head = command[0];
    if (head === undefined || head.dynamic) return unjudgeable('find', args, 'find -exec with a dynamic command');
    const resolved = resolveExecutable(head.text, context.env('PATH'), context.cwd);
    if (resolved === null)
      return {
        allowed: false,
        reason: 'not-found',
        target: describe(head.text, command.slice(1)),
        suggestion: head.text,
      };
    const denied = judge(rules, resolved, head.text, command.slice(1), context, depth + 1);
    if (denied) return denied;
  }
  return null;
}
