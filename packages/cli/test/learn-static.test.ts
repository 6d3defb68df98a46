/**
 * The static pass on fixture sources (ESM, CommonJS, TypeScript) and on an esbuild-style bundle whose
 * `// node_modules/<pkg>/…` markers attribute findings to packages.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { BIN, staticPass } from './dist.js';

function tree(files: Record<string, string>): string {
  const root = realpathSync(mkdtempSync(join(tmpdir(), 'perimeter-static-')));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(root, name, '..'), { recursive: true });
    writeFileSync(join(root, name), text);
  }
  return root;
}

const HANDLER_ESM = `import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
const { STRIPE_API_KEY, ['DATABASE_URL']: db } = process.env;
const base = process.env.API_BASE ?? 'https://api.example.com';
export async function handler(event) {
  const user = await fetch(\`https://api.example.com/v1/users/\${event.id}/orders?limit=10\`);
  const any = await fetch(\`https://\${event.host}/x\`);
  await fetch('https://hooks.slack.com/services/T0001/B0002/abcdef1234567890');
  execFile('/usr/bin/convert', ['in.png', 'out.jpg']);
  const template = readFileSync('/opt/templates/invoice.html', 'utf8');
  const ns = 'http://www.w3.org/2000/svg';
  return process.env['REGION'];
}
`;
const HANDLER_CJS = `const cp = require('child_process');
const fs = require('fs');
cp.execSync('git rev-parse HEAD');
fs.writeFileSync('/tmp/report.pdf', 'x');
module.exports = () => globalThis.process.env.CJS_NAME;
`;
const HANDLER_TS = `import type { Handler } from 'aws-lambda';
interface Order { id: number }
const endpoint: string = 'wss://stream.example.com/v2/feed';
export const handler: Handler = async (order: Order) => {
  const token = process.env.TS_TOKEN as string;
  return fetch(\`https://api.example.com/v2/orders/\${order.id}\`, { method: 'POST' });
};
`;

const BUNDLE = `"use strict";
var __create = Object.create;
// node_modules/tiny-sdk/index.js
var require_tiny_sdk = __commonJS({
  "node_modules/tiny-sdk/index.js"(exports2, module2) {
    var https = require("https");
    module2.exports = (id) => https.get(\`https://api.tiny.example/v1/items/\${id}\`);
    module2.exports.key = () => process.env.TINY_KEY;
  }
});
// node_modules/@scope/telemetry/dist/index.js
var import_child_process = require("child_process");
function beacon() {
  (0, import_child_process.spawn)("/usr/bin/curl", ["-s", "https://telemetry.example.net/collect"]);
  return fetch("https://telemetry.example.net/collect");
}
// src/handler.ts
var handler = async () => {
  beacon();
  return fetch("https://api.example.com/health");
};
`;

describe('static pass', () => {
  test('ESM, CommonJS and TypeScript sources: URLs, env names, programs, fs paths', () => {
    const root = tree({ 'handler.mjs': HANDLER_ESM, 'lib/util.cjs': HANDLER_CJS, 'src/typed.ts': HANDLER_TS });
    const result = staticPass.scanCode([root]);
    assert.deepEqual(result.unparsed, []);
    assert.equal(result.files, 3);
    const by = (capability: string, list = 'allow') =>
      [
        ...new Set(
          result.observations.filter((o) => o.capability === capability && o.list === list).map((o) => o.target),
        ),
      ].sort();
    assert.deepEqual(by('network'), [
      'https://api.example.com',
      'https://api.example.com/v1/users/*/orders',
      'https://api.example.com/v2/orders/*',
      'https://hooks.slack.com/services/T0001/B0002/*',
      'wss://stream.example.com/v2/feed',
    ]);
    assert.deepEqual(by('env'), ['API_BASE', 'CJS_NAME', 'DATABASE_URL', 'REGION', 'STRIPE_API_KEY', 'TS_TOKEN']);
    assert.deepEqual(by('process'), ['/usr/bin/convert', 'git']);
    assert.deepEqual(by('fs', 'read'), ['/opt/templates/invoice.html']);
    assert.deepEqual(by('fs', 'write'), ['/tmp/report.pdf']);
    assert.ok(result.observations.every((o) => o.inferred === true && o.packages.length === 0));
    assert.deepEqual([...result.builtins.get('app')!].sort(), ['child_process', 'fs']);
  });

  test('an esbuild-style bundle: findings attributed to the package whose module they sit in', () => {
    const root = tree({ 'dist/index.js': BUNDLE });
    const result = staticPass.scanCode([join(root, 'dist/index.js')]);
    const found = result.observations.map((o) => `${o.packages[0] ?? 'app'} ${o.capability} ${o.target}`).sort();
    assert.deepEqual(
      [...new Set(found)],
      [
        '@scope/telemetry network https://telemetry.example.net/collect',
        '@scope/telemetry process /usr/bin/curl',
        'app network https://api.example.com/health',
        'tiny-sdk env TINY_KEY',
        'tiny-sdk network https://api.tiny.example/v1/items/*',
      ],
    );
    assert.deepEqual([...result.builtins.get('tiny-sdk')!], ['https']);
  });

  test('node_modules only with --include-deps; the CLI writes rules marked inferred', () => {
    const root = tree({
      'handler.mjs': "export const h = () => fetch('https://api.example.com/ping');\n",
      'node_modules/left-pad/index.js': "module.exports = () => fetch('https://evil.example.com/x');\n",
    });
    assert.equal(staticPass.scanCode([root]).files, 1);
    const withDeps = staticPass.scanCode([root], { includeDeps: true });
    assert.deepEqual(
      withDeps.observations.map((o) => [o.packages, o.target]),
      [
        [[], 'https://api.example.com/ping'],
        [['left-pad'], 'https://evil.example.com/x'],
      ],
    );
    const cli = spawnSync(process.execPath, [BIN, 'learn', '--from-code', '.', '--write'], {
      cwd: root,
      encoding: 'utf8',
    });
    assert.equal(cli.status, 0, cli.stderr);
    const policy = JSON.parse(readFileSync(join(root, 'perimeter.json'), 'utf8'));
    assert.deepEqual(policy, { mode: 'alert', network: { allow: ['https://api.example.com/ping'] } });
    const sidecar = JSON.parse(readFileSync(join(root, 'perimeter.learn.json'), 'utf8'));
    assert.equal(sidecar.rules['network.allow']['https://api.example.com/ping'].inferred, true);
  });

  test('template literals: an expression in the host proposes nothing; one in a path segment becomes *', () => {
    assert.equal(staticPass.templateUrlRule(['https://', '/x']), undefined);
    assert.equal(staticPass.templateUrlRule(['https://api.', '.example.com/x']), undefined);
    assert.equal(
      staticPass.templateUrlRule(['https://api.example.com/v1/', '/refunds']),
      'https://api.example.com/v1/*/refunds',
    );
    assert.equal(staticPass.templateUrlRule(['https://api.example.com/files/', '']), 'https://api.example.com/files/*');
    assert.equal(staticPass.templateUrlRule(['https://api.example.com/', '/', '/x']), 'https://api.example.com/*/*/x');
  });
});
