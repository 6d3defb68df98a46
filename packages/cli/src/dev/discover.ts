/**
 * Which functions a project has, found without running any of them: from `perimeter.config.*`, from the Netlify
 * layout (`netlify/functions/*`), or a single handler file. Everything here is static (file names and the config);
 * the handler's format and a Netlify v2 `config.path` are read by the runner inside the function's own process.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { cliError } from '../errors.js';
import { type DevConfig, FUNCTION_NAME, findConfig, type HandlerFormat, loadConfig } from './config.js';

// JavaScript first: when both `index.mjs` and `index.ts` exist, the built file is the one to run. TypeScript
// handlers run on Node versions that strip types (process.features.typescript; the runner says when not).
export const HANDLER_EXTENSIONS = ['.mjs', '.js', '.cjs', '.mts', '.ts', '.cts'] as const;

export const DEFAULT_TIMEOUT_SECONDS = 30;

/** One function as discovery describes it, before it runs. */
export interface FunctionSpec {
  name: string;
  /** Absolute path of the handler file. */
  handler: string;
  /** The export to call when the config names one. */
  export?: string;
  /** When the config says; detected by the runner otherwise. */
  format?: HandlerFormat;
  /** Netlify layout: the format is netlify-v1 or netlify-v2, never lambda. */
  netlify: boolean;
  trigger: string;
  routes: string[];
  /** Whether the routes were given (a Netlify v2 `config.path` adds to the default routes only). */
  routesGiven: boolean;
  /** The policy file, or null: the host then writes an alert-mode policy (learn mode). */
  policyFile: string | null;
  /** Config env: the top-level env and then the function's own. */
  env: Record<string, string>;
  timeoutMs: number;
  /** Where it was declared: the config file, or the layout's folder. */
  source: string;
}

export interface DevProject {
  /** The project folder (holds .perimeter/). */
  dir: string;
  configFile: string | null;
  config: DevConfig | null;
  layout: 'config' | 'netlify' | 'file';
  functions: FunctionSpec[];
}

function policyFor(handler: string, projectDir: string): string | null {
  for (const candidate of [
    path.join(path.dirname(handler), 'perimeter.json'),
    path.join(projectDir, 'perimeter.json'),
  ]) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

function isFile(file: string): boolean {
  try {
    return statSync(file).isFile();
  } catch {
    return false;
  }
}

function fromConfig(config: DevConfig, dir: string): FunctionSpec[] {
  const base = path.dirname(config.file);
  return Object.entries(config.functions ?? {}).map(([name, fn]) => {
    const handler = path.resolve(base, fn.handler);
    if (!isFile(handler)) {
      throw cliError(
        'ERR_PERIMETER_DEV_CONFIG',
        `\`functions.${name}.handler\` names a file that does not exist: ${handler}`,
        {
          file: config.file,
          hint: "handler paths are relative to the config file's folder",
        },
      );
    }
    let policyFile: string | null;
    if (fn.policy !== undefined) {
      policyFile = path.resolve(base, fn.policy);
      if (!isFile(policyFile)) {
        throw cliError(
          'ERR_PERIMETER_DEV_CONFIG',
          `\`functions.${name}.policy\` names a file that does not exist: ${policyFile}`,
          {
            file: config.file,
            hint: 'leave `policy` out to use perimeter.json beside the handler (or run in learn mode without one)',
          },
        );
      }
    } else {
      policyFile = policyFor(handler, dir);
    }
    const trigger = fn.trigger ?? 'http';
    return {
      name,
      handler,
      ...(fn.export !== undefined ? { export: fn.export } : {}),
      ...(fn.format !== undefined ? { format: fn.format } : {}),
      netlify: fn.format === 'netlify-v1' || fn.format === 'netlify-v2',
      trigger,
      routes: fn.routes ?? (trigger === 'http' ? [`/${name}`, `/${name}/*`] : []),
      routesGiven: fn.routes !== undefined,
      policyFile,
      env: { ...config.env, ...fn.env },
      timeoutMs: Math.round((fn.timeout ?? DEFAULT_TIMEOUT_SECONDS) * 1000),
      source: config.file,
    };
  });
}

/** `netlify/functions/<name>.{mjs,js,cjs}`, `<name>/index.*` or `<name>/<name>.*`, as Netlify finds them. */
export function netlifyFunctions(functionsDir: string): Array<{ name: string; handler: string }> {
  const found: Array<{ name: string; handler: string }> = [];
  let entries: import('node:fs').Dirent[];
  try {
    entries = readdirSync(functionsDir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
    if (entry.isFile()) {
      const ext = path.extname(entry.name);
      if (!(HANDLER_EXTENSIONS as readonly string[]).includes(ext)) continue;
      found.push({ name: entry.name.slice(0, -ext.length), handler: path.join(functionsDir, entry.name) });
    } else if (entry.isDirectory()) {
      for (const stem of [entry.name, 'index']) {
        const handler = HANDLER_EXTENSIONS.map((ext) => path.join(functionsDir, entry.name, `${stem}${ext}`)).find(
          isFile,
        );
        if (handler) {
          found.push({ name: entry.name, handler });
          break;
        }
      }
    }
  }
  return found.filter((fn) => FUNCTION_NAME.test(fn.name));
}

function fromNetlify(dir: string, config: DevConfig | null): FunctionSpec[] {
  const functionsDir = path.join(dir, 'netlify', 'functions');
  return netlifyFunctions(functionsDir).map(({ name, handler }) => ({
    name,
    handler,
    netlify: true,
    trigger: 'http',
    routes: [`/.netlify/functions/${name}`, `/.netlify/functions/${name}/*`],
    routesGiven: false,
    policyFile: policyFor(handler, dir),
    env: { ...config?.env },
    timeoutMs: DEFAULT_TIMEOUT_SECONDS * 1000,
    source: functionsDir,
  }));
}

function singleFile(handler: string, dir: string, config: DevConfig | null): FunctionSpec {
  const stem = path.basename(handler, path.extname(handler));
  // `index.mjs` and `handler.mjs` say nothing about the function: its folder's name does.
  const raw = stem === 'index' || stem === 'handler' ? path.basename(path.dirname(handler)) : stem;
  const name = FUNCTION_NAME.test(raw)
    ? raw
    : raw.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'function';
  return {
    name,
    handler,
    netlify: false,
    trigger: 'http',
    // The only function: every path is its.
    routes: ['/*'],
    routesGiven: false,
    policyFile: policyFor(handler, dir),
    env: { ...config?.env },
    timeoutMs: DEFAULT_TIMEOUT_SECONDS * 1000,
    source: handler,
  };
}

const NO_FUNCTIONS_HINT =
  'put handlers in netlify/functions/<name>.mjs (or <name>/index.mjs), list them in perimeter.config.json ' +
  '({ "functions": { "checkout": { "handler": "functions/checkout/index.mjs" } } }), or run one file: perimeter dev handler.mjs';

/**
 * Finds the functions of `target`: a handler file, or a project folder (config first, then the Netlify layout, then
 * `handler.*`/`index.*` at its root).
 */
export async function discover(target: string): Promise<DevProject> {
  const resolved = path.resolve(target);
  let stat: import('node:fs').Stats;
  try {
    stat = statSync(resolved);
  } catch {
    throw cliError('ERR_PERIMETER_DEV_NO_FUNCTIONS', `${resolved} does not exist`, { hint: NO_FUNCTIONS_HINT });
  }
  if (stat.isFile()) {
    const ext = path.extname(resolved);
    if (!(HANDLER_EXTENSIONS as readonly string[]).includes(ext)) {
      throw cliError(
        'ERR_PERIMETER_DEV_NO_FUNCTIONS',
        `${resolved} is not a handler file (.mjs, .js, .cjs, or .mts, .ts, .cts)`,
        {
          hint: 'point at a handler file or at the project folder',
        },
      );
    }
    const dir = path.dirname(resolved);
    const configFile = findConfig(dir);
    const config = configFile ? await loadConfig(configFile) : null;
    return { dir, configFile, config, layout: 'file', functions: [singleFile(resolved, dir, config)] };
  }
  const dir = resolved;
  const configFile = findConfig(dir);
  const config = configFile ? await loadConfig(configFile) : null;
  if (config?.functions !== undefined) {
    const functions = fromConfig(config, dir);
    if (functions.length === 0) {
      throw cliError('ERR_PERIMETER_DEV_NO_FUNCTIONS', '`functions` in the config is empty', {
        file: config.file,
        hint: NO_FUNCTIONS_HINT,
      });
    }
    return { dir, configFile, config, layout: 'config', functions };
  }
  const netlify = fromNetlify(dir, config);
  if (netlify.length > 0) return { dir, configFile, config, layout: 'netlify', functions: netlify };
  for (const stem of ['handler', 'index']) {
    const handler = HANDLER_EXTENSIONS.map((ext) => path.join(dir, `${stem}${ext}`)).find(isFile);
    if (handler) return { dir, configFile, config, layout: 'file', functions: [singleFile(handler, dir, config)] };
  }
  throw cliError('ERR_PERIMETER_DEV_NO_FUNCTIONS', `no functions found in ${dir}`, { hint: NO_FUNCTIONS_HINT });
}
