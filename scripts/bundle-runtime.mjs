/**
 * Bundles the runtime into one file after `tsc` has compiled it. Loading ~25 small CommonJS modules costs a few
 * milliseconds of cold start (a stat, a read and a compile each); one minified file costs well under one.
 *
 *   dist/perimeter.js  the runtime (what `require('perimeter')` / `import 'perimeter'` load)
 *   dist/process-guard.js  the child-process guard, loaded at the first use of child_process (see
 *                      intercept/process-guard-loader.ts)
 *   dist/register.js   the preload: a few lines that call into dist/perimeter.js
 *   dist/register.mjs  its `--import` entry: requires dist/register.js
 *   dist/<adapter>.js  perimeter/lambda, /netlify, /middy, /gcf: small files that call into it too
 *
 * All entry points share dist/perimeter.js, so the preload and the public API are one instance with one state.
 * The per-module files tsc writes beside them stay for type declarations and for white-box tests.
 */

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { build } from 'esbuild';

const dist = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../packages/perimeter/dist');
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Not minified. A blocked operation that nobody catches makes Node print the source line it was thrown from:
  // from a whitespace-minified bundle that line is the whole runtime (~100 KB in the function's logs), and
  // minified names make the guard's frames unreadable to the engineer looking at them. Syntax minification
  // would also hide the named exports from Node's CommonJS lexer (`import { guard } from 'perimeter'`).
  minifyWhitespace: false,
  minifyIdentifiers: false,
  legalComments: 'none',
  logLevel: 'warning',
};

// The child-process guard is its own chunk (below), loaded by intercept/process-guard-loader.js when child_process
// is first handed out; the unbundled require of it there is left out of the bundle (and never runs in it).
const leaveOutProcessGuard = {
  name: 'leave-out-process-guard',
  setup(b) {
    b.onResolve({ filter: /^\.\/child_process\.js$/ }, (args) =>
      args.importer.endsWith('process-guard-loader.js')
        ? { path: './intercept/child_process.js', external: true }
        : undefined,
    );
  },
};
await build({
  ...common,
  entryPoints: [join(dist, 'index.js')],
  outfile: join(dist, 'perimeter.js'),
  define: { PERIMETER_BUNDLED: 'true' },
  // The bundle's own CommonJS module object, named outside every bundled module (inside them `module` is esbuild's
  // stand-in): pristine.ts takes Node's Module class from it instead of loading `node:module`. The banner comes
  // before esbuild's "use strict", so it repeats the directive to keep the whole file strict.
  banner: {
    js: '"use strict";\nvar PERIMETER_NODE_MODULE = typeof module === "object" && module !== null ? module : void 0;',
  },
  plugins: [leaveOutProcessGuard],
});

// dist/process-guard.js: the child-process guard. Its own modules are bundled into it; every other runtime module
// it imports is the main bundle's instance, handed to it by the loader under the name `perimeter:<path>` (the
// loader's SHARED table), so there is one state. An import the loader does not share fails the build.
const PROCESS_GUARD_MODULES = new Set(['intercept/child_process.js', 'policy/process.js', 'policy/shell.js']);
const sharedWithProcessGuard = new Set();
await build({
  ...common,
  entryPoints: [join(dist, 'intercept/child_process.js')],
  outfile: join(dist, 'process-guard.js'),
  plugins: [
    {
      name: 'process-guard-shares-runtime',
      setup(b) {
        b.onResolve({ filter: /^\.\.?\// }, (args) => {
          const target = relative(dist, resolve(args.resolveDir, args.path)).split(sep).join('/');
          if (PROCESS_GUARD_MODULES.has(target)) return undefined;
          sharedWithProcessGuard.add(target);
          return { path: `perimeter:${target}`, external: true };
        });
      },
    },
  ],
});
const loaderSource = readFileSync(join(dist, 'intercept/process-guard-loader.js'), 'utf8');
for (const target of sharedWithProcessGuard) {
  if (!loaderSource.includes(`'perimeter:${target}'`)) {
    throw new Error(
      `dist/process-guard.js imports ${target}, which intercept/process-guard-loader.ts does not share: add it to SHARED`,
    );
  }
}

// The preload imports the runtime through './index.js'; point that at the bundle instead of inlining a second copy.
const useBundle = {
  name: 'use-runtime-bundle',
  setup(b) {
    b.onResolve({ filter: /^\.\/(index|perimeter)\.js$/ }, () => ({ path: './perimeter.js', external: true }));
  },
};
await build({
  ...common,
  minifyWhitespace: false,
  minifyIdentifiers: false,
  entryPoints: [join(dist, 'register.js')],
  outfile: join(dist, 'register.js'),
  allowOverwrite: true,
  plugins: [useBundle],
});

// dist/register.mjs: what `--import perimeter/register` resolves to (the exports map's "import" condition). Importing
// the CommonJS preload itself makes the ESM loader of Node 20 and 22 load its CommonJS export lexer just to list
// the preload's exports (~1 ms of cold start, unless the handler imports CommonJS anyway); requiring it from a
// small ES module skips that, and loads the same single copy `--require` loads (one require.cache entry, so both
// flags together still start one guard). It takes createRequire from process.getBuiltinModule rather than an import
// of node:module: an ESM import would freeze that module's named exports before the guard patches Module._load
// (Node 20), leaving them to a later sync. Node < 20.16 has no getBuiltinModule and imports it.
writeFileSync(
  join(dist, 'register.mjs'),
  `// Generated by scripts/bundle-runtime.mjs: the --import entry of dist/register.js (see there).
const { createRequire } = process.getBuiltinModule?.('node:module') ?? (await import('node:module'));

createRequire(import.meta.url)('./register.js');
`,
);

// Adapters (`perimeter/lambda`, …): each is its own small file that uses the runtime through '../index.js', pointed
// at the bundle like the preload's. Any other import of runtime internals would inline a second copy of the runtime
// (a second state, a second set of interceptors), so it fails the build.
const ADAPTERS = ['lambda', 'netlify', 'middy', 'gcf'];
const adapterUsesBundle = {
  name: 'adapter-uses-runtime-bundle',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\/(index|perimeter)\.js$/ }, () => ({ path: './perimeter.js', external: true }));
    // The inspector is stateless, but a copy in every adapter would be ~70 KB each: they require the one bundle.
    b.onResolve({ filter: /^\.\.\/inspector\/index\.js$/ }, () => ({ path: './inspector.js', external: true }));
    b.onResolve({ filter: /^\.\.\// }, (args) => ({
      errors: [
        { text: `adapter ${args.importer} imports ${args.path}: import the runtime only through '../index.js'` },
      ],
    }));
  },
};
for (const name of ADAPTERS) {
  const entry = join(dist, 'adapters', `${name}.js`);
  if (!existsSync(entry)) continue;
  await build({
    ...common,
    minifyWhitespace: false,
    minifyIdentifiers: false,
    entryPoints: [entry],
    outfile: join(dist, `${name}.js`),
    plugins: [adapterUsesBundle],
  });
}

// dist/inspector.js (`perimeter/inspector`): the event inspector. It holds no state and never touches the guard's
// (it only borrows the pure host normaliser), so, unlike the adapters, it is bundled self-contained.
if (existsSync(join(dist, 'inspector/index.js'))) {
  await build({
    ...common,
    entryPoints: [join(dist, 'inspector/index.js')],
    outfile: join(dist, 'inspector.js'),
  });
}
