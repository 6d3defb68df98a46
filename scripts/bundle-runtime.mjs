/**
 * Bundles the runtime into one file after `tsc` has compiled it. Loading ~25 small CommonJS modules costs a few
 * milliseconds of cold start (a stat, a read and a compile each); one minified file costs well under one.
 *
 *   dist/perimeter.js  the whole runtime (what `require('perimeter')` / `import 'perimeter'` load)
 *   dist/register.js   the preload: a few lines that call into dist/perimeter.js
 *
 * Both entry points share dist/perimeter.js, so the preload and the public API are one instance with one state.
 * The per-module files tsc writes beside them stay for type declarations and for white-box tests.
 */

import { join } from 'node:path';
import { build } from 'esbuild';

const dist = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../packages/perimeter/dist');
const common = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  minify: true,
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
  minify: false,
  entryPoints: [join(dist, 'register.js')],
  outfile: join(dist, 'register.js'),
  allowOverwrite: true,
  plugins: [useBundle],
});
