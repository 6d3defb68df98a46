/**
 * Starting the guard: from the environment (the preload) or from code (`guard()`). One guard per process:
 * a second start with the same policy is a no-op, with a different policy it is refused, so a dependency
 * cannot replace the function's policy with a wider one.
 */
import { isPerimeterError, type PerimeterError, perimeterError } from './errors.js';
import { configureSink, emit, flushEvents } from './events.js';
import { activePolicy, setActivePolicy } from './guard.js';
import { installInterceptors } from './intercept/install.js';
import { callerPackagesOrUnknown } from './intercept/internals.js';
import { WORKER_POLICY_KEY, type WorkerPolicyPayload } from './intercept/worker.js';
import { startPlatformSupport } from './platform.js';
import type { CompiledPolicy, PolicyDocument } from './policy/compile.js';
import { findPolicyFile, parsePolicy, readPolicyFile } from './policy/load.js';
import {
  fsWriteSync,
  getBuiltinModule,
  JSONParse,
  JSONStringify,
  ObjectDefineProperty,
  ObjectFreeze,
} from './pristine.js';
import { rememberSecretValues } from './redact.js';
import { defaultFunctionName } from './scope.js';
import { startIntegrityWatch, verifyIntegrity } from './tamper.js';

const GUARD_KEY = Symbol.for('perimeter.guard');

export interface GuardOptions {
  /** Where events go besides stderr. Defaults to `PERIMETER_EVENTS_FILE`. */
  eventsFile?: string;
  /** The function name events carry. Defaults to the platform's (AWS_LAMBDA_FUNCTION_NAME, K_SERVICE, …). */
  functionName?: string;
  /** Write events to stderr (default true). */
  stderr?: boolean;
}

export interface GuardInfo {
  policyFile: string;
  mode: CompiledPolicy['mode'];
  networkMode: CompiledPolicy['network']['mode'];
}

function info(policy: CompiledPolicy): GuardInfo {
  return ObjectFreeze({ policyFile: policy.file, mode: policy.mode, networkMode: policy.network.mode });
}

/**
 * Starts the guard from code. `policy` is a policy object, a path to a policy file, or omitted to find the
 * policy the way the preload does. Throws a coded error for an invalid policy.
 */
export function guard(policy?: PolicyDocument | string, options: GuardOptions = {}): GuardInfo {
  const env = process.env;
  const compiled =
    typeof policy === 'string'
      ? readPolicyFile(policy)
      : policy !== undefined
        ? parsePolicy(policy)
        : locateAndRead(env);
  const existing = activePolicy();
  // Another copy of the library (a bundled adapter, or a copy re-required after clearing require.cache) sees
  // the process-wide marker even though its own state is empty.
  const marker = (globalThis as any)[GUARD_KEY] as { document?: string } | undefined;
  const current = existing ? JSONStringify(existing.document) : marker?.document;
  if (current !== undefined) {
    if (current === JSONStringify(compiled.document) && existing) return info(existing);
    if (current === JSONStringify(compiled.document)) return info(compiled);
    emit({
      type: 'tamper',
      capability: 'guard',
      action: 'blocked',
      target: 'guard()',
      package: callerPackagesOrUnknown()[0] ?? 'app',
      reason: 'already-guarded',
      detail: 'a second guard() with a different policy was refused',
    });
    throw perimeterError(
      'ERR_PERIMETER_ALREADY_GUARDED',
      'Perimeter is already guarding this process with another policy',
      {
        file: existing?.file,
        hint: 'start the guard once, with the function policy (use the preload or one guard() call at the top of the handler file)',
      },
    );
  }
  start(compiled, env, options);
  return info(compiled);
}

function locateAndRead(env: Record<string, string | undefined>): CompiledPolicy {
  const { file, searched } = findPolicyFile({ env, main: process.argv[1] });
  if (file === null) {
    throw perimeterError('ERR_PERIMETER_POLICY_NOT_FOUND', 'No Perimeter policy found', {
      file: searched.join(', '),
      hint: 'create perimeter.json beside the handler (start with {"mode":"alert"} to record what the function does) or set PERIMETER_POLICY=/path/to/policy.json',
    });
  }
  return readPolicyFile(file);
}

function start(policy: CompiledPolicy, env: Record<string, string | undefined>, options: GuardOptions): void {
  rememberSecretValues(env);
  configureSink({
    functionName: options.functionName ?? defaultFunctionName(env, process.argv[1]),
    eventsFile: options.eventsFile ?? env.PERIMETER_EVENTS_FILE,
    stderr: options.stderr,
  });
  setActivePolicy(policy, env);
  startPlatformSupport(env);
  installInterceptors();
  startIntegrityWatch();
  // Before the flush, so that a change made during the run is in the last batch.
  process.once('exit', verifyIntegrity);
  process.once('exit', flushEvents);
  ObjectDefineProperty(globalThis, GUARD_KEY, {
    value: ObjectFreeze({ version: 1, info: info(policy), document: JSONStringify(policy.document) }),
    enumerable: false,
    writable: false,
    configurable: false,
  });
}

/**
 * The preload's entry: find and load the policy, or stop the process before the handler loads (fail closed).
 * Running twice (NODE_OPTIONS plus --import, or a worker inheriting both) installs once.
 */
export function startFromEnvironment(): void {
  if ((globalThis as any)[GUARD_KEY]) return;
  try {
    const inherited = policyFromParentThread();
    if (inherited) {
      start(inherited.policy, process.env, {
        functionName: inherited.payload.functionName,
        eventsFile: inherited.payload.eventsFile,
      });
      return;
    }
    guard();
  } catch (error) {
    stopBeforeHandler(error);
  }
}

/**
 * In a worker started by a guarded thread: the policy that thread handed over (intercept/worker.ts). It wins over
 * anything in the worker's env, which the caller chose.
 */
function policyFromParentThread(): { policy: CompiledPolicy; payload: WorkerPolicyPayload } | null {
  // Node replaces process.abort in workers; checking its name first spares the main thread loading
  // worker_threads (~0.7 ms of cold start). isMainThread is the authoritative answer.
  if ((process.abort as { name?: string } | undefined)?.name !== 'unavailableInWorker') return null;
  const workerThreads = getBuiltinModule('worker_threads') as typeof import('node:worker_threads');
  if (workerThreads.isMainThread) return null;
  const payload = workerThreads.getEnvironmentData(WORKER_POLICY_KEY) as WorkerPolicyPayload | undefined;
  if (!payload || typeof payload.document !== 'string') return null;
  return { policy: parsePolicy(JSONParse(payload.document), payload.file), payload };
}

/** Exit code for "the policy is unusable": EX_CONFIG from sysexits.h. */
export const EXIT_POLICY_ERROR = 78;

function stopBeforeHandler(error: unknown): never {
  const err: PerimeterError = isPerimeterError(error)
    ? error
    : perimeterError('ERR_PERIMETER_INTERNAL', `Perimeter failed to start: ${(error as Error)?.message ?? error}`, {
        cause: error,
      });
  const functionName = defaultFunctionName(process.env, process.argv[1]);
  try {
    // The events file too: a log pipeline that reads only the file must see why the function never started.
    configureSink({ functionName, eventsFile: process.env.PERIMETER_EVENTS_FILE });
  } catch {
    configureSink({ functionName });
  }
  emit({
    type: 'policy-error',
    capability: 'policy',
    action: 'blocked',
    target: err.file ?? 'policy',
    package: 'perimeter',
    reason: err.code,
    detail: err.key ? `${err.key}: ${err.message}` : err.message,
  });
  flushEvents();
  try {
    fsWriteSync(2, `perimeter: ${err.code}: ${err.message}\nperimeter: the function was not started (fail closed).\n`);
  } catch {
    // Nothing more can be said if stderr is gone; the exit code still tells.
  }
  process.exit(EXIT_POLICY_ERROR);
}
