/**
 * Starting the guard: from the environment (the preload) or from code (`guard()`). One guard per process:
 * a second start with the same policy is a no-op, with a different policy it is refused, so a dependency
 * cannot replace the function's policy with a wider one.
 */
import { isPerimeterError, type PerimeterError, perimeterError } from './errors.js';
import { configureSink, emit, flushEvents } from './events.js';
import { activePolicy, setActivePolicy } from './guard.js';
import { installInterceptors } from './intercept/install.js';
import type { CompiledPolicy, PolicyDocument } from './policy/compile.js';
import { findPolicyFile, parsePolicy, readPolicyFile } from './policy/load.js';
import { fsWriteSync, JSONStringify, ObjectDefineProperty, ObjectFreeze } from './pristine.js';
import { rememberSecretValues } from './redact.js';
import { defaultFunctionName } from './scope.js';

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
  if (existing) {
    if (JSONStringify(existing.document) === JSONStringify(compiled.document)) return info(existing);
    throw perimeterError(
      'ERR_PERIMETER_ALREADY_GUARDED',
      'Perimeter is already guarding this process with another policy',
      {
        file: existing.file,
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
  installInterceptors();
  process.once('exit', flushEvents);
  ObjectDefineProperty(globalThis, GUARD_KEY, {
    value: ObjectFreeze({ version: 1, info: info(policy) }),
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
    guard();
  } catch (error) {
    stopBeforeHandler(error);
  }
}

/** Exit code for "the policy is unusable": EX_CONFIG from sysexits.h. */
export const EXIT_POLICY_ERROR = 78;

function stopBeforeHandler(error: unknown): never {
  const err: PerimeterError = isPerimeterError(error)
    ? error
    : perimeterError('ERR_PERIMETER_INTERNAL', `Perimeter failed to start: ${(error as Error)?.message ?? error}`, {
        cause: error,
      });
  configureSink({ functionName: defaultFunctionName(process.env, process.argv[1]) });
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
