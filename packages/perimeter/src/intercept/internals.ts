/**
 * Node's raw internals and native code: `process.binding`, `process._linkedBinding` and `process.dlopen`.
 *
 * - `process.binding('tcp_wrap' | 'fs' | 'spawn_sync' | …)` returns the C++ objects the public modules are built
 *   on; with them a dependency connects, reads files and runs programs without touching anything we patch
 *   (measured: raw tcp_wrap connect, fs open and spawn_sync all work unguarded on Node 20–26). The raw bindings
 *   are denied unless the capability they bypass is not checked at all; the harmless ones (buffer, os, util…)
 *   still work. A denial throws, like `process.binding` does for a module it does not know.
 * - `process._linkedBinding` only reaches modules an embedder linked in; plain Node has none, but an embedder's
 *   binding is as opaque as an addon, so it is judged as one.
 * - `process.dlopen` is how every native addon is loaded: `require('x.node')` calls it at call time. The real
 *   path of the file is judged before Node opens it.
 * - `internalBinding` is not reachable from user code (confirmed on 20–26: no global, `internal/*` ids are not
 *   resolvable) unless Node runs with `--expose-internals`, which the worker wrapper refuses for workers.
 */
import { callerPackages, UNKNOWN } from '../attribution.js';
import type { PerimeterError } from '../errors.js';
import { activePolicy, failClosed, reportDenial, stopRememberingWritablePaths } from '../guard.js';
import { forgetPlatformAddonAfterLoad, isPlatformAddonLoad } from '../platform.js';
import { evaluateAddon, evaluateWorker, rawBindingCapability, rawBindingMode } from '../policy/runtime-caps.js';
import { fsRealpathSync, getBuiltinModule, pathResolve, ReflectApply } from '../pristine.js';
import { guardProperty } from './patch.js';

export function callerPackagesOrUnknown(): string[] {
  try {
    return callerPackages();
  } catch {
    return [UNKNOWN];
  }
}

/** Decides starting a worker. `forbiddenFlags` and `nodeOptionsChanged` deny it whatever the mode says. */
export function checkWorker(
  target: string,
  forbiddenFlags: readonly string[],
  nodeOptionsChanged: boolean,
  reason?: string,
): PerimeterError | null {
  const policy = activePolicy();
  if (policy === null) return null;
  try {
    if (forbiddenFlags.length > 0 || nodeOptionsChanged) {
      return reportDenial(
        'block',
        {
          capability: 'worker',
          target:
            forbiddenFlags.length > 0 ? `${target} ${forbiddenFlags.join(' ')}` : `${target} (NODE_OPTIONS changed)`,
          reason: forbiddenFlags.length > 0 ? 'forbidden-flag' : 'node-options-changed',
          key: 'worker',
          suggestion: 'nothing: a worker may not be started with these flags or with a changed NODE_OPTIONS',
        },
        callerPackagesOrUnknown(),
      );
    }
    const rules = policy.worker;
    const verdict = evaluateWorker(rules);
    if (verdict.allowed) return null;
    return reportDenial(
      rules.mode,
      {
        capability: 'worker',
        target,
        reason: reason ?? verdict.reason,
        key: 'worker.allow',
        suggestion: 'true',
      },
      callerPackagesOrUnknown(),
    );
  } catch (cause) {
    return failClosed('worker', cause);
  }
}

/** The real path of an addon, without reading it; the resolved path when it does not exist. */
function realPath(file: string): string {
  const resolved = pathResolve(file);
  try {
    return fsRealpathSync(resolved);
  } catch {
    return resolved;
  }
}

/** Set by checkAddon for the one load of Lambda's runtime client addon (platform.ts), read by the dlopen wrapper. */
let loadingPlatformAddon = false;

export function checkAddon(file: string): PerimeterError | null {
  const policy = activePolicy();
  if (policy === null) return null;
  try {
    const rules = policy.addon;
    if (rules.mode === 'allow') return null;
    const real = realPath(file);
    const verdict = evaluateAddon(rules, real);
    if (verdict.allowed) return null;
    // Lambda's runtime loading its own rapid-client.node (platform.ts); a dependency loading it is still judged.
    if (isPlatformAddonLoad(real, callerPackagesOrUnknown())) {
      forgetPlatformAddonAfterLoad(real);
      loadingPlatformAddon = true;
      return null;
    }
    return reportDenial(
      rules.mode,
      { capability: 'addon', target: real, reason: verdict.reason, key: 'addon.allow', suggestion: real },
      callerPackagesOrUnknown(),
    );
  } catch (cause) {
    return failClosed('addon', cause);
  }
}

function checkBinding(name: string, via: string): PerimeterError | null {
  const policy = activePolicy();
  if (policy === null) return null;
  try {
    const capability = rawBindingCapability(name);
    if (capability === null) return null;
    const mode = rawBindingMode(policy.document, policy.mode, capability);
    if (mode === 'allow') return null;
    return reportDenial(
      mode,
      {
        capability,
        target: name === 'inspector' && via !== 'process.binding' ? via : `${via}('${name}')`,
        reason: 'raw-binding',
        key: capability === 'internals' ? 'mode' : `${capability}.mode`,
        suggestion: 'allow',
      },
      callerPackagesOrUnknown(),
    );
  } catch (cause) {
    return failClosed(rawBindingCapability(name) ?? 'internals', cause);
  }
}

let patched = false;

export function patchInternals(proc: NodeJS.Process): void {
  if (patched) return;
  patched = true;
  const anyProcess = proc as any;
  for (const via of ['binding', '_linkedBinding'] as const) {
    guardProperty(
      anyProcess,
      via,
      (original) =>
        function binding(this: unknown, module: unknown) {
          // Converted once: an object whose toString answers differently the second time must not pass the
          // check as `os` and load `fs`.
          const name = `${module}`;
          const denied = via === 'binding' ? checkBinding(name, 'process.binding') : checkLinkedBinding(name);
          if (denied) throw denied;
          // A raw binding that does I/O (or an embedder's) changes the file system past the fs guard.
          if (via === '_linkedBinding' || rawBindingCapability(name) !== null) stopRememberingWritablePaths();
          return ReflectApply(original, this, [name]);
        },
    );
  }
  guardProperty(
    anyProcess,
    'dlopen',
    (original) =>
      function dlopen(this: unknown, module: unknown, filename: unknown, ...rest: unknown[]) {
        const file = `${filename}`;
        const denied = checkAddon(file);
        if (denied) throw denied;
        // Native code does what it likes with the file system. Lambda's own client addon is not counted.
        if (!loadingPlatformAddon) stopRememberingWritablePaths();
        loadingPlatformAddon = false;
        return ReflectApply(original, this, [module, file, ...rest]);
      },
  );
}

/**
 * `node:inspector`: a session on the inspector can pause inside Node's own modules and evaluate code there, where
 * their raw bindings are in scope (measured: a breakpoint on `fs.fstatSync` hands out lib/fs.js's `binding`, whose
 * `open` reads any file past the fs guard). Connecting a session and opening the inspector port are judged like a
 * raw binding (`internals`: denied unless the top-level mode is `allow`). Profilers that use the inspector need
 * `"mode": "alert"` or `"allow"`. Patched when the module is first handed out; on Node 20 an ESM import of
 * `node:inspector` is not seen (loading it eagerly costs ~2.6 ms of cold start), see docs/threat-model.md.
 */
export function patchInspector(inspector: typeof import('node:inspector')): void {
  const guardConnect = (target: object, key: string, via: string) =>
    guardProperty(
      target,
      key,
      (original) =>
        function (this: unknown, ...args: unknown[]) {
          const denied = checkBinding('inspector', via);
          if (denied) throw denied;
          // A session can evaluate code where Node's raw fs binding is in scope.
          stopRememberingWritablePaths();
          return ReflectApply(original, this, args);
        },
    );
  guardConnect(inspector.Session.prototype, 'connect', 'inspector.Session.connect');
  guardConnect(inspector.Session.prototype, 'connectToMainThread', 'inspector.Session.connectToMainThread');
  guardConnect(inspector, 'open', 'inspector.open');
}

/**
 * `module.register` starts module customization hooks on a loader thread of their own, started inside Node where
 * the worker wrapper never sees it, and the guard does not run there (measured: its fs reads ~/.npmrc unjudged,
 * Node 20 and 24). So starting loader hooks is judged like starting a worker (`worker.allow`, reason
 * `loader-hooks`), and throws when denied, as `register` does for a hook module it cannot load. Once allowed, the
 * thread may change the file system unseen: remembered reads of writable paths stop. `module.registerHooks` runs
 * its hooks synchronously on the calling thread, under the guard, and is not judged. The same function is reached
 * as `require('node:module').register`, `Module.register` (`module.constructor`), and the ESM export (kept in step
 * by syncBuiltinESMExports).
 */
export function patchModuleRegister(moduleExports: object = getBuiltinModule('module')): void {
  // pristine.ts has loaded node:module already (syncBuiltinESMExports), so the default costs nothing at start.
  if (typeof (moduleExports as { register?: unknown }).register !== 'function') return;
  guardProperty(
    moduleExports,
    'register',
    (original) =>
      function register(this: unknown, ...args: unknown[]) {
        let specifier: string;
        try {
          specifier = typeof args[0] === 'string' ? args[0] : `${args[0]}`;
        } catch {
          specifier = '<unprintable>';
        }
        const denied = checkWorker(`module.register(${specifier})`, [], false, 'loader-hooks');
        if (denied) throw denied;
        stopRememberingWritablePaths();
        return ReflectApply(original, this, args);
      },
  );
}

/** For built-ins that change the file system past every wrapper when loaded (install.ts: wasi, sqlite). */
export function unseenFileSystemChanges(): void {
  stopRememberingWritablePaths();
}

/** A linked binding is native code the embedder added: an addon by another name. */
function checkLinkedBinding(name: string): PerimeterError | null {
  const policy = activePolicy();
  if (policy === null) return null;
  try {
    if (policy.addon.mode === 'allow') return null;
    return reportDenial(
      policy.addon.mode,
      {
        capability: 'addon',
        target: `process._linkedBinding('${name}')`,
        reason: 'linked-binding',
        key: 'addon.mode',
        suggestion: 'allow',
      },
      callerPackagesOrUnknown(),
    );
  } catch (cause) {
    return failClosed('addon', cause);
  }
}
