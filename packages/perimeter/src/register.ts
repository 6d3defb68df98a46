/**
 * The preload: `node --import perimeter/register`, `node --require perimeter/register` or
 * `NODE_OPTIONS="--import perimeter/register"`. CommonJS on purpose, so both flags load the same single copy and
 * it also works where only `--require` is honoured: `--import perimeter/register` resolves to dist/register.mjs,
 * a two-line ES module that requires this file (see scripts/bundle-runtime.mjs for why not this file directly).
 *
 * It loads the runtime (dist/perimeter.js) through a V8 code cache kept beside it: compiling and lazily
 * compiling the runtime's functions is about half of the guard's start, and a cache produced after a start
 * removes it. The cache is an optimisation only: V8 rejects one made for another source, V8 version or flag
 * set, and any problem falls back to a plain `require`. The loaded module is registered in `require.cache`, so
 * `require('perimeter')` and the adapters get this same instance, never a second guard.
 * `PERIMETER_CODE_CACHE=off` disables it. The cache lives only beside the runtime, never in a folder the
 * function may write (such as /tmp): V8 checks a cache against the source's length and its own version, not its
 * content, so a cache file is as trusted as perimeter.js itself. Where the code directory is read-only (Lambda's
 * /var/task), produce it at build time by starting the guard once with the target Node version.
 */
import fs from 'node:fs';
import type NodeModule from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

// This file's own module object is an instance of the class `node:module` exports: requiring that module would load
// the public module and its source-map support (0.1–0.4 ms of cold start) to hand back the same class.
const Module: typeof NodeModule =
  typeof (module.constructor as Partial<typeof NodeModule>).createRequire === 'function'
    ? (module.constructor as typeof NodeModule)
    : require('node:module');

interface Runtime {
  startFromEnvironment(): void;
}

const runtimeFile = path.join(__dirname, 'perimeter.js');

function cacheFile(): string | null {
  if (process.env.PERIMETER_CODE_CACHE === 'off') return null;
  return path.join(__dirname, `perimeter.js.${process.version}-${process.arch}.jscache`);
}

function loadRuntime(): Runtime {
  const existing = require.cache[runtimeFile];
  if (existing?.loaded) return existing.exports as Runtime;
  const cachePath = cacheFile();
  if (cachePath === null) return require(runtimeFile) as Runtime;
  let source: string;
  let cachedData: Buffer | undefined;
  try {
    source = fs.readFileSync(runtimeFile, 'utf8');
  } catch {
    return require(runtimeFile) as Runtime;
  }
  try {
    cachedData = fs.readFileSync(cachePath);
  } catch {
    cachedData = undefined;
  }
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source}\n})`;
  const script = new vm.Script(wrapped, { filename: runtimeFile, cachedData });
  const module = new Module(runtimeFile, require.main ?? undefined) as NodeModule & { paths: string[] };
  module.filename = runtimeFile;
  module.paths = (Module as any)._nodeModulePaths(__dirname);
  // Registered before it runs, as Node does: a require cycle back into the runtime gets this instance.
  require.cache[runtimeFile] = module;
  try {
    const run = script.runInThisContext() as Function;
    run.call(module.exports, module.exports, Module.createRequire(runtimeFile), module, runtimeFile, __dirname);
    module.loaded = true;
  } catch (error) {
    delete require.cache[runtimeFile];
    throw error;
  }
  if (cachedData === undefined || script.cachedDataRejected) refreshCacheLater(script, cachePath);
  return module.exports as Runtime;
}

/**
 * After the start, when the runtime's start-up functions are compiled, so the cache holds them too. Written to
 * a temporary name and renamed, so a reader never sees half a cache; any failure (a read-only directory) is
 * silently left: the next start simply compiles again.
 */
function refreshCacheLater(script: vm.Script, cachePath: string): void {
  // Captured before the guard patches fs: the guard writes its own cache file, which no policy names. These
  // reach the file system directly (writeFileSync would go through the public, guarded openSync).
  const { openSync, writeSync, closeSync, renameSync } = fs;
  let done = false;
  const write = () => {
    if (done) return;
    done = true;
    try {
      const temporary = `${cachePath}.${process.pid}.tmp`;
      const data = script.createCachedData();
      const fd = openSync(temporary, 'w', 0o644);
      try {
        let offset = 0;
        while (offset < data.length) offset += writeSync(fd, data, offset, data.length - offset);
      } finally {
        closeSync(fd);
      }
      renameSync(temporary, cachePath);
    } catch {
      // Best effort by design.
    }
  };
  // On the next turn of the event loop, or at exit for a process that never gets there.
  setImmediate(write).unref();
  process.once('exit', write);
}

loadRuntime().startFromEnvironment();
