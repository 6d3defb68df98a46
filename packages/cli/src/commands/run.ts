/**
 * `perimeter run [--policy file] [--dry-run] -- node handler.js …`: runs a function with the guard preloaded
 * and, where the Node version has it, Node's permission model derived from the same policy.
 *
 * Also an AWS Lambda wrapper script: Lambda runs `$AWS_LAMBDA_EXEC_WRAPPER <runtime command…>`, so a wrapper that
 * execs `perimeter run --policy "$LAMBDA_TASK_ROOT/perimeter.json" -- "$@"` puts the runtime under both layers
 * (docs/permission-model.md).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { handlerOf, type PolicyForLaunch, planLaunch, probeNode } from '../permission.js';

export interface RunOptions {
  policy?: string;
  dryRun?: boolean;
  permission?: boolean;
  guard?: boolean;
}

const requireHere = createRequire(import.meta.url);

/** The same lookup the guard does: --policy, PERIMETER_POLICY, perimeter.json beside the handler, then cwd. */
export function findPolicy(command: readonly string[], explicit: string | undefined, env: NodeJS.ProcessEnv): string {
  if (explicit) return path.resolve(explicit);
  if (env.PERIMETER_POLICY) return path.resolve(env.PERIMETER_POLICY);
  const handler = handlerOf(command);
  const candidates = [
    ...(handler ? [path.join(path.dirname(path.resolve(handler)), 'perimeter.json')] : []),
    ...(env.LAMBDA_TASK_ROOT ? [path.join(env.LAMBDA_TASK_ROOT, 'perimeter.json')] : []),
    path.resolve('perimeter.json'),
  ];
  const found = candidates.find((file) => existsSync(file));
  if (!found) throw new Error(`no policy found (looked for ${candidates.join(', ')}); pass --policy <file>`);
  return found;
}

/** Quotes an argument for display so the printed command can be pasted into a shell. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}

export async function runCommand(command: string[], options: RunOptions): Promise<number> {
  if (command[0] === '--') command = command.slice(1);
  if (command.length === 0) throw new Error('nothing to run: perimeter run -- node handler.js');
  const policyFile = findPolicy(command, options.policy, process.env);
  // The runtime's own loader validates the policy: an invalid one stops here, with the file, key and hint.
  const { loadPolicy } = requireHere('perimeter') as {
    loadPolicy(file: string): { document: PolicyForLaunch };
  };
  const policy = loadPolicy(policyFile).document;
  const node = probeNode(command[0]!);
  const plan = planLaunch({
    policy,
    policyFile,
    command,
    node,
    env: process.env,
    permission: options.permission,
    guard: options.guard,
  });
  for (const warning of plan.warnings) process.stderr.write(`perimeter: ${warning}\n`);
  if (options.dryRun) {
    process.stdout.write(
      `PERIMETER_POLICY=${shellQuote(policyFile)} ${[plan.executable, ...plan.args].map(shellQuote).join(' ')}\n`,
    );
    return 0;
  }
  const child = spawn(plan.executable, plan.args, { stdio: 'inherit', env: plan.env });
  // The function is the process the platform talks to: signals go through, and its exit is ours.
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
  return new Promise((resolve) => {
    child.on('error', (error) => {
      process.stderr.write(`perimeter: could not start ${plan.executable}: ${error.message}\n`);
      resolve(127);
    });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : 1)));
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  const { constants } = requireHere('node:os') as typeof import('node:os');
  return constants.signals[signal];
}
