/**
 * How the guard replaces a built-in function without changing how it looks or how others may extend it.
 *
 * - The wrapper keeps the original's `name`, `length`, prototype and own properties (`util.promisify.custom`,
 *   Node's custom promisify argument lists), and works with `new`.
 * - The property becomes a non-configurable accessor: it cannot be deleted or redefined, and assigning to it
 *   (APM agents and test tools wrap `http.request` this way) stores the new function *behind* the guard, so
 *   the check still runs first. A dependency that assigns an old reference back gains nothing.
 */
import { ObjectDefineProperty, ObjectGetOwnPropertyDescriptor, ReflectOwnKeys, SafeWeakSet } from '../pristine.js';

const wrappers = new SafeWeakSet<Function>();

export function isGuardWrapper(fn: unknown): boolean {
  return typeof fn === 'function' && wrappers.has(fn);
}

/** Gives `wrapper` the outward shape of `original` and remembers it as one of ours. */
export function disguise<T extends Function>(wrapper: T, original: Function): T {
  for (const key of ReflectOwnKeys(original)) {
    if (key === 'arguments' || key === 'caller') continue;
    const descriptor = ObjectGetOwnPropertyDescriptor(original, key)!;
    const existing = ObjectGetOwnPropertyDescriptor(wrapper, key);
    if (existing && !existing.configurable) continue;
    ObjectDefineProperty(wrapper, key, descriptor);
  }
  wrappers.add(wrapper);
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
  const original = descriptor.get ? descriptor.get.call(target) : descriptor.value;
  if (typeof original !== 'function' || isGuardWrapper(original)) return;
  let current = disguise(wrap(original), original);
  if (options.writable) {
    ObjectDefineProperty(target, key, {
      value: current,
      writable: true,
      enumerable: descriptor.enumerable,
      configurable: true,
    });
    return;
  }
  ObjectDefineProperty(target, key, {
    enumerable: descriptor.enumerable,
    configurable: false,
    get() {
      return current;
    },
    set(this: object, value: unknown) {
      const guarded = typeof value === 'function' && !isGuardWrapper(value) ? disguise(wrap(value), value) : value;
      if (this === target) current = guarded as Function;
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
