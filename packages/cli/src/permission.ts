/**
 * Translating a Perimeter policy into Node's permission model flags, the second layer under the JS guard.
 *
 * Node's permission model is enforced in C++ for every fs access, child process, worker and addon load made
 * through Node's APIs, including the raw bindings a hostile dependency reaches around the JS layer
 * (`process.binding('fs')` is denied outright). It is coarser than the policy, so the translation can only
 * widen, never narrow, what the policy says:
 * - fs paths: Node accepts exact paths (a directory covers everything below it) and a `*` at the very end only.
 *   A glob becomes its longest literal directory prefix (`/data/*.json` → `/data`); the JS guard still applies
 *   the exact glob.
 * - child processes, workers, addons and (Node >= 26) the network are all-or-nothing switches: on when the
 *   policy allows any of it, off otherwise.
 * Which flags a given node binary has is asked of the binary itself (`process.allowedNodeEnvironmentFlags`),
 * not inferred from its version number.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

export interface NodeCapabilities {
  bin: string;
  version: string;
  major: number;
  /** The permission-model flags this binary accepts. */
  flags: ReadonlySet<string>;
}

/** Asks the node binary which version it is and which permission flags it accepts. */
export function probeNode(bin: string): NodeCapabilities {
  const script =
    'console.log(JSON.stringify([process.version, [...process.allowedNodeEnvironmentFlags].filter((f) => /^--(allow-|permission|experimental-permission)/.test(f))]))';
  const result = spawnSync(bin, ['-e', script], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
  if (result.status !== 0) {
    throw new Error(
      `could not run ${bin}: ${result.error?.message ?? result.stderr.trim() ?? `exit ${result.status}`}`,
    );
  }
  const [version, flags] = JSON.parse(result.stdout.trim()) as [string, string[]];
  return { bin: resolveExecutable(bin), version, major: Number(/^v(\d+)/.exec(version)?.[1]), flags: new Set(flags) };
}

/** `node` → `/usr/bin/node`, through PATH, with symlinks resolved (the permission model sees real paths). */
export function resolveExecutable(bin: string): string {
  if (bin.includes('/')) return realpathSync(path.resolve(bin));
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, bin);
    if (dir && existsSync(candidate)) return realpathSync(candidate);
  }
  throw new Error(`${bin} was not found in PATH`);
}

type Mode = 'block' | 'alert' | 'allow';

/** The parts of a policy the permission model can express. */
export interface PolicyForLaunch {
  mode?: Mode;
  network?: { mode?: Mode; allow?: string[] };
  fs?: { mode?: Mode; read?: string[]; write?: string[] };
  process?: { mode?: Mode; allow?: string[] };
  worker?: { mode?: Mode; allow?: boolean };
  addon?: { mode?: Mode; allow?: string[] };
}

export interface PlanOptions {
  policy: PolicyForLaunch;
  policyFile: string;
  /** The command to run: the node binary, its flags, the handler and its arguments. */
  command: readonly string[];
  node: NodeCapabilities;
  env: Record<string, string | undefined>;
  /** Add the permission model (default true). */
  permission?: boolean;
  /** Preload the JS guard (default true). */
  guard?: boolean;
}

export interface LaunchPlan {
  executable: string;
  args: string[];
  env: Record<string, string | undefined>;
  /** What the user should know: globs widened, capabilities switched on wholesale, no permission model. */
  warnings: string[];
}

const requireHere = createRequire(import.meta.url);

/** The guard's preload and the folder its package lives in (readable by the function). */
export function guardLocation(): { register: string; packageDir: string } {
  const register = realpathSync(requireHere.resolve('perimeter/register'));
  const packageDir = path.dirname(realpathSync(requireHere.resolve('perimeter/package.json')));
  return { register, packageDir };
}

/**
 * A policy glob as a path Node's permission model accepts: the literal directory prefix before the first segment
 * with a wildcard, then `/*`. Returns the path and whether it is wider than the glob.
 */
export function globToPermissionPath(glob: string, base: string): { path: string; widened: boolean } {
  const absolute = path.resolve(base, glob);
  const segments = absolute.split('/');
  const firstWild = segments.findIndex((s) => s.includes('*'));
  if (firstWild === -1) return { path: absolute, widened: false };
  // A directory grants everything below it on Node 20-26 (measured). `dir` and `dir/*` together crash Node 20's
  // permission tree (an assertion in FSPermission::RadixTree), so only the directory form is used.
  const prefix = segments.slice(0, firstWild).join('/');
  const exactTail = firstWild === segments.length - 1 && segments[firstWild] === '**';
  return { path: prefix === '' ? '*' : prefix, widened: !exactTail };
}

/** Node flags that take the next argument as their value; skipped when looking for the handler file. */
const FLAGS_WITH_VALUE = new Set([
  '-r',
  '--require',
  '--import',
  '--loader',
  '--experimental-loader',
  '-C',
  '--conditions',
]);

/** The handler file in a node command line: the first argument after the flags. */
export function handlerOf(command: readonly string[]): string | null {
  for (let i = 1; i < command.length; i++) {
    const arg = command[i]!;
    if (arg === '--') return command[i + 1] ?? null;
    if (FLAGS_WITH_VALUE.has(arg)) {
      i++;
      continue;
    }
    if (!arg.startsWith('-')) return arg;
  }
  return null;
}

/** Every node_modules folder Node may load from: beside the code and in each folder above it. */
function nodeModulesDirs(codeDir: string): string[] {
  const found: string[] = [];
  for (let dir = codeDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'node_modules');
    if (existsSync(candidate)) found.push(realpathSync(candidate));
    if (path.dirname(dir) === dir) return found;
  }
}

function modeOf(policy: PolicyForLaunch, section: { mode?: Mode } | undefined): Mode {
  return section?.mode ?? policy.mode ?? 'block';
}

export function planLaunch(options: PlanOptions): LaunchPlan {
  const { policy, node, env } = options;
  const [, ...rest] = options.command;
  const warnings: string[] = [];
  const flags: string[] = [];
  const { register, packageDir } = guardLocation();
  const guard = options.guard !== false;
  if (guard) flags.push('--require', register);

  const permissionFlag = node.flags.has('--permission')
    ? '--permission'
    : node.flags.has('--experimental-permission')
      ? '--experimental-permission'
      : null;
  if (options.permission !== false && permissionFlag === null) {
    warnings.push(`Node ${node.version} has no permission model: only the JS guard protects this function`);
  }
  if (options.permission !== false && permissionFlag !== null) {
    flags.push(permissionFlag);
    const handler = handlerOf(options.command);
    const codeDir = handler ? path.dirname(realpathSync(path.resolve(handler))) : process.cwd();
    const policyDir = path.dirname(options.policyFile);
    const read = new Set<string>();
    const write = new Set<string>();
    const addDir = (set: Set<string>, dir: string) => set.add(dir);
    addDir(read, codeDir);
    for (const dir of nodeModulesDirs(codeDir)) addDir(read, dir);
    addDir(read, packageDir);
    read.add(options.policyFile);
    read.add(node.bin);
    // On AWS Lambda the runtime client (/var/runtime), the function (LAMBDA_TASK_ROOT) and layers (/opt) load.
    if (env.LAMBDA_TASK_ROOT) {
      for (const dir of [env.LAMBDA_TASK_ROOT, '/opt', '/var/runtime']) addDir(read, dir);
    }
    if (env.PERIMETER_EVENTS_FILE) write.add(path.resolve(env.PERIMETER_EVENTS_FILE));

    const fsMode = modeOf(policy, policy.fs);
    if (fsMode !== 'block') {
      warnings.push(`fs.mode is "${fsMode}": the permission model allows all file access and the JS guard reports it`);
      read.clear();
      write.clear();
      read.add('*');
      write.add('*');
    } else {
      for (const [list, set] of [
        [policy.fs?.read ?? [], read],
        [policy.fs?.write ?? [], write],
      ] as const) {
        for (const glob of list) {
          const translated = globToPermissionPath(glob, policyDir);
          if (translated.widened) {
            warnings.push(
              `"${glob}" is wider in the permission model: ${translated.path} (the JS guard applies the glob)`,
            );
          }
          set.add(translated.path);
          // fs.write implies reading what was written.
          if (set === write) read.add(translated.path);
        }
      }
    }
    for (const p of read) flags.push(`--allow-fs-read=${p}`);
    for (const p of write) flags.push(`--allow-fs-write=${p}`);

    const processMode = modeOf(policy, policy.process);
    if (processMode !== 'block' || (policy.process?.allow?.length ?? 0) > 0) flags.push('--allow-child-process');
    const workerMode = modeOf(policy, policy.worker);
    if (workerMode !== 'block' || policy.worker?.allow === true) flags.push('--allow-worker');
    const addonMode = modeOf(policy, policy.addon);
    if (addonMode !== 'block' || (policy.addon?.allow?.length ?? 0) > 0) {
      if (node.flags.has('--allow-addons')) flags.push('--allow-addons');
    }
    if (node.flags.has('--allow-net')) {
      const networkMode = modeOf(policy, policy.network);
      const needsNetwork =
        networkMode !== 'block' || (policy.network?.allow?.length ?? 0) > 0 || Boolean(env.AWS_LAMBDA_RUNTIME_API);
      if (needsNetwork) flags.push('--allow-net');
    } else {
      warnings.push(`Node ${node.version}'s permission model does not restrict the network: the JS guard does`);
    }
  }

  return {
    executable: node.bin,
    args: [...flags, ...rest],
    env: { ...env, PERIMETER_POLICY: options.policyFile },
    warnings,
  };
}
