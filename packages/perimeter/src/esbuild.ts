/**
 * `perimeter/esbuild`: an esbuild plugin that keeps package identity in bundled functions.
 *
 * A bundle puts every module in one file, so the call stack no longer shows `node_modules/<package>/` paths and
 * every dependency would read as the function's own code (`app`): events could not name the culprit and
 * per-package rules would not apply. The plugin reads the bundle's source map when the build ends and writes
 * `<bundle>.perimeter.json` beside each output: which generated line and column ranges come from which package.
 * The guard reads that table the first time a stack frame points into the bundle (bundle-map.ts).
 *
 * Build-time code: it runs in the build process and depends on nothing (esbuild's plugin API is structural here).
 * When the build did not ask for source maps, the plugin has esbuild write one and removes it after reading it.
 */
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

interface BuildResultLike {
  errors: unknown[];
  metafile?: { outputs: Record<string, unknown> };
}

interface PluginBuildLike {
  initialOptions: { sourcemap?: boolean | string; metafile?: boolean; absWorkingDir?: string; write?: boolean };
  onEnd(callback: (result: BuildResultLike) => void | Promise<void>): void;
}

export interface PerimeterEsbuildPlugin {
  name: string;
  setup(build: PluginBuildLike): void;
}

/** The table format: ranges sorted by position; `p` indexes `packages`, -1 is the function's own code. */
export interface BundlePackageMap {
  perimeter: 1;
  packages: string[];
  /** Flat triples: generated line (1-based), generated column (1-based), package index. */
  ranges: number[];
}

export const BUNDLE_MAP_SUFFIX = '.perimeter.json';

export function perimeterPlugin(): PerimeterEsbuildPlugin {
  return {
    name: 'perimeter',
    setup(build) {
      const options = build.initialOptions;
      const userWantsMaps = options.sourcemap !== undefined && options.sourcemap !== false;
      if (options.write === false) {
        throw new Error('perimeter/esbuild needs the build to write its output (write: false is not supported)');
      }
      // 'external' writes the .map without pointing the bundle at it; a user setting is kept as it is.
      if (!userWantsMaps) options.sourcemap = 'external';
      options.metafile = true;
      const cwd = options.absWorkingDir ?? process.cwd();
      build.onEnd((result) => {
        if (result.errors.length > 0 || !result.metafile) return;
        for (const output of Object.keys(result.metafile.outputs)) {
          if (!/\.[cm]?js$/.test(output)) continue;
          const file = resolve(cwd, output);
          const mapFile = `${file}.map`;
          if (!existsSync(mapFile)) continue;
          const map = JSON.parse(readFileSync(mapFile, 'utf8'));
          writeFileSync(`${file}${BUNDLE_MAP_SUFFIX}`, JSON.stringify(packageRanges(map, dirname(mapFile))));
          if (!userWantsMaps) unlinkSync(mapFile);
        }
      });
    },
  };
}

/** The npm package a source path belongs to (its last node_modules segment), or null for the function's own code. */
export function packageOfSource(path: string): string | null {
  const normalized = path.replace(/\\/g, '/');
  const marker = normalized.lastIndexOf('node_modules/');
  if (marker === -1) return null;
  const parts = normalized.slice(marker + 'node_modules/'.length).split('/');
  if (parts[0]?.startsWith('@') && parts.length > 1) return `${parts[0]}/${parts[1]}`;
  return parts[0] || null;
}

interface SourceMapLike {
  sources: string[];
  sourceRoot?: string;
  mappings: string;
}

/** Reads a v3 source map's segments and keeps only the points where the owning package changes. */
export function packageRanges(map: SourceMapLike, mapDir: string): BundlePackageMap {
  const packages: string[] = [];
  const indexOf = new Map<string, number>();
  const sourcePackage = map.sources.map((source) => {
    const pkg = packageOfSource(resolve(mapDir, map.sourceRoot ?? '', source));
    if (pkg === null) return -1;
    let index = indexOf.get(pkg);
    if (index === undefined) {
      index = packages.length;
      packages.push(pkg);
      indexOf.set(pkg, index);
    }
    return index;
  });
  const ranges: number[] = [];
  let current = -1;
  let source = 0;
  const lines = map.mappings.split(';');
  for (let line = 0; line < lines.length; line++) {
    let column = 0;
    const segments = lines[line]!;
    if (segments === '') continue;
    for (const segment of segments.split(',')) {
      const fields = decodeVlq(segment);
      column += fields[0]!;
      // A segment without a source is generated code (esbuild's module wrappers): the function's own.
      let pkg = -1;
      if (fields.length >= 4) {
        source += fields[1]!;
        pkg = sourcePackage[source] ?? -1;
      }
      if (pkg !== current) {
        ranges.push(line + 1, column + 1, pkg);
        current = pkg;
      }
    }
  }
  return { perimeter: 1, packages, ranges };
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

function decodeVlq(segment: string): number[] {
  const values: number[] = [];
  let value = 0;
  let shift = 0;
  for (let i = 0; i < segment.length; i++) {
    const digit = BASE64.indexOf(segment[i]!);
    value += (digit & 31) << shift;
    if (digit & 32) {
      shift += 5;
    } else {
      values.push(value & 1 ? -(value >>> 1) : value >>> 1);
      value = 0;
      shift = 0;
    }
  }
  return values;
}
