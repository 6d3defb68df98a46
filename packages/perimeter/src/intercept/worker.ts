/**
 * worker_threads: a Worker is denied unless the policy allows workers, and an allowed one runs under the same
 * policy as the thread that started it.
 *
 * How the guard gets into the worker, and why each part is needed (measured on Node 20, 22, 24, 26):
 * - `--import` preloads never run in workers, and `execArgv: []` drops the parent's flags, so the wrapper puts
 *   `--require <dist/register.js>` first in the worker's execArgv, whatever the caller passed.
 * - A worker runs the preloads named in its own NODE_OPTIONS *before* those in execArgv, and reads NODE_OPTIONS
 *   from the `env` it is given (or from the shared env with SHARE_ENV). A dependency that sets NODE_OPTIONS
 *   could run its own code in the worker before the guard and save pristine functions. So the worker's
 *   NODE_OPTIONS is reset to what the process started with; with SHARE_ENV, a changed NODE_OPTIONS denies the worker.
 * - The policy travels out of band, through `worker_threads.setEnvironmentData`, never through the worker's env
 *   (`env: {}` would lose it, and a dependency can write env). It is the policy document itself, not a path, so a
 *   policy given in code (`guard({...})`) reaches the worker too and a rewritten policy file changes nothing.
 * - `--expose-internals` in a worker's execArgv hands its code `internalBinding`; such workers are denied.
 */
import { activePolicy, reportDenial, stopRememberingWritablePaths } from '../guard.js';
import { forbiddenWorkerFlags } from '../policy/runtime-caps.js';
import {
  ArrayIsArray,
  ArrayPush,
  JSONStringify,
  ObjectDefineProperty,
  ownDirectory,
  pathJoin,
  processEnvRaw,
  ReflectApply,
  ReflectConstruct,
} from '../pristine.js';
import { defaultFunctionName } from '../scope.js';
import { callerPackagesOrUnknown, checkWorker } from './internals.js';
import { disguise, guardProperty } from './patch.js';

/** The key of the environment data that carries the policy into workers. */
export const WORKER_POLICY_KEY = 'perimeter.policy';

export interface WorkerPolicyPayload {
  file: string;
  document: string;
  /** Events from the worker carry the function's name and go to the same file, whatever env the worker has. */
  functionName: string;
  eventsFile: string | undefined;
}

const REGISTER = pathJoin(ownDirectory, 'register.js');

/** NODE_OPTIONS as the process started, read before any dependency ran. */
const startupNodeOptions = processEnvRaw.NODE_OPTIONS;

let patched = false;

export function patchWorkerThreads(workerThreads: typeof import('node:worker_threads')): void {
  if (patched) return;
  patched = true;
  const policy = activePolicy();
  if (policy) {
    const payload: WorkerPolicyPayload = {
      file: policy.file,
      document: JSONStringify(policy.document),
      functionName: defaultFunctionName(processEnvRaw, process.argv[1]),
      eventsFile: processEnvRaw.PERIMETER_EVENTS_FILE,
    };
    workerThreads.setEnvironmentData(WORKER_POLICY_KEY, payload as any);
  }
  const SHARE_ENV = workerThreads.SHARE_ENV;

  guardProperty(
    workerThreads,
    'setEnvironmentData',
    (original) =>
      function setEnvironmentData(this: unknown, key: unknown, value: unknown) {
        // Replacing the policy a new worker starts with would widen it.
        if (key === WORKER_POLICY_KEY) {
          const denied = reportDenial(
            'block',
            {
              capability: 'worker',
              target: `setEnvironmentData(${WORKER_POLICY_KEY})`,
              reason: 'tamper',
              key: 'worker',
              suggestion: 'nothing: the policy key is reserved',
            },
            callerPackagesOrUnknown(),
          );
          throw denied;
        }
        return ReflectApply(original, this, [key, value]);
      },
  );

  guardProperty(workerThreads, 'Worker', (original) => {
    const Worker = function Worker(this: unknown, filename: unknown, options?: unknown) {
      if (new.target === undefined) return ReflectApply(original, this, [filename, options]);
      // The worker changes the file system through its own guard, whose calls this thread never sees.
      stopRememberingWritablePaths();
      const given = (options !== null && typeof options === 'object' ? options : {}) as Record<string, unknown>;
      // Everything the decision rests on is read once and copied: a getter or a mutated array must not show the
      // check one thing and the real constructor another.
      const guarded: Record<string, unknown> = { ...given };
      const requestedArgv = ArrayIsArray(guarded.execArgv) ? (guarded.execArgv as unknown[]) : process.execArgv;
      const execArgv: string[] = [];
      for (let i = 0; i < requestedArgv.length; i++) ArrayPush(execArgv, `${requestedArgv[i]}`);
      const requestedEnv = guarded.env;
      const shareEnv = requestedEnv === SHARE_ENV;
      const denied = checkWorker(
        typeof filename === 'string' ? filename : guarded.eval ? '<eval>' : `${filename}`,
        forbiddenWorkerFlags(execArgv),
        shareEnv && processEnvRaw.NODE_OPTIONS !== startupNodeOptions,
      );
      if (denied) throw denied;
      const argv: string[] = ['--require', REGISTER];
      for (let i = 0; i < execArgv.length; i++) ArrayPush(argv, execArgv[i]!);
      guarded.execArgv = argv;
      guarded.env = shareEnv ? SHARE_ENV : workerEnv(requestedEnv);
      return ReflectConstruct(original, [filename, guarded], new.target);
    };
    ObjectDefineProperty(Worker, 'prototype', { value: original.prototype });
    return disguise(Worker, original);
  });
}

/** The env a worker gets: what the caller asked for (default: this process's env), NODE_OPTIONS as at startup. */
function workerEnv(requested: unknown): Record<string, string> {
  const source = requested !== null && typeof requested === 'object' ? requested : process.env;
  const env: Record<string, string> = {};
  for (const key in source) {
    const value = (source as Record<string, unknown>)[key];
    if (value !== undefined) env[key] = `${value}`;
  }
  delete env.NODE_OPTIONS;
  if (startupNodeOptions !== undefined) env.NODE_OPTIONS = startupNodeOptions;
  return env;
}
