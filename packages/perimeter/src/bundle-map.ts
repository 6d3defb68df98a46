/**
 * Package identity inside bundles. `perimeter/esbuild` writes `<bundle>.perimeter.json` beside each bundle: the
 * generated line/column ranges each package's code occupies (see esbuild.ts for the format). Attribution asks here
 * for frames in files it would otherwise count as the function's own (`app`).
 *
 * The table is read once per file, the first time a frame points into it, with the guard's own (pristine) file
 * functions; a file without a table costs one failed read, remembered. The table sits beside the bundle, where the
 * function's code is deployed: a dependency that could rewrite it could rewrite the bundle too (and the fs rules
 * deny writes there by default).
 */
import { type CallSite, siteColumn, siteLine } from './callsite.js';
import {
  ArrayIsArray,
  fileURLToPath,
  fsReadFileSync,
  JSONParse,
  MapGet,
  MapSet,
  MapSize,
  SafeMap,
  StringEndsWith,
  StringStartsWith,
} from './pristine.js';

const BUNDLE_MAP_SUFFIX = '.perimeter.json';
const APP = 'app';

interface Table {
  packages: string[];
  ranges: number[];
}

const tables = new SafeMap<string, Table | null>();

function tableFor(file: string): Table | null {
  const cached = MapGet(tables, file);
  if (cached !== undefined) return cached;
  let table: Table | null = null;
  if (StringEndsWith(file, '.js') || StringEndsWith(file, '.cjs') || StringEndsWith(file, '.mjs')) {
    try {
      const path = StringStartsWith(file, 'file://') ? fileURLToPath(file) : file;
      const parsed = JSONParse(fsReadFileSync(path + BUNDLE_MAP_SUFFIX, 'utf8'));
      if (isTable(parsed)) table = parsed;
    } catch {
      table = null;
    }
  }
  if (MapSize(tables) < 5000) MapSet(tables, file, table);
  return table;
}

// A table that is not what perimeter/esbuild writes is ignored (the file reads as the function's own code), so that
// a damaged file cannot make every decision fail.
function isTable(value: any): value is Table {
  if (value?.perimeter !== 1 || !ArrayIsArray(value.packages) || !ArrayIsArray(value.ranges)) return false;
  if (value.ranges.length % 3 !== 0) return false;
  for (let i = 0; i < value.ranges.length; i++) if (typeof value.ranges[i] !== 'number') return false;
  for (let i = 0; i < value.packages.length; i++) if (typeof value.packages[i] !== 'string') return false;
  return true;
}

/**
 * The package a frame in a bundle belongs to (`app` for the function's own code), or undefined when `file` has no
 * table (not a bundle built with perimeter/esbuild).
 */
export function bundledPackageAt(file: string, site: CallSite): string | undefined {
  const table = tableFor(file);
  if (table === null) return undefined;
  const line = siteLine(site);
  const column = siteColumn(site);
  if (line === null || column === null) return APP;
  // The last range starting at or before (line, column); ranges are flat triples sorted by position.
  const ranges = table.ranges;
  let low = 0;
  let high = ranges.length / 3 - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >>> 1;
    const l = ranges[mid * 3]!;
    const c = ranges[mid * 3 + 1]!;
    if (l < line || (l === line && c <= column)) {
      found = mid;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  if (found === -1) return APP;
  const index = ranges[found * 3 + 2]!;
  return index < 0 ? APP : (table.packages[index] ?? APP);
}
