/**
 * Tamper detection: what the guard cannot prevent in-process, it notices and reports as a `tamper` event.
 *
 * The guard's own decisions do not depend on anything listed here (it calls the pristine copies captured in
 * pristine.ts). But a dependency that replaces `Function.prototype.call`, `Map.prototype.get` or the array
 * iterator is trying to change somebody's decisions, maybe another security tool's or the app's, and a
 * dependency that makes `Error.prepareStackTrace` read-only is trying to blind attribution. Such changes cannot
 * be forbidden without freezing the built-ins, which breaks polyfills, so they are reported instead:
 *
 * - a snapshot of the built-in methods and properties below is taken when the guard starts;
 * - it is compared at the next check after at least `CHECK_INTERVAL_MS` (cheap: one clock read per check),
 *   on an unref'd timer, at exit, and whenever an adapter calls `verifyIntegrity()` between invocations;
 * - each changed entry is reported once, with the property that changed (values are never logged).
 */
import { emit } from './events.js';
import {
  DateNow,
  MapGet,
  MapSet,
  ObjectGetOwnPropertyDescriptor,
  ObjectGetPrototypeOf,
  ReflectOwnKeys,
  SafeMap,
  setImmediatePristine,
} from './pristine.js';

interface Watched {
  label: string;
  target: object;
  key: PropertyKey;
  value: unknown;
  get: unknown;
  set: unknown;
  writable: boolean | undefined;
}

const watched: Watched[] = [];
const reported = new SafeMap<string, true>();
let lastCheck = 0;
const CHECK_INTERVAL_MS = 1000;

function watch(label: string, target: object | undefined, keys?: readonly PropertyKey[]): void {
  if (target === undefined || target === null) return;
  const list = keys ?? ReflectOwnKeys(target);
  for (let i = 0; i < list.length; i++) {
    const key = list[i]!;
    const descriptor = ObjectGetOwnPropertyDescriptor(target, key);
    if (!descriptor) continue;
    // Only functions and the Error knobs attribution relies on: data like `Array.prototype.length` is noise.
    if (descriptor.value !== undefined && typeof descriptor.value !== 'function' && label !== 'Error') continue;
    watched[watched.length] = {
      label: `${label}.${typeof key === 'symbol' ? `[${key.description}]` : key}`,
      target,
      key,
      value: descriptor.value,
      get: descriptor.get,
      set: descriptor.set,
      writable: descriptor.writable,
    };
  }
}

/** Takes the snapshot. Called once, when the guard starts and before any dependency has run. */
export function startIntegrityWatch(): void {
  if (watched.length > 0) return;
  const arrayIterator = ObjectGetPrototypeOf([][Symbol.iterator]());
  const mapIterator = ObjectGetPrototypeOf(new Map()[Symbol.iterator]());
  watch('Function.prototype', Function.prototype, ['call', 'apply', 'bind', 'toString', Symbol.hasInstance]);
  watch('Reflect', Reflect);
  watch('Object', Object, [
    'defineProperty',
    'defineProperties',
    'getOwnPropertyDescriptor',
    'getPrototypeOf',
    'setPrototypeOf',
    'freeze',
    'keys',
    'entries',
    'assign',
    'hasOwn',
  ]);
  watch('Array.prototype', Array.prototype);
  watch('ArrayIterator', arrayIterator, ['next']);
  watch('MapIterator', mapIterator, ['next']);
  watch('String.prototype', String.prototype);
  watch('RegExp.prototype', RegExp.prototype, ['exec', 'test', Symbol.replace, Symbol.split, Symbol.match]);
  watch('Map.prototype', Map.prototype);
  watch('Set.prototype', Set.prototype);
  watch('WeakMap.prototype', WeakMap.prototype);
  watch('WeakSet.prototype', WeakSet.prototype);
  watch('JSON', JSON, ['stringify', 'parse']);
  watch('Promise.prototype', Promise.prototype, ['then']);
  watch('Error', Error, ['captureStackTrace', 'prepareStackTrace', 'stackTraceLimit']);
  watch('globalThis', globalThis, ['Error', 'Reflect', 'Function', 'Object', 'Proxy']);
  lastCheck = DateNow();
  const timer = setInterval(verifyIntegrity, 5000);
  timer.unref();
}

/** Watches a property the guard installed after startup (`process.env` once its proxy is in place). */
export function watchProperty(label: string, target: object, key: PropertyKey): void {
  const before = watched.length;
  watch(label, target, [key]);
  const added = watched[before];
  if (added) added.label = label;
}

function changed(entry: Watched): boolean {
  const now = ObjectGetOwnPropertyDescriptor(entry.target, entry.key);
  if (!now) return true;
  if (entry.label === 'Error.prepareStackTrace' || entry.label === 'Error.stackTraceLimit') {
    // Their values change legitimately (source-map tools set prepareStackTrace); an accessor or a read-only
    // property is what blinds attribution.
    return now.get !== undefined || now.set !== undefined || now.writable !== true;
  }
  return now.value !== entry.value || now.get !== entry.get || now.set !== entry.set;
}

/** Compares the snapshot with the present and reports each new change once. Returns how many were found. */
export function verifyIntegrity(): number {
  lastCheck = DateNow();
  let found = 0;
  for (let i = 0; i < watched.length; i++) {
    const entry = watched[i]!;
    let isChanged: boolean;
    try {
      isChanged = changed(entry);
    } catch {
      isChanged = true;
    }
    if (!isChanged) continue;
    found++;
    if (MapGet(reported, entry.label)) continue;
    MapSet(reported, entry.label, true);
    emit({
      type: 'tamper',
      capability: 'integrity',
      action: 'observed',
      target: entry.label,
      package: 'unknown',
      reason: 'builtin-replaced',
      detail: `${entry.label} no longer is what it was when the guard started`,
    });
  }
  return found;
}

/** Called from the hot path: verifies at most once per interval, deferred so the operation is not slowed. */
export function maybeVerifyIntegrity(): void {
  if (DateNow() - lastCheck < CHECK_INTERVAL_MS) return;
  lastCheck = DateNow();
  setImmediatePristine(verifyIntegrity).unref();
}
