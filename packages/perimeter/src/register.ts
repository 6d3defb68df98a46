/**
 * The preload: `node --import perimeter/register`, `node --require perimeter/register` or
 * `NODE_OPTIONS="--import perimeter/register"`. It is CommonJS on purpose, so both flags load the same single
 * copy and it also works where only `--require` is honoured. The build points `./index.js` at the bundled
 * runtime (scripts/bundle-runtime.mjs), so this file stays tiny.
 */
import { startFromEnvironment } from './index.js';

startFromEnvironment();
