/**
 * How the guard replaces a built-in function without changing how it looks or how others may extend it.
 *
 * - The wrapper keeps the original's `name`, `length`, prototype and own properties (`util.promisify.custom`,
 *   Node's custom promisify argument lists), and works with `new`.
 * - The property becomes a non-configurable accessor: it cannot be deleted or redefined, and assigning to it
 *   (APM agents and test tools wrap `http.request` this way) stores the new function *behind* the guard, so
 *   the check still runs first. A dependency that assigns an old reference back gains nothing.
 */
import {
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ReflectApply,
  ReflectOwnKeys,
  SafeWeakSet,
  WeakSetAdd,
  WeakSetHas,
} from '../pristine.js';

const wrappers = new SafeWeakSet<Function>();

export function isGuardWrapper(fn: unknown): boolean {
  return typeof fn === 'function' && WeakSetHas(wrappers, fn);
}

/** Gives `wrapper` the outward shape of `original` and remembers it as one of ours. */
export function disguise<T extends Function>(wrapper: T, original: Function): T {
  const keys = ReflectOwnKeys(original);
  // An index loop: patches are applied lazily, after dependencies ran, and `for…of` uses the replaceable iterator.
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (key === 'arguments' || key === 'caller') continue;
    const descriptor = ObjectGetOwnPropertyDescriptor(original, key)!;
    const existing = ObjectGetOwnPropertyDescriptor(wrapper, key);
    if (existing && !existing.configurable) continue;
    ObjectDefineProperty(wrapper, key, descriptor);
  }
  WeakSetAdd(wrappers, wrapper);
  return wrapper;
}

/**
 * Replaces `target[key]` with `wrap(original)` and keeps it guarded against reassignment and redefinition.
 * `writable` leaves a plain writable data property instead, for the few places Node itself re-assigns
 * (dns re-binds its module functions in `setServers`).
 */
export function guardProperty(
  target: object,
  key: PropertyKey,
  wrap: (original: Function) => Function,
  options: { writable?: boolean } = {},
): void {
  const descriptor = ObjectGetOwnPropertyDescriptor(target, key);
  if (!descriptor) return;
  const original = descriptor.get ? ReflectApply(descriptor.get, target, []) : descriptor.value;
  if (typeof original !== 'function' || isGuardWrapper(original)) return;
  if (options.writable) {
    ObjectDefineProperty(target, key, {
      value: disguise(wrap(original), original),
      writable: true,
      enumerable: descriptor.enumerable,
      configurable: true,
    });
    return;
  }
  // The wrapper is made on first read: most guarded functions (a hundred in fs alone) are never used by a given
  // function, and disguising each one at start costs cold-start time. The original is held from now on.
  let current: unknown;
  let made = false;
  ObjectDefineProperty(target, key, {
    enumerable: descriptor.enumerable,
    configurable: false,
    get() {
      if (!made) {
        current = disguise(wrap(original), original);
        made = true;
      }
      return current;
    },
    set(this: object, value: unknown) {
      const guarded = typeof value === 'function' && !isGuardWrapper(value) ? disguise(wrap(value), value) : value;
      if (this === target) {
        current = guarded;
        made = true;
      }
      // Assignment on an instance (`socket.connect = fn`) shadows the prototype for that instance only.
      else ObjectDefineProperty(this, key, { value: guarded, writable: true, enumerable: true, configurable: true });
    },
  });
}

/** Makes sure an `error` event cannot crash the process when the caller attached no listener. */
export function failWith(
  emitter: {
    emit(e: string, ...a: unknown[]): boolean;
    listenerCount(e: string): number;
    once(e: string, f: () => void): unknown;
  },
  err: Error,
): void {
  if (emitter.listenerCount('error') === 0) emitter.once('error', ignore);
  emitter.emit('error', err);
}

function ignore(): void {}

/**
 * A plain copy of an options object with every enumerable property (own and inherited) read exactly once, for
 * the check and the real call to share: getters cannot show the check one value and Node another.
 */
export function snapshotOptions(options: object): Record<string, unknown> {
  const copy: Record<string, unknown> = {};
  for (const key in options) copy[key] = (options as Record<string, unknown>)[key];
  return copy;
}
