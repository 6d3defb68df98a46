/**
 * Per-invocation scope. Adapters run each invocation inside `runInInvocationScope` so that every event carries the
 * function name and request id, even when the operation happens after several awaits; `withPolicy` narrows the
 * policy for the code it runs and everything that code starts asynchronously.
 *
 * Limit, stated plainly: the scope follows async context (promises, timers, callbacks created inside it). Work a
 * dependency queued before the scope began (a timer set at import time, a listener on a long-lived emitter that
 * fires from outside) runs outside it, under the function policy alone: a narrower policy narrows, it is not an
 * isolation boundary. The function policy applies everywhere, always.
 */
import type { AsyncLocalStorage } from 'node:async_hooks';
import { perimeterError } from './errors.js';
import type { CompiledPolicy, PolicyDocument } from './policy/compile.js';
import { parsePolicy } from './policy/load.js';
import {
  getBuiltinModule,
  JSONParse,
  JSONStringify,
  MapClear,
  MapGet,
  MapSet,
  MapSize,
  ObjectFreeze,
  ReflectApply,
  SafeMap,
  SafeWeakMap,
} from './pristine.js';

export interface InvocationScope {
  function?: string | undefined;
  invocation?: string | undefined;
  /**
   * Policies narrowing the function policy here, outermost first. A decision must satisfy the function policy and
   * every one of these.
   */
  policies?: readonly CompiledPolicy[] | undefined;
}

// Node loads async_hooks during bootstrap on every supported major, so capturing it costs nothing; the methods are
// captured now (before any dependency runs) so that replacing AsyncLocalStorage.prototype.getStore cannot make a
// narrowed scope look unscoped.
const AsyncLocalStorageCtor = getBuiltinModule('async_hooks').AsyncLocalStorage as typeof AsyncLocalStorage;
const storageRun = AsyncLocalStorageCtor.prototype.run;
const storageGetStore = AsyncLocalStorageCtor.prototype.getStore;

// The instance is created on first use: a function run without an adapter never needs it, and until it exists
// reading the scope is one null check.
let storage: AsyncLocalStorage<InvocationScope> | null = null;

function run<T>(scope: InvocationScope, fn: () => T): T {
  storage ??= new AsyncLocalStorageCtor<InvocationScope>();
  return ReflectApply(storageRun, storage, [scope, fn]) as T;
}

// The invocation the platform is serving, when no adapter scope says (platform.ts asks the Lambda runtime).
let platformScope: (() => InvocationScope | undefined) | null = null;

export function setPlatformInvocationSource(source: () => InvocationScope | undefined): void {
  platformScope = source;
}

export function currentInvocationScope(): InvocationScope | undefined {
  const own =
    storage === null ? undefined : (ReflectApply(storageGetStore, storage, []) as InvocationScope | undefined);
  return own ?? processScope ?? (platformScope === null ? undefined : platformScope());
}

interface ProcessScope extends InvocationScope {
  outer: ProcessScope | undefined;
}

// The invocation entered by enterInvocation (middleware-style integrations that cannot wrap the handler call):
// process-wide, for platforms that run one invocation at a time per process.
let processScope: ProcessScope | undefined;

/**
 * Enters an invocation for the whole process until the returned function is called: events name it, and its
 * narrower policy applies to all code, also code outside any async scope. Only the holder of the returned function
 * can leave it (leaving also drops any invocation entered on top of it since). Prefer withInvocation, which follows
 * async context and so also works when a process serves several invocations at once.
 */
export function enterInvocation(options: InvocationOptions): () => void {
  const outer = processScope;
  let policies = outer?.policies;
  if (options.policy !== undefined) {
    requireGuard();
    const compiled = narrowerPolicy(options.policy);
    policies = policies ? [...policies, compiled] : [compiled];
  }
  const scope: ProcessScope = {
    function: options.function ?? outer?.function,
    invocation: options.invocation ?? outer?.invocation,
    policies,
    outer,
  };
  processScope = scope;
  return function leaveInvocation(): void {
    for (let entered = processScope; entered !== undefined; entered = entered.outer) {
      if (entered === scope) {
        processScope = scope.outer;
        return;
      }
    }
  };
}

/** A narrower policy validated and compiled once (preparePolicy), for code that applies it on every invocation. */
export interface PreparedPolicy {
  readonly perimeterPreparedPolicy: true;
}

export interface InvocationOptions {
  function?: string | undefined;
  invocation?: string | undefined;
  /** A narrower policy for this invocation, as withPolicy applies it. */
  policy?: PolicyDocument | PreparedPolicy | undefined;
}

/**
 * Runs `fn` with every event it causes carrying this function name and invocation id, and under `policy` when one is
 * given (as withPolicy, in the same scope). Narrower policies already in force carry over: starting a new invocation
 * scope never lifts a `withPolicy`.
 */
export function runInInvocationScope<T>(options: InvocationOptions, fn: () => T): T {
  const outer = currentInvocationScope();
  let policies = outer?.policies;
  if (options.policy !== undefined) {
    requireGuard();
    const compiled = narrowerPolicy(options.policy);
    policies = policies ? [...policies, compiled] : [compiled];
  }
  return run(
    {
      function: options.function ?? outer?.function,
      invocation: options.invocation ?? outer?.invocation,
      policies,
    },
    fn,
  );
}

/**
 * The narrower policies in force for the code running now, outermost first, or undefined when there are none.
 * Every capability check consults these after the function policy: each must allow the operation too. A narrower
 * policy without a section for a capability narrows nothing there (check `policy.document.<capability>`).
 */
export function scopePolicies(): readonly CompiledPolicy[] | undefined {
  const policies = currentInvocationScope()?.policies;
  // An async scope opened before a process-wide invocation was entered (a timer a dependency set at import, say)
  // still gets that invocation's narrowing.
  const processWide = processScope?.policies;
  if (processWide === undefined || policies === processWide) return policies;
  if (policies === undefined) return processWide;
  // A scope opened inside the process-wide invocation already starts with its policies.
  let inherited = policies.length >= processWide.length;
  for (let i = 0; inherited && i < processWide.length; i++) inherited = policies[i] === processWide[i];
  return inherited ? policies : [...processWide, ...policies];
}

const GUARD_KEY = Symbol.for('perimeter.guard');

function requireGuard(): void {
  if (!(globalThis as any)[GUARD_KEY]) {
    throw perimeterError('ERR_PERIMETER_NOT_GUARDED', 'withPolicy() needs the guard to be running', {
      hint: 'start the guard first: the preload (--import perimeter/register) or guard() at the top of the handler file',
    });
  }
}

/**
 * Runs `fn` (and everything it starts asynchronously) under the function policy AND `narrower`: an operation must be
 * allowed by both. A narrower policy can only remove permissions; nested calls intersect. Throws
 * ERR_PERIMETER_POLICY_INVALID for an invalid document and ERR_PERIMETER_NOT_GUARDED when the guard is not running
 * (narrowing nothing silently would be worse than failing).
 */
export function withPolicy<T>(narrower: PolicyDocument | PreparedPolicy, fn: () => T): T {
  requireGuard();
  const compiled = narrowerPolicy(narrower);
  const outer = currentInvocationScope();
  const policies = outer?.policies ? [...outer.policies, compiled] : [compiled];
  return run({ function: outer?.function, invocation: outer?.invocation, policies }, fn);
}

const weakMapGet = WeakMap.prototype.get;
const weakMapSet = WeakMap.prototype.set;
const prepared = new SafeWeakMap<object, CompiledPolicy>();

/** Validates and compiles a narrower policy once; withPolicy and withInvocation then apply it without recompiling. */
export function preparePolicy(document: PolicyDocument): PreparedPolicy {
  const handle: PreparedPolicy = ObjectFreeze({ perimeterPreparedPolicy: true as const });
  ReflectApply(weakMapSet, prepared, [handle, compileCopy(JSONStringify(document), document)]);
  return handle;
}

const compiledByText = new SafeMap<string, CompiledPolicy>();

function narrowerPolicy(policy: PolicyDocument | PreparedPolicy): CompiledPolicy {
  const ready = ReflectApply(weakMapGet, prepared, [policy]) as CompiledPolicy | undefined;
  if (ready) return ready;
  // Keyed by content, not identity, so that a document changed in place is recompiled.
  const text = JSONStringify(policy);
  const cached = typeof text === 'string' ? MapGet(compiledByText, text) : undefined;
  if (cached) return cached;
  const compiled = compileCopy(text, policy);
  if (typeof text === 'string') {
    if (MapSize(compiledByText) >= 100) MapClear(compiledByText);
    MapSet(compiledByText, text, compiled);
  }
  return compiled;
}

// Compiled from a private copy: the compiled policy keeps its document, and the caller's object may change later.
function compileCopy(text: string | undefined, document: unknown): CompiledPolicy {
  return parsePolicy(typeof text === 'string' ? JSONParse(text) : document, 'withPolicy()');
}

/** The function name when no adapter says otherwise, from the platform's own environment. */
export function defaultFunctionName(env: Record<string, string | undefined>, main: string | undefined): string {
  return (
    env.PERIMETER_FUNCTION ||
    env.AWS_LAMBDA_FUNCTION_NAME ||
    env.K_SERVICE ||
    env.FUNCTION_TARGET ||
    env.FUNCTION_NAME ||
    (main
      ? main
          .split('/')
          .pop()!
          .replace(/\.[cm]?[jt]s$/, '')
      : 'unknown')
  );
}
