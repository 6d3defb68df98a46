#!/usr/bin/env node
// Builds the dashboard into packages/cli/dist/dashboard/ (index.html, app.js, app.css), where the CLI's
// dashboard server reads it from. Run by the root `npm run build`, after tsc.
//
// Everything the page needs is in those three files: no CDN, no web fonts, so it works offline and under a
// Content-Security-Policy of 'self' only. esbuild strips types without checking them; keep src/ typed anyway.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT_DIR = path.resolve(HERE, '..', 'cli', 'dist', 'dashboard');
// Written next to OUT_DIR and renamed into place, so a failed build never leaves half a dashboard behind.
const SCRATCH_DIR = `${OUT_DIR}.partial`;

rmSync(SCRATCH_DIR, { recursive: true, force: true });
mkdirSync(SCRATCH_DIR, { recursive: true });

const result = await build({
  entryPoints: { app: path.join(HERE, 'src', 'main.tsx') },
  outdir: SCRATCH_DIR,
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  legalComments: 'none',
  metafile: true,
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const html = readFileSync(path.join(HERE, 'src', 'index.html'), 'utf8');
writeFileSync(path.join(SCRATCH_DIR, 'index.html'), html);

rmSync(OUT_DIR, { recursive: true, force: true });
renameSync(SCRATCH_DIR, OUT_DIR);

const sizes = Object.entries(result.metafile.outputs).map(([file, { bytes }]) => `${path.basename(file)} ${kb(bytes)}`);
console.log(`dashboard: ${path.relative(process.cwd(), OUT_DIR) || OUT_DIR} (${sizes.join(', ')})`);

function kb(bytes) {
  return `${(bytes / 1024).toFixed(1)} KB`;
}
