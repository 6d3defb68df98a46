/**
 * File system rules: compiling `fs.read` / `fs.write` (and `packages.<name>.fs`) and deciding one access.
 * The steps are numbered as in docs/policy.md ("How a file system decision is made").
 *
 * A path is always judged by where it really leads: the real path the kernel would open, with symlinks and
 * `..` resolved physically (`/tmp/link/..` is the parent of the link's target, not `/tmp`), and every name of
 * this process under /proc (`/proc/<pid>`, `/proc/thread-self`, `/proc/<pid>/task/<tid>`) folded into
 * `/proc/self`. Rules are matched against that real path only.
 */
import {
  fsExistsSync,
  fsLstatSync,
  fsReadlinkSync,
  fsRealpathSyncNative,
  MapGet,
  pathDirname,
  pathResolve,
  processCwd,
  StringCharCodeAt,
  StringIncludes,
  StringIndexOf,
  StringLastIndexOf,
  StringSlice,
  StringStartsWith,
  splitString,
} from '../pristine.js';

const ObjectCreate = Object.create;
// Startup only (compiling the policy runs before any dependency): listing node_modules for linked packages.
const fsReaddirSync = require('node:fs').readdirSync as (
  path: string,
  options: { withFileTypes: true },
) => Array<{ name: string; isSymbolicLink(): boolean; isDirectory(): boolean }>;

import type { Mode, PolicyDocument } from './compile.js';
import { compileGlob, type GlobMatcher, matchGlob } from './glob.js';

export type FsAccess = 'read' | 'write';

export interface FsRule {
  glob: GlobMatcher;
  /** The literal directory the glob starts from (`/home/u/.aws` for `~/.aws/**`): how deep the rule reaches. */
  reach: string;
  /** As the user wrote it, for events and hints. */
  source: string;
}

export interface FsRuleSet {
  read: FsRule[];
  write: FsRule[];
}

/** What the defaults are computed from; read from the process at start, given explicitly in unit tests. */
export interface FsEnvironment {
  home: string;
  /** The file Node was asked to run (process.argv[1]), if any. */
  main: string | undefined;
  cwd: string;
  taskRoot: string | undefined;
  nodePath: string[];
  execPath: string;
  /** The guard's own package directory. */
  guardDir: string;
  pid: number;
}

export interface CompiledFs {
  mode: Mode;
  /** The function's own rules. */
  rules: FsRuleSet;
  /** Always allowed (code, node_modules, Node's files, a few system files), for the function and packages alike. */
  defaults: FsRuleSet;
  /** Roots of the always-denied areas, deepest first (see `sensitiveZone`). */
  zones: string[];
  /**
   * The first component of every zone (`/root`, `/etc`…), or null when a zone is `/` itself: a path whose first
   * component is not here is in no zone, which spares the zone scan for most paths.
   */
  zoneHeads: { readonly [head: string]: true } | null;
  home: string;
  /** Where relative rules are anchored. */
  codeDir: string;
  pid: number;
  packages: ReadonlyMap<string, FsRuleSet>;
  anyPackage: FsRuleSet | null;
  /** True when some package narrows fs access, so a decision needs to know who is calling. */
  packageRules: boolean;
}

export function currentFsEnvironment(): FsEnvironment {
  const env = process.env;
  let home = env.HOME ?? '';
  if (home === '') {
    try {
      home = require('node:os').homedir();
    } catch {
      home = '';
    }
  }
  return {
    home,
    main: process.argv[1],
    cwd: processCwd(),
    taskRoot: env.LAMBDA_TASK_ROOT,
    nodePath: (env.NODE_PATH ?? '').split(':').filter((p) => p.startsWith('/')),
    execPath: process.execPath,
    guardDir: guardPackageDir(),
    pid: process.pid,
  };
}

/** dist/perimeter.js (bundle) or dist/policy/fs.js (per-module build): the package is the folder above dist. */
function guardPackageDir(): string {
  let dir = __dirname;
  if (dir.endsWith('/policy')) dir = pathDirname(dir);
  if (dir.endsWith('/dist')) dir = pathDirname(dir);
  return dir;
}

/** The real path of an existing path, or the path itself. Used at compile time only. */
function realOrSelf(path: string): string {
  // Most default and always-denied paths do not exist on a given machine (~/.aws, /run/secrets, /etc/pki…), and a
  // failing realpath costs ~10 µs for the error it throws; asking first is ~3 µs. Same answer either way: a path
  // that does not exist (or cannot be reached) is itself. Under Node's permission model existsSync throws for a
  // path outside --allow-fs-read (Node 20) instead of answering false: that path, too, is itself.
  try {
    if (!fsExistsSync(path)) return path;
    return fsRealpathSyncNative(path);
  } catch {
    return path;
  }
}

function within(path: string, root: string): boolean {
  return (
    path === root || (StringStartsWith(path, root) && (root === '/' || StringCharCodeAt(path, root.length) === 47))
  );
}

/** `~/x` → HOME/x, `data/**` → codeDir/data/**, `/a/../b` → `/b`. Globs are kept; only literal parts move. */
function absoluteRule(pattern: string, env: { home: string; codeDir: string }): string {
  let p = pattern;
  if (p === '~' || p.startsWith('~/')) p = env.home + p.slice(1);
  else if (!p.startsWith('/')) p = `${env.codeDir}/${p}`;
  const trailing = p.endsWith('/**') ? '/**' : '';
  const normalized = pathResolve(trailing ? p.slice(0, -3) || '/' : p);
  return trailing ? (normalized === '/' ? '/**' : normalized + trailing) : normalized;
}

/** The literal directory before the first wildcard segment. */
function literalReach(absolute: string): string {
  const star = absolute.indexOf('*');
  if (star === -1) return absolute;
  const slash = absolute.lastIndexOf('/', star);
  return slash <= 0 ? '/' : absolute.slice(0, slash);
}

function makeRule(absolute: string, source: string): FsRule {
  return { glob: compileGlob(absolute), reach: literalReach(absolute), source };
}

/**
 * Compiles a list of globs. A rule whose literal part runs through a symlink (`/var/run/x` on systems where
 * /var/run → /run) gets a twin on the real location, because decisions see only real paths.
 */
function compileRules(patterns: readonly string[], env: { home: string; codeDir: string }): FsRule[] {
  const rules: FsRule[] = [];
  for (const source of patterns) {
    const absolute = absoluteRule(source, env);
    rules.push(makeRule(absolute, source));
    const reach = literalReach(absolute);
    const real = realOrSelf(reach);
    if (real !== reach) rules.push(makeRule(real + absolute.slice(reach.length), source));
  }
  return rules;
}

/**
 * Directories that are the function's code: where the handler lives. `/` and HOME itself never are (a handler
 * run from HOME gets its own file, not all of HOME). A code directory above HOME does not open HOME: HOME is an
 * always-denied area, and the default rule does not reach into it by name.
 */
function codeDirectories(env: FsEnvironment): string[] {
  const dirs = new Set<string>();
  if (env.taskRoot?.startsWith('/')) dirs.add(pathResolve(env.taskRoot));
  if (env.main) dirs.add(pathDirname(realOrSelf(pathResolve(env.cwd, env.main))));
  dirs.add(env.cwd);
  const home = env.home === '' ? null : pathResolve(env.home);
  return [...dirs].filter((d) => d !== '/' && d !== home);
}

function nodeInstallRules(execPath: string): string[] {
  const real = realOrSelf(execPath);
  const prefix = pathDirname(pathDirname(real));
  // A Node installed into a shared prefix (/usr/bin/node) must not open all of /usr: only its own files.
  if (prefix === '/' || prefix === '/usr' || prefix === '/usr/local' || prefix === '/opt') {
    return [real, `${prefix}/lib/node_modules/**`, `${prefix}/include/node/**`, `${prefix}/share/doc/node/**`];
  }
  return [`${prefix}/**`];
}

const SYSTEM_READ = [
  '/dev/null',
  '/dev/zero',
  '/dev/urandom',
  '/dev/random',
  '/etc/ssl/**',
  '/etc/pki/**',
  '/usr/lib/ssl/**',
  '/usr/share/ca-certificates/**',
  '/usr/local/share/ca-certificates/**',
  '/etc/hosts',
  '/etc/resolv.conf',
  '/etc/localtime',
  '/etc/timezone',
  '/usr/share/zoneinfo/**',
];

/**
 * The standard devices, judged by name for operations through them (never for unlink/rename of the entry):
 * /dev/stdout resolves to /proc/self/fd/1, which would otherwise land in the always-denied /proc/self, and
 * writing to them says nothing console.log could not say.
 */
const STANDARD_DEVICES: { [path: string]: 'read' | 'write' | 'both' } = ObjectCreate(null);
STANDARD_DEVICES['/dev/null'] = 'both';
STANDARD_DEVICES['/dev/stdin'] = 'read';
STANDARD_DEVICES['/dev/stdout'] = 'write';
STANDARD_DEVICES['/dev/stderr'] = 'write';

/** Whether `path` is one of the standard devices above, allowed by name (what it leads to is not judged). */
export function isStandardDevice(path: string): boolean {
  return STANDARD_DEVICES[path] !== undefined;
}

/** Paths under HOME that stay denied even when a rule opens HOME itself. */
const HOME_SECRETS = [
  '.npmrc',
  '.yarnrc.yml',
  '.netrc',
  '.git-credentials',
  '.aws',
  '.ssh',
  '.gnupg',
  '.config',
  '.docker',
  '.kube',
];

const SYSTEM_SECRETS = [
  '/etc/shadow',
  '/etc/gshadow',
  '/etc/sudoers',
  '/etc/sudoers.d',
  '/root',
  '/var/run/secrets',
  '/run/secrets',
];

function defaultRules(env: FsEnvironment, zones: readonly string[]): FsRuleSet {
  const system: string[] = [...SYSTEM_READ, ...nodeInstallRules(env.execPath), `${env.guardDir}/**`];
  if (env.main) system.push(realOrSelf(pathResolve(env.cwd, env.main)));
  const code: string[] = [];
  for (const dir of codeDirectories(env)) {
    code.push(`${dir}/**`);
    for (let up = dir; ; up = pathDirname(up)) {
      code.push(up === '/' ? '/node_modules/**' : `${up}/node_modules/**`);
      if (up === '/') break;
    }
  }
  for (const dir of env.nodePath) code.push(`${pathResolve(dir)}/**`);
  for (const target of linkedPackages([...system, ...code], zones)) code.push(`${target}/**`);
  // The order decides nothing (any matching default allows), only how soon one matches: the function's code and
  // node_modules go first, because every file the module loader reads for the first time is checked against
  // this list, mostly still in the interpreter.
  const anchor = { home: env.home, codeDir: env.cwd };
  return { read: compileRules([...code, ...system], anchor), write: [] };
}

const MAX_LINK_SCAN = 10_000;

/**
 * Packages that `npm link`, workspaces or `file:` dependencies symlinked into a node_modules folder from
 * elsewhere (`node_modules/shared -> ../../packages/shared`). Their files are read at their real path, which is
 * outside every default folder, so the real folder is added, once, at start. A link that leads into an
 * always-denied area (a package "linked" to ~/.ssh) or to `/` is not followed.
 */
function linkedPackages(defaults: readonly string[], zones: readonly string[]): string[] {
  const found: string[] = [];
  let scanned = 0;
  const consider = (entryPath: string) => {
    const real = realOrSelf(entryPath);
    if (real === entryPath || real === '/') return;
    for (const zone of zones) if (within(real, zone)) return;
    found.push(real);
  };
  for (const rule of defaults) {
    if (!rule.endsWith('/node_modules/**')) continue;
    const folder = rule.slice(0, -3);
    for (const entry of listFolder(folder)) {
      if (++scanned > MAX_LINK_SCAN) return found;
      if (entry.isSymbolicLink()) consider(`${folder}/${entry.name}`);
      else if (entry.name.startsWith('@') && entry.isDirectory()) {
        for (const scoped of listFolder(`${folder}/${entry.name}`)) {
          if (++scanned > MAX_LINK_SCAN) return found;
          if (scoped.isSymbolicLink()) consider(`${folder}/${entry.name}/${scoped.name}`);
        }
      }
    }
  }
  return found;
}

function listFolder(folder: string): Array<{ name: string; isSymbolicLink(): boolean; isDirectory(): boolean }> {
  try {
    return fsReaddirSync(folder, { withFileTypes: true });
  } catch {
    return [];
  }
}

function sensitiveZones(env: FsEnvironment): string[] {
  const roots = new Set<string>();
  const add = (p: string) => {
    roots.add(p);
    roots.add(realOrSelf(p));
  };
  for (const p of SYSTEM_SECRETS) add(p);
  const home = env.home === '' ? '' : pathResolve(env.home);
  if (home !== '' && home !== '/') {
    add(home);
    for (const name of HOME_SECRETS) add(`${home}/${name}`);
  }
  // Deepest first, so the first zone that contains a path is the innermost one.
  return [...roots].sort((a, b) => b.length - a.length);
}

export function compileFs(document: PolicyDocument, env: FsEnvironment = currentFsEnvironment()): CompiledFs {
  const codeDirs = codeDirectories(env);
  const codeDir = codeDirs[0] ?? env.cwd;
  const anchor = { home: env.home, codeDir };
  const ruleSet = (doc: { read?: string[]; write?: string[] } | undefined): FsRuleSet => ({
    read: compileRules(doc?.read ?? [], anchor),
    write: compileRules(doc?.write ?? [], anchor),
  });
  // Each zone costs a realpath or two: computed once, for the default rules and for decisions.
  const zones = sensitiveZones(env);
  const packages = new Map<string, FsRuleSet>();
  let anyPackage: FsRuleSet | null = null;
  for (const [name, pkg] of Object.entries(document.packages ?? {})) {
    if (!pkg.fs) continue;
    if (name === '*') anyPackage = ruleSet(pkg.fs);
    else packages.set(name, ruleSet(pkg.fs));
  }
  return {
    mode: document.fs?.mode ?? document.mode ?? 'block',
    rules: ruleSet(document.fs),
    defaults: defaultRules(env, zones),
    zones,
    zoneHeads: headsOf(zones),
    home: env.home,
    codeDir,
    pid: env.pid,
    packages,
    anyPackage,
    packageRules: packages.size > 0 || anyPackage !== null,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Step 1: where a path really leads.

const MAX_SYMLINKS = 40;

/** Set by realPath when realpath(3) resolved what it follows (no missing component): see decideFs. */
let resolvedExisting = false;

/**
 * The real path the kernel would reach for `path` (absolute, not normalised: `..` must be applied after the
 * symlinks before it, as the kernel does). `follow` is false for operations on the entry itself (lstat, unlink,
 * rename, readlink…): then only the parent is resolved. Paths that do not exist yet resolve their deepest
 * existing ancestor; a dangling symlink resolves to where it points, because opening it for writing creates
 * its target.
 */
export function realPath(path: string, follow: boolean, pid: number): string {
  let real: string;
  if (follow) {
    try {
      real = fsRealpathSyncNative(path);
      resolvedExisting = true;
    } catch {
      real = resolveByHand(path);
    }
  } else {
    const slash = StringLastIndexOf(path, '/');
    const base = StringSlice(path, slash + 1);
    if (base === '' || base === '.' || base === '..') return realPath(path, true, pid);
    const parent = slash <= 0 ? '/' : StringSlice(path, 0, slash);
    let dir: string;
    try {
      dir = fsRealpathSyncNative(parent);
      resolvedExisting = true;
    } catch {
      dir = resolveByHand(parent);
    }
    real = dir === '/' ? `/${base}` : `${dir}/${base}`;
  }
  return StringStartsWith(real, '/proc/') ? canonicalProc(real, pid) : real;
}

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/**
 * Component by component, like the kernel: used when realpath(3) fails (missing paths, dangling links). The
 * file type comes from the mode bits, not from `Stats.prototype.isSymbolicLink`, which a dependency can replace.
 */
function resolveByHand(path: string): string {
  // A stack of the components still to walk, last component at the bottom.
  const pending: string[] = [];
  pushComponents(pending, path);
  let current = '/';
  let links = 0;
  while (pending.length > 0) {
    const part = pending[pending.length - 1]!;
    pending.length--;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      current = pathDirname(current);
      continue;
    }
    const next = current === '/' ? `/${part}` : `${current}/${part}`;
    let mode: number | undefined;
    try {
      mode = fsLstatSync(next, { throwIfNoEntry: false })?.mode;
    } catch {
      mode = undefined;
    }
    if (mode !== undefined && (mode & S_IFMT) === S_IFLNK) {
      if (++links > MAX_SYMLINKS) throw new Error(`too many symbolic links resolving ${path}`);
      const target = fsReadlinkSync(next, 'utf8') as string;
      pushComponents(pending, target);
      if (StringCharCodeAt(target, 0) === 47) current = '/';
      continue;
    }
    if (mode === undefined) {
      // Nothing beyond here exists (or it cannot be examined): the rest is only a name, resolved as written.
      let rest = part;
      for (let i = pending.length - 1; i >= 0; i--) rest = `${rest}/${pending[i]}`;
      return pathResolve(current, rest);
    }
    current = next;
  }
  return current;
}

function pushComponents(stack: string[], path: string): void {
  const parts = splitString(path, '/');
  for (let i = parts.length - 1; i >= 0; i--) stack[stack.length] = parts[i]!;
}

function isDigits(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) {
    const c = StringCharCodeAt(text, i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** The first segment after `/proc/` and where it ends. */
function procSegment(path: string): { first: string; end: number } {
  const end = StringIndexOf(path, '/', 6);
  return { first: end === -1 ? StringSlice(path, 6) : StringSlice(path, 6, end), end };
}

/** `/proc/<our pid>/…`, `/proc/thread-self/…` and `/proc/self/task/<tid>/…` are all `/proc/self/…`. */
export function canonicalProc(path: string, pid: number): string {
  const { first, end } = procSegment(path);
  if (first !== 'self' && first !== 'thread-self' && first !== `${pid}`) return path;
  let rest = end === -1 ? '' : StringSlice(path, end);
  if (StringStartsWith(rest, '/task/')) {
    const after = StringIndexOf(rest, '/', 6);
    const tid = after === -1 ? StringSlice(rest, 6) : StringSlice(rest, 6, after);
    if (isDigits(tid)) rest = after === -1 ? '' : StringSlice(rest, after);
  }
  return `/proc/self${rest}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Steps 2–5: the decision on a real path.

/** The innermost always-denied area that contains `real`, or null. Every process directory under /proc is one. */
export function sensitiveZone(policy: CompiledFs, real: string): string | null {
  const zones = policy.zones;
  const heads = policy.zoneHeads;
  if (heads === null || heads[headOf(real)] === true) {
    for (let i = 0; i < zones.length; i++) if (within(real, zones[i]!)) return zones[i]!;
  }
  if (StringStartsWith(real, '/proc/')) {
    const { first } = procSegment(real);
    if (first === 'self' || first === 'thread-self' || isDigits(first)) return `/proc/${first}`;
  }
  return null;
}

/** `/root` for `/root/.aws/credentials` and for `/root`: a path within a zone has the zone's first component. */
function headOf(path: string): string {
  const slash = StringIndexOf(path, '/', 1);
  return slash === -1 ? path : StringSlice(path, 0, slash);
}

function headsOf(zones: readonly string[]): { [head: string]: true } | null {
  const heads: { [head: string]: true } = ObjectCreate(null);
  for (let i = 0; i < zones.length; i++) {
    const zone = zones[i]!;
    if (zone === '/' || StringCharCodeAt(zone, 0) !== 47) return null;
    heads[headOf(zone)] = true;
  }
  return heads;
}

function ruleAllows(rules: readonly FsRule[], real: string, zone: string | null): FsRule | null {
  for (let i = 0; i < rules.length; i++) {
    const rule = rules[i]!;
    // Inside an always-denied area only a rule that reaches into it by name counts: `/**` does not open ~/.ssh.
    if (zone !== null && !within(rule.reach, zone)) continue;
    if (matchGlob(rule.glob, real)) return rule;
  }
  return null;
}

export type FsVerdict =
  | { allowed: true }
  | { allowed: false; reason: 'no-rule' | 'sensitive-path' | 'package-rule'; deniedBy?: string };

export function evaluateFs(
  policy: CompiledFs,
  access: FsAccess,
  real: string,
  packagesOnStack: () => readonly string[],
): FsVerdict {
  // Step 2: is the path inside an always-denied area (secrets under HOME, /proc/self, /etc/shadow…)?
  const zone = sensitiveZone(policy, real);
  // Step 3: a default or a rule of the function's policy must allow this access.
  if (!functionAllows(policy, access, real, zone)) {
    return { allowed: false, reason: zone === null ? 'no-rule' : 'sensitive-path' };
  }
  // Step 4: every package on the call stack with fs rules of its own (or under packages["*"]) must allow it too.
  // The defaults (code, node_modules, Node's files…) stay open to every package, so they need no call stack.
  if (policy.packageRules && ruleAllows(policy.defaults[access], real, zone) === null) {
    const verdict = packagesAllow(policy, access, real, zone, packagesOnStack());
    if (verdict !== null) return verdict;
  }
  // Step 5: allowed.
  return { allowed: true };
}

function functionAllows(policy: CompiledFs, access: FsAccess, real: string, zone: string | null): boolean {
  return (
    ruleAllows(policy.rules[access], real, zone) !== null || ruleAllows(policy.defaults[access], real, zone) !== null
  );
}

function packagesAllow(
  policy: CompiledFs,
  access: FsAccess,
  real: string,
  zone: string | null,
  packages: readonly string[],
): FsVerdict | null {
  for (let i = 0; i < packages.length; i++) {
    const name = packages[i]!;
    const own = MapGet(policy.packages, name) ?? policy.anyPackage;
    if (own === null || own === undefined) continue;
    if (ruleAllows(own[access], real, zone) === null) {
      return { allowed: false, reason: 'package-rule', deniedBy: name };
    }
  }
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// The hot path: remembered decisions.

/**
 * A read of a path that has no symlink in it and that this process is not allowed to change (no write rule
 * matches the path or any directory above it) gives the same answer every time, unless another process
 * changes the tree. Such decisions are remembered, which saves the realpath syscall on hot files (the
 * function's own code and data).
 *
 * Reads of paths this process may change (its /tmp) are remembered separately, under a stricter rule. A path
 * that resolved to itself with every component existing can only start leading elsewhere when a symlink (or a
 * mount) takes the place of one of its components: removing names or creating files and folders cannot do it.
 * Inside this process symlinks are put in place only by the fs functions that create, move, copy or remove
 * entries (intercept/fs.ts reports each of them before it starts and when it ends, and nothing is remembered
 * while one is in flight), or by something the guard cannot follow: a child process, a worker thread, a native
 * addon, a raw binding, an inspector session, WASI, SQLite's extensions, module.register's hooks thread. The
 * first of those turns this memory off for good (a child can leave a grandchild behind, so "while it runs" is
 * not enough), and in a worker thread it is never on: the thread that started it changes the tree unseen. Other
 * processes stay the documented limit.
 *
 * Null-prototype dictionaries, not Maps: a dependency that replaces `Map.prototype.has` must not be able to
 * make every path look remembered.
 */
const BY_DEFAULTS = 1; // allowed by a default rule: no package can narrow it, no stack needed
const BY_RULES = 2; // allowed by the function's own rules: packages with rules must still be asked
type Remembered = { [path: string]: typeof BY_DEFAULTS | typeof BY_RULES };
type Memo = { [dir: string]: boolean };
const newDictionary = <T>(): T => ObjectCreate(null);
const remembered = {
  follow: newDictionary<Remembered>(),
  entry: newDictionary<Remembered>(),
  changeable: newDictionary<Memo>(),
  size: 0,
};
const writable = {
  follow: newDictionary<Remembered>(),
  entry: newDictionary<Remembered>(),
  size: 0,
  /** Namespace-changing fs calls started and not yet finished (async ones run on the thread pool meanwhile). */
  inFlight: 0,
  on: !inWorkerThread() && !startedWithLoaderHooks(),
};

/**
 * Node gives workers a process.abort named so (runtime.ts relies on the same sign); the guard loads before any
 * dependency in a worker, so nothing can have renamed it yet.
 */
function inWorkerThread(): boolean {
  return (process.abort as { name?: string } | undefined)?.name === 'unavailableInWorker';
}

/** `--loader` hooks run on a thread of their own, which the guard does not see (see patchModuleRegister). */
function startedWithLoaderHooks(): boolean {
  const argv = process.execArgv;
  for (let i = 0; i < argv.length; i++) if (StringIncludes(argv[i]!, 'loader')) return true;
  return StringIncludes(process.env.NODE_OPTIONS ?? '', 'loader');
}
const REMEMBER_LIMIT = 4096;

function forgetWritable(): void {
  writable.follow = newDictionary<Remembered>();
  writable.entry = newDictionary<Remembered>();
  writable.size = 0;
}

/** An fs call that may put a symlink in place is about to start: forget, and remember nothing until it ends. */
export function namespaceChangeStarts(): void {
  writable.inFlight++;
  forgetWritable();
}

/** It ended (or failed): what was remembered before it started was already forgotten; forget what came after. */
export function namespaceChangeEnds(): void {
  writable.inFlight--;
  forgetWritable();
}

/**
 * Something that changes the file system where the guard cannot see it (a child process, a worker, a native
 * addon, a raw binding, an inspector session, WASI, SQLite, module.register's hooks) is about to run: reads of writable paths are judged afresh
 * from now on.
 */
export function stopRememberingWritablePaths(): void {
  writable.on = false;
  forgetWritable();
}

/** Whether a write rule matches `path` or a directory above it. A pure function of the string: memoised per folder. */
function changeable(policy: CompiledFs, path: string): boolean {
  // No write rule at all, the common case: nothing is, and the zone lookup below is spared on every new path.
  if (policy.rules.write.length === 0 && policy.defaults.write.length === 0) return false;
  if (functionAllows(policy, 'write', path, sensitiveZone(policy, path))) return true;
  const slash = StringLastIndexOf(path, '/');
  if (slash <= 0) return functionAllows(policy, 'write', '/', null);
  const dir = StringSlice(path, 0, slash);
  const known = remembered.changeable[dir];
  if (known !== undefined) return known;
  const result = changeable(policy, dir);
  remembered.changeable[dir] = result;
  return result;
}

export interface FsDecision {
  verdict: FsVerdict;
  /** The path as judged (real, canonical), for events. */
  real: string;
}

const ALLOWED: FsVerdict = { allowed: true };

/** Absolute form of a path exactly as the kernel will receive it (relative paths join the current directory). */
export function absolutePath(path: string): string {
  if (StringCharCodeAt(path, 0) === 47) return path;
  const cwd = processCwd();
  return cwd === '/' ? `/${path}` : `${cwd}/${path}`;
}

/** Steps 1–5 for one access to one path (given as a string, absolute or relative). */
export function decideFs(
  policy: CompiledFs,
  access: FsAccess,
  path: string,
  follow: boolean,
  packagesOnStack: () => readonly string[],
): FsDecision {
  const absolute = absolutePath(path);
  if (follow) {
    const device = STANDARD_DEVICES[absolute];
    if (device === 'both' || device === access) return { verdict: ALLOWED, real: absolute };
  }
  const cache = follow ? remembered.follow : remembered.entry;
  if (access === 'read') {
    let known = cache[absolute];
    if (known === undefined) known = (follow ? writable.follow : writable.entry)[absolute];
    if (known === BY_DEFAULTS || (known === BY_RULES && !policy.packageRules))
      return { verdict: ALLOWED, real: absolute };
    if (known === BY_RULES) return { verdict: evaluateFs(policy, access, absolute, packagesOnStack), real: absolute };
  }
  resolvedExisting = false;
  const real = realPath(absolute, follow, policy.pid);
  if (access === 'read' && real === absolute) {
    const zone = sensitiveZone(policy, real);
    const how =
      ruleAllows(policy.defaults.read, real, zone) !== null
        ? BY_DEFAULTS
        : ruleAllows(policy.rules.read, real, zone) !== null
          ? BY_RULES
          : 0;
    if (how !== 0) {
      if (!changeable(policy, real)) {
        if (++remembered.size > REMEMBER_LIMIT) forgetFsDecisions();
        cache[absolute] = how;
      } else if (writable.on && writable.inFlight === 0 && resolvedExisting) {
        // realpath(3) itself succeeded on what is followed: every component existed and none was a symlink.
        if (++writable.size > REMEMBER_LIMIT) forgetWritable();
        (follow ? writable.follow : writable.entry)[absolute] = how;
      }
    }
    // What evaluateFs would answer (steps 2–5 on the same zone and rules), without matching every rule a second
    // time: every file the module loader reads for the first time comes through here.
    if (how === BY_DEFAULTS || (how === BY_RULES && !policy.packageRules)) return { verdict: ALLOWED, real };
  }
  return { verdict: evaluateFs(policy, access, real, packagesOnStack), real };
}

/** For tests: forget remembered decisions. */
export function forgetFsDecisions(): void {
  remembered.follow = newDictionary<Remembered>();
  remembered.entry = newDictionary<Remembered>();
  remembered.changeable = newDictionary<Memo>();
  remembered.size = 0;
  forgetWritable();
}
