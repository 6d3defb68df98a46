/**
 * Bundles the runtime into one file after `tsc` has compiled it. Loading ~25 small CommonJS modules costs a few
 * milliseconds of cold start (a stat, a read and a compile each); one minified file costs well under one.
 *
 *   dist/perimeter.js  the whole runtime (what `require('perimeter')` / `import 'perimeter'` load)
 *   dist/register.js   the preload: a few lines that call into dist/perimeter.js
 *   dist/<adapter>.js  perimeter/lambda, /netlify, /middy, /gcf: small files that call into it too
 *
 * All entry points share dist/perimeter.js, so the preload and the public API are one instance with one state.
 * The per-module files tsc writes beside them stay for type declarations and for white-box tests.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const dist = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../packages/perimeter/dist');
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  // Not `minify: true`: Node finds the named exports of a CommonJS file (`import { guard } from 'perimeter'`) by
  // lexing its source, and the lexer gives up on esbuild's syntax minification. Whitespace and identifiers only:
  // ~5% larger, and ESM named imports work.
  minifyWhitespace: true,
  minifyIdentifiers: true,
  legalComments: 'none',
  logLevel: 'warning',
};

await build({ ...common, entryPoints: [join(dist, 'index.js')], outfile: join(dist, 'perimeter.js') });

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

// Adapters (`perimeter/lambda`, …): each is its own small file that uses the runtime through '../index.js', pointed
// at the bundle like the preload's. Any other import of runtime internals would inline a second copy of the runtime
// (a second state, a second set of interceptors), so it fails the build.
const ADAPTERS = ['lambda', 'netlify', 'middy', 'gcf'];
const adapterUsesBundle = {
  name: 'adapter-uses-runtime-bundle',
  setup(b) {
    b.onResolve({ filter: /^\.\.?\/(index|perimeter)\.js$/ }, () => ({ path: './perimeter.js', external: true }));
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
