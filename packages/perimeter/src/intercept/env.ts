/**
 * `process.env` behind a Proxy over the real env object. In block mode a name the policy does not allow reads
 * as undefined and is absent from every way of listing the environment (`Object.keys`, `JSON.stringify`,
 * spreading, `for…in`, `in`, `Reflect.ownKeys`, property descriptors) — and therefore from the environment that
 * child_process copies for a child, which it builds by enumerating `process.env` in JavaScript.
 *
 * - Writes go through to the real object (without a `set` trap, `process.env.TZ = …` throws on every Node
 *   major). Creating a new variable is allowed; overwriting or deleting a variable the caller may not read is
 *   denied, so a dependency cannot swap the function's STRIPE_API_KEY for its own.
 * - `process.env` itself becomes a non-configurable accessor: it cannot be redefined, and assigning a new object
 *   is denied in block mode (it would let a dependency choose every value the function reads).
 * - The guard's own code reads the real object (pristine.ts `processEnvRaw`), never this Proxy.
 * The decision is policy/env.ts's; this file only reports and filters.
 */
import { callerPackages } from '../attribution.js';
import { activePolicy, failClosed, reportDenial } from '../guard.js';
import type { CompiledEnv } from '../policy/env.js';
import { classifyName, DENIED, NARROWED, type NameClass, packageDenying, READABLE } from '../policy/env.js';
import {
  DateNow,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  processEnvRaw,
  ReflectOwnKeys,
} from '../pristine.js';

const ObjectKeys = Object.keys;
const ReflectHas = Reflect.has;
const ReflectSet = Reflect.set;
const ReflectDeleteProperty = Reflect.deleteProperty;
const ReflectDefineProperty = Reflect.defineProperty;
const ReflectGetOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
const ObjectCreate = Object.create;
const ProxyCtor = Proxy;

const real = processEnvRaw;
/** Names code created after the guard started (not platform secrets). */
const created: Record<string, true> = ObjectCreate(null);
/** name → class, for this policy. A null-prototype object: no prototype method a dependency could replace. */
let classes: Record<string, NameClass> = ObjectCreate(null);
let classCount = 0;
const MAX_CLASSES = 10_000;

let policy: CompiledEnv | null = null;
let installed = false;

function classOf(name: string): NameClass {
  const known = classes[name];
  if (known !== undefined) return known;
  const computed = classifyName(policy!, name, created[name] === true);
  if (++classCount > MAX_CLASSES) {
    classes = ObjectCreate(null);
    classCount = 0;
  }
  classes[name] = computed;
  return computed;
}

/**
 * Whether the current caller may see `name`. Reports the denial when `report` is set (reads), and returns the
 * error for block mode; `true` when visible.
 */
function visible(name: string, report: boolean, packages?: { list?: readonly string[] }): boolean {
  let cls: NameClass;
  let deniedBy: string | null = null;
  try {
    cls = classOf(name);
    if (cls === READABLE) return true;
    if (cls === NARROWED) {
      const stack = packages ? (packages.list ??= callerPackages()) : callerPackages();
      deniedBy = packageDenying(policy!, name, stack);
      if (deniedBy === null) return true;
    }
  } catch (cause) {
    if (report) failClosed('env', cause);
    return false;
  }
  if (!report) return policy!.mode !== 'block';
  if (cls === DENIED && !shouldReport(name)) return policy!.mode !== 'block';
  return deny(name, cls === DENIED ? 'no-rule' : 'package-rule', deniedBy) === null;
}

const REPORT_WINDOW_MS = 1000;
const REPORTS_PER_WINDOW = 8;
/** name → [window start, reports in it]. */
let reportCounts: Record<string, [number, number]> = ObjectCreate(null);
let reportNames = 0;

/**
 * A denied name is reported (with the call stack, ~4-12 µs) at most a few times a second: a library that reads a
 * denied variable in a hot loop must not pay that on every read. The value is withheld every time regardless.
 */
function shouldReport(name: string): boolean {
  const now = DateNow();
  const entry = reportCounts[name];
  if (entry === undefined || now - entry[0] >= REPORT_WINDOW_MS) {
    if (entry === undefined && ++reportNames > MAX_CLASSES) {
      reportCounts = ObjectCreate(null);
      reportNames = 1;
    }
    reportCounts[name] = [now, 1];
    return true;
  }
  return ++entry[1] <= REPORTS_PER_WINDOW;
}

function deny(name: string, reason: string, deniedBy: string | null, what = 'read') {
  const stack = callerPackages();
  return reportDenial(
    policy!.mode,
    {
      capability: 'env',
      target: what === 'read' ? name : `${what} ${name}`,
      reason,
      deniedBy: deniedBy ?? undefined,
      key: deniedBy ? `packages.${deniedBy}.env.allow` : 'env.allow',
      suggestion: name,
    },
    stack,
  );
}

/** A write, delete or redefinition of an existing variable the caller may not read. */
function guardChange(name: string, what: string): void {
  if (!(name in real) || created[name] === true) return;
  if (visible(name, false)) return;
  const cls = classOf(name);
  const error = deny(name, cls === DENIED ? 'no-rule' : 'package-rule', null, what);
  if (error) throw error;
}

// Every trap works on the real env object, never on the Proxy's target (see shadowTarget).
const handler: ProxyHandler<Record<string, string | undefined>> = {
  get(_shadow, key) {
    const value = real[key as string];
    // Variables are strings; anything else comes from the prototype (hasOwnProperty, toString…).
    if (typeof value !== 'string' || typeof key !== 'string') return value;
    return visible(key, true) ? value : undefined;
  },
  has(_shadow, key) {
    if (typeof key !== 'string') return ReflectHas(real, key);
    return ReflectHas(real, key) && visible(key, false);
  },
  ownKeys() {
    const keys = ReflectOwnKeys(real);
    if (policy!.mode !== 'block') return keys;
    const shared: { list?: readonly string[] } = {};
    const shown: (string | symbol)[] = [];
    for (const key of keys) {
      if (typeof key !== 'string' || visible(key, false, shared)) shown[shown.length] = key;
    }
    return shown;
  },
  getOwnPropertyDescriptor(_shadow, key) {
    const descriptor = ReflectGetOwnPropertyDescriptor(real, key);
    if (descriptor === undefined || typeof key !== 'string') return descriptor;
    return visible(key, true) ? descriptor : undefined;
  },
  set(_shadow, key, value) {
    if (typeof key === 'string') {
      guardChange(key, 'write');
      if (!(key in real)) noteCreated(key);
    }
    return ReflectSet(real, key, value);
  },
  deleteProperty(_shadow, key) {
    if (typeof key === 'string') guardChange(key, 'delete');
    return ReflectDeleteProperty(real, key);
  },
  defineProperty(_shadow, key, descriptor) {
    if (typeof key === 'string') {
      guardChange(key, 'write');
      if (!(key in real)) noteCreated(key);
    }
    return ReflectDefineProperty(real, key, descriptor);
  },
};

/**
 * The Proxy's target is not the real env but this empty stand-in: `util.inspect` (and so `console.log`) formats
 * a Proxy's *target* without running any trap, which would print every secret. Inspecting the stand-in calls
 * its custom inspector with the Proxy as `this`, and that lists only what the caller may see.
 */
function shadowTarget(): Record<string, string | undefined> {
  const shadow = {} as Record<string, string | undefined>;
  ObjectDefineProperty(shadow, Symbol.for('nodejs.util.inspect.custom'), {
    configurable: true,
    enumerable: false,
    writable: false,
    value: function inspectEnvironment(
      this: Record<string, string | undefined>,
      _depth: number,
      options: object,
      inspect: Function,
    ) {
      const visibleCopy: Record<string, string | undefined> = {};
      for (const key of ObjectKeys(this)) visibleCopy[key] = this[key];
      return typeof inspect === 'function' ? inspect(visibleCopy, options) : visibleCopy;
    },
  });
  return shadow;
}

function noteCreated(name: string): void {
  created[name] = true;
  if (classes[name] !== undefined) {
    delete classes[name];
    classCount--;
  }
}

/** Replaces `process.env` with the filtering Proxy. Nothing to do when env is not checked (`allow` mode). */
export function installEnvGuard(): void {
  if (installed) return;
  const compiled = activePolicy()?.env;
  if (!compiled || compiled.mode === 'allow') return;
  const descriptor = ObjectGetOwnPropertyDescriptor(process, 'env');
  if (!descriptor?.configurable) {
    // Only code that ran before the guard could have locked it: refuse to start rather than leave env open.
    throw failClosed('env', new Error('process.env was locked before the guard started'));
  }
  installed = true;
  policy = compiled;
  const proxy = new ProxyCtor(shadowTarget(), handler);
  let current: unknown = proxy;
  ObjectDefineProperty(process, 'env', {
    enumerable: descriptor.enumerable ?? true,
    configurable: false,
    get() {
      return current;
    },
    set(value: unknown) {
      const error = deny('process.env', 'replace', null, 'replace');
      if (error) throw error;
      current = value;
    },
  });
}
