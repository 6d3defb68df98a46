/**
 * Bundled functions: a fixture function and its two dependencies bundled by the real esbuild (ESM and CommonJS
 * output) with `perimeter/esbuild`, deployed without node_modules, and run under the preload. A package rule that
 * narrows one dependency must still apply inside the bundle, and events must name that dependency. The same bundle
 * built without the plugin is the baseline: there every frame reads as the function's own code, so the package
 * rule cannot apply (the reason the plugin exists).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PACKAGE_ROOT, runGuarded, startRecordingServer, tempDir, writeTree } from '../helpers.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

const requireFromRepo = createRequire(resolve(PACKAGE_ROOT, '../../package.json'));
const esbuild = requireFromRepo('esbuild') as typeof import('esbuild');
const { perimeterPlugin } = require(join(PACKAGE_ROOT, 'dist/esbuild.js')) as typeof import('../../src/esbuild.js');

const SOURCES = {
  'node_modules/stripe-lite/package.json': '{"name":"stripe-lite","main":"index.js"}',
  'node_modules/stripe-lite/index.js': `const http = require('node:http');
exports.charge = (amount) => new Promise((resolve) => {
  const req = http.request(process.env.STRIPE_URL + '/v1/charges', { method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode); });
  req.on('error', (e) => resolve(e.code));
  req.end('amount=' + amount);
});`,
  'node_modules/leaky/package.json': '{"name":"leaky","main":"index.js"}',
  'node_modules/leaky/index.js': `const http = require('node:http');
exports.track = (data) => new Promise((resolve) => {
  const req = http.request(process.env.COLLECTOR_URL + '/leak', { method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode); });
  req.on('error', (e) => resolve(e.code));
  req.end(JSON.stringify(data));
});`,
  'src/main.js': `import http from 'node:http';
import { charge } from 'stripe-lite';
import { track } from 'leaky';
const ownCall = () => new Promise((resolve) => {
  const req = http.request(process.env.COLLECTOR_URL + '/own', { method: 'POST' }, (res) => { res.resume(); resolve(res.statusCode); });
  req.on('error', (e) => resolve(e.code));
  req.end('{}');
});
(async () => {
  const results = { charge: await charge(1), track: await track({ card: '4242' }), own: await ownCall() };
  console.log(JSON.stringify(results));
})();
`,
};

type Variant = { name: string; format: 'esm' | 'cjs'; outfile: string; plugin: boolean };

const VARIANTS: Variant[] = [
  { name: 'esm', format: 'esm', outfile: 'index.mjs', plugin: true },
  { name: 'cjs', format: 'cjs', outfile: 'index.cjs', plugin: true },
  { name: 'no-plugin', format: 'cjs', outfile: 'index.cjs', plugin: false },
];

describe('perimeter/esbuild: package identity in bundled functions', () => {
  let stripe: Server;
  let collector: Server;
  const runs = new Map<string, { code: number | null; stdout: string; stderr: string; events: any[]; dir: string }>();

  before(async () => {
    [stripe, collector] = await Promise.all([startRecordingServer(), startRecordingServer()]);
    const source = tempDir('perimeter-esbuild-src-');
    writeTree(source, SOURCES);
    for (const variant of VARIANTS) {
      // The deployment folder holds the bundle (and the plugin's table) only: no node_modules.
      const deploy = tempDir(`perimeter-esbuild-${variant.name}-`);
      mkdirSync(deploy, { recursive: true });
      await esbuild.build({
        absWorkingDir: source,
        entryPoints: ['src/main.js'],
        bundle: true,
        platform: 'node',
        target: 'node20',
        format: variant.format,
        outfile: join(deploy, variant.outfile),
        minify: true,
        logLevel: 'silent',
        plugins: variant.plugin ? [perimeterPlugin() as any] : [],
        // The usual banner for ESM bundles of CommonJS dependencies (they call require()).
        banner:
          variant.format === 'esm'
            ? { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" }
            : {},
      });
      const run = await runGuarded({
        dir: deploy,
        policy: {
          mode: 'block',
          network: {
            allow: [`POST http://127.0.0.1:${stripe.port}/v1/charges`, `http://127.0.0.1:${collector.port}/**`],
          },
          env: { allow: ['STRIPE_URL', 'COLLECTOR_URL'] },
          // The function may post to its collector; the `leaky` package may not post anywhere.
          packages: { leaky: { network: { allow: [] } } },
        },
        script: variant.outfile,
        env: { STRIPE_URL: stripe.url, COLLECTOR_URL: collector.url },
      });
      runs.set(variant.name, run);
    }
  });
  after(async () => {
    await Promise.all([stripe.close(), collector.close()]);
  });

  for (const name of ['esm', 'cjs']) {
    test(`${name} bundle: the package rule applies to the bundled dependency and the event names it`, () => {
      const run = runs.get(name)!;
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(JSON.parse(run.stdout.trim()), { charge: 200, track: 'ERR_PERIMETER_BLOCKED', own: 200 });
      const event = run.events.find((e) => e.type === 'violation');
      assert.equal(event?.package, 'leaky', JSON.stringify(run.events));
      assert.equal(event?.deniedBy, 'leaky');
      assert.equal(event?.target, `POST ${collector.url}/leak`);
      assert.equal(run.events.filter((e) => e.type === 'violation').length, 1, JSON.stringify(run.events));
    });
  }

  test('the plugin leaves a table beside the bundle and removes the source map it needed', () => {
    for (const name of ['esm', 'cjs']) {
      const run = runs.get(name)!;
      const outfile = VARIANTS.find((v) => v.name === name)!.outfile;
      const table = JSON.parse(readFileSync(join(run.dir, `${outfile}.perimeter.json`), 'utf8'));
      assert.deepEqual([...table.packages].sort(), ['leaky', 'stripe-lite']);
      assert.equal(existsSync(join(run.dir, `${outfile}.map`)), false);
    }
  });

  test('baseline without the plugin: every frame reads as the function, so the package rule cannot apply', () => {
    const run = runs.get('no-plugin')!;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim()), { charge: 200, track: 200, own: 200 });
  });

  test('with the plugin the collector only ever saw the function’s own post', () => {
    // Three variants ran: two with the plugin (own only), one without (leak and own).
    assert.deepEqual(collector.requests.map((r) => r.url).sort(), ['/leak', '/own', '/own', '/own']);
  });
});
