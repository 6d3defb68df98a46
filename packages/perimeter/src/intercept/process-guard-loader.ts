/**
 * The child-process guard (intercept/child_process.ts, policy/process.ts, policy/shell.ts: a third of the runtime)
 * is needed only once child_process is handed to user code, so the bundle leaves it out: scripts/bundle-runtime.mjs
 * builds it as dist/process-guard.js, whose imports of the rest of the runtime come from the modules below, the
 * very instances the main bundle uses (one state, one set of interceptors).
 *
 * It is read and compiled with functions captured at start, not `require`d: a dependency that planted an entry in
 * `require.cache` or wrapped `Module._load` would otherwise supply its own "guard". Policy validation and the
 * compilation of `process.allow` stay in the main bundle (policy/process-rules.ts), so a bad policy still stops the
 * function before its handler loads.
 */
import * as attribution from '../attribution.js';
import * as guard from '../guard.js';
import * as glob from '../policy/glob.js';
import * as processRules from '../policy/process-rules.js';
import * as pristine from '../pristine.js';
import {
  fsReadFileSync,
  getBuiltinModule,
  ObjectHasOwn,
  ownDirectory,
  pathJoin,
  ReflectApply,
  StringStartsWith,
} from '../pristine.js';
import * as patch from './patch.js';
import * as spawnCaptures from './spawn-captures.js';

type ProcessGuard = typeof import('./child_process.js');

/** Replaced by `true` when scripts/bundle-runtime.mjs builds dist/perimeter.js. */
declare const PERIMETER_BUNDLED: boolean | undefined;

/** The runtime modules the chunk imports, by their path under dist/ (the bundle script checks it against this). */
const SHARED: Record<string, unknown> = {
  __proto__: null,
  'perimeter:attribution.js': attribution,
  'perimeter:guard.js': guard,
  'perimeter:policy/glob.js': glob,
  'perimeter:policy/process-rules.js': processRules,
  'perimeter:pristine.js': pristine,
  'perimeter:intercept/patch.js': patch,
  'perimeter:intercept/spawn-captures.js': spawnCaptures,
} as Record<string, unknown>;

let compileFunction: typeof import('node:vm').compileFunction | null = null;

/**
 * Takes `vm.compileFunction` while no user code can have replaced it: when vm is first handed out (install.ts
 * calls this before it does), or when the chunk loads if nobody has asked for vm by then. Loading vm at start
 * would cost ~0.1 ms for a capability most functions never use.
 */
export function captureCompileFunction(): void {
  compileFunction ??= (getBuiltinModule('vm') as typeof import('node:vm')).compileFunction;
}

function sharedRequire(id: string): unknown {
  if (ObjectHasOwn(SHARED, id)) return SHARED[id];
  if (typeof id === 'string' && StringStartsWith(id, 'node:')) return getBuiltinModule(id);
  throw new Error(`the process guard imports ${String(id)}, which the runtime does not share with it`);
}

let loaded: ProcessGuard | null = null;

export function loadProcessGuard(): ProcessGuard {
  if (loaded !== null) return loaded;
  if (typeof PERIMETER_BUNDLED !== 'boolean' || !PERIMETER_BUNDLED) {
    // The unbundled build (white-box tests, profiling): the modules are separate files anyway.
    loaded = require('./child_process.js') as ProcessGuard;
    return loaded;
  }
  const file = pathJoin(ownDirectory, 'process-guard.js');
  captureCompileFunction();
  const factory = compileFunction!(fsReadFileSync(file, 'utf8'), ['exports', 'require', 'module'], { filename: file });
  const chunk = { exports: {} as ProcessGuard };
  ReflectApply(factory, undefined, [chunk.exports, sharedRequire, chunk]);
  loaded = chunk.exports;
  return loaded;
}
