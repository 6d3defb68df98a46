/**
 * `perimeter.config.json` / `.mjs` / `.js`: read and validated key by key, so a typo is reported with the file and
 * the key path (`functions.checkout.timeout`) instead of surfacing later as a function that behaves oddly.
 *
 * A `.mjs`/`.js` config is imported in the host process: it is the project's own file, like a bundler config.
 * Function handlers never are (see runner.ts).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { cliError } from '../errors.js';

export const CONFIG_NAMES = ['perimeter.config.json', 'perimeter.config.mjs', 'perimeter.config.js'] as const;

export const FORMATS = ['lambda', 'netlify-v1', 'netlify-v2'] as const;
export type HandlerFormat = (typeof FORMATS)[number];

export const TRIGGERS = ['http', 'sqs', 'sns', 's3', 'eventbridge', 'dynamodb', 'kinesis'] as const;

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

/** Names become URL segments, log prefixes and file names: keep them plain. */
export const FUNCTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface FunctionConfig {
  handler: string;
  export?: string;
  format?: HandlerFormat;
  routes?: string[];
  trigger?: string;
  policy?: string;
  env?: Record<string, string>;
  timeout?: number;
}

export interface DevConfig {
  /** Absolute path of the config file. */
  file: string;
  port?: number;
  env: Record<string, string>;
  /** Undefined when the config lists no functions (the layouts are searched then). */
  functions?: Record<string, FunctionConfig>;
}

function configError(file: string, key: string, what: string, hint: string): Error {
  return cliError('ERR_PERIMETER_DEV_CONFIG', `${key ? `\`${key}\` ` : ''}${what}`, { file, hint });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string')
    return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  return `${typeof value === 'object' ? 'an object' : `${typeof value} ${String(value)}`}`;
}

function unknownKeys(file: string, prefix: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw configError(
        file,
        prefix ? `${prefix}.${key}` : key,
        'is not a known key',
        `known keys${prefix ? ` of ${prefix}` : ''}: ${known.join(', ')} (docs/dev.md, "Config reference")`,
      );
    }
  }
}

function envMap(file: string, key: string, value: unknown): Record<string, string> {
  if (!isPlainObject(value)) {
    throw configError(
      file,
      key,
      `must be an object of strings, not ${describe(value)}`,
      `e.g. "${key}": { "NODE_ENV": "development" }`,
    );
  }
  const env: Record<string, string> = {};
  for (const [name, entry] of Object.entries(value)) {
    if (!ENV_NAME.test(name)) {
      throw configError(
        file,
        `${key}.${name}`,
        'is not a valid environment variable name',
        'letters, digits and _, not starting with a digit',
      );
    }
    if (typeof entry === 'number' || typeof entry === 'boolean') env[name] = String(entry);
    else if (typeof entry === 'string') env[name] = entry;
    else {
      throw configError(
        file,
        `${key}.${name}`,
        `must be a string, not ${describe(entry)}`,
        'environment values are strings',
      );
    }
  }
  return env;
}

/** `METHOD /path` or `/path`; `:name` matches one segment, a final `*` the rest. */
export function checkRoute(route: string): string | null {
  const match = /^(?:([A-Z]+|\*)\s+)?(\/\S*)$/.exec(route.trim());
  if (!match) return 'must be "METHOD /path" or "/path"';
  const [, method, routePath] = match;
  if (method && method !== '*' && !(HTTP_METHODS as readonly string[]).includes(method)) {
    return `has an unknown method ${method} (one of ${HTTP_METHODS.join(', ')}, or *)`;
  }
  const star = routePath!.indexOf('*');
  if (star !== -1 && star !== routePath!.length - 1) return 'may only have `*` at its very end';
  if (routePath!.startsWith('/_perimeter/') || routePath === '/_perimeter')
    return 'may not use /_perimeter/ (the dashboard and invoke API)';
  return null;
}

function functionConfig(file: string, name: string, value: unknown): FunctionConfig {
  const key = `functions.${name}`;
  if (!FUNCTION_NAME.test(name)) {
    throw configError(
      file,
      key,
      'is not a usable function name',
      'letters, digits, _, . and -, starting with a letter or digit, at most 64',
    );
  }
  if (typeof value === 'string') value = { handler: value };
  if (!isPlainObject(value)) {
    throw configError(
      file,
      key,
      `must be an object, not ${describe(value)}`,
      `e.g. "${name}": { "handler": "functions/${name}/index.mjs" }`,
    );
  }
  unknownKeys(file, key, value, ['handler', 'export', 'format', 'routes', 'trigger', 'policy', 'env', 'timeout']);
  const out: FunctionConfig = { handler: '' };
  if (typeof value.handler !== 'string' || value.handler === '') {
    throw configError(
      file,
      `${key}.handler`,
      value.handler === undefined ? 'is missing' : `must be a file path, not ${describe(value.handler)}`,
      'the handler file, relative to the config file\'s folder, e.g. "functions/checkout/index.mjs"',
    );
  }
  out.handler = value.handler;
  if (value.export !== undefined) {
    if (typeof value.export !== 'string' || !/^[A-Za-z_$][\w$]*$/.test(value.export)) {
      throw configError(
        file,
        `${key}.export`,
        `must be an export name, not ${describe(value.export)}`,
        'e.g. "handler" or "default"',
      );
    }
    out.export = value.export;
  }
  if (value.format !== undefined) {
    if (!(FORMATS as readonly unknown[]).includes(value.format)) {
      throw configError(
        file,
        `${key}.format`,
        `must be one of ${FORMATS.join(', ')}, not ${describe(value.format)}`,
        'leave it out to have it detected',
      );
    }
    out.format = value.format as HandlerFormat;
  }
  if (value.routes !== undefined) {
    const routes = typeof value.routes === 'string' ? [value.routes] : value.routes;
    if (!Array.isArray(routes)) {
      throw configError(
        file,
        `${key}.routes`,
        `must be an array of routes, not ${describe(value.routes)}`,
        'e.g. ["POST /api/checkout", "/api/cart/*"]',
      );
    }
    out.routes = routes.map((route, index) => {
      const problem = typeof route === 'string' ? checkRoute(route) : `must be a string, not ${describe(route)}`;
      if (problem)
        throw configError(
          file,
          `${key}.routes[${index}]`,
          problem,
          'e.g. "POST /api/checkout", "/api/cart/*" or "GET /items/:id"',
        );
      return (route as string).trim().replace(/\s+/, ' ');
    });
  }
  if (value.trigger !== undefined) {
    if (!(TRIGGERS as readonly unknown[]).includes(value.trigger)) {
      throw configError(
        file,
        `${key}.trigger`,
        `must be one of ${TRIGGERS.join(', ')}, not ${describe(value.trigger)}`,
        'non-HTTP triggers are fired with `perimeter invoke`',
      );
    }
    out.trigger = value.trigger as string;
  }
  if (value.policy !== undefined) {
    if (typeof value.policy !== 'string' || value.policy === '') {
      throw configError(
        file,
        `${key}.policy`,
        `must be a file path, not ${describe(value.policy)}`,
        'relative to the config file\'s folder, e.g. "functions/checkout/perimeter.json"',
      );
    }
    out.policy = value.policy;
  }
  if (value.env !== undefined) out.env = envMap(file, `${key}.env`, value.env);
  if (value.timeout !== undefined) {
    if (
      typeof value.timeout !== 'number' ||
      !Number.isFinite(value.timeout) ||
      value.timeout <= 0 ||
      value.timeout > 900
    ) {
      throw configError(
        file,
        `${key}.timeout`,
        `must be a number of seconds above 0 and at most 900, not ${describe(value.timeout)}`,
        "like Lambda's limit; the default is 30",
      );
    }
    out.timeout = value.timeout;
  }
  return out;
}

/** Validates a config document (already parsed or imported). */
export function validateConfig(file: string, document: unknown): DevConfig {
  if (!isPlainObject(document)) {
    throw configError(
      file,
      '',
      `must be an object, not ${describe(document)}`,
      'a .json config is one object; a .mjs/.js config default-exports one',
    );
  }
  unknownKeys(file, '', document, ['$schema', 'port', 'env', 'functions']);
  const config: DevConfig = { file, env: {} };
  if (document.port !== undefined) {
    const port = document.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw configError(
        file,
        'port',
        `must be a port number 0-65535, not ${describe(port)}`,
        '0 picks any free port; --port overrides it',
      );
    }
    config.port = port;
  }
  if (document.env !== undefined) config.env = envMap(file, 'env', document.env);
  if (document.functions !== undefined) {
    if (!isPlainObject(document.functions)) {
      throw configError(
        file,
        'functions',
        `must be an object keyed by function name, not ${describe(document.functions)}`,
        'e.g. "functions": { "checkout": { "handler": "functions/checkout/index.mjs" } }',
      );
    }
    config.functions = {};
    for (const [name, value] of Object.entries(document.functions))
      config.functions[name] = functionConfig(file, name, value);
  }
  return config;
}

/** The config file in `dir`, if any (the first of CONFIG_NAMES that exists). */
export function findConfig(dir: string): string | null {
  for (const name of CONFIG_NAMES) {
    const file = path.join(dir, name);
    if (existsSync(file)) return file;
  }
  return null;
}

export async function loadConfig(file: string): Promise<DevConfig> {
  let document: unknown;
  if (file.endsWith('.json')) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw cliError('ERR_PERIMETER_DEV_CONFIG', `cannot be read: ${(error as Error).message}`, {
        file,
        hint: 'check the file exists and is readable',
        cause: error,
      });
    }
    try {
      document = JSON.parse(text);
    } catch (error) {
      const at = /position (\d+)/.exec((error as Error).message);
      const line = at ? text.slice(0, Number(at[1])).split('\n').length : undefined;
      throw cliError('ERR_PERIMETER_DEV_CONFIG', `is not valid JSON: ${(error as Error).message}`, {
        file,
        ...(line !== undefined ? { line } : {}),
        hint: 'strict JSON: double quotes, no comments, no trailing commas (or use perimeter.config.mjs)',
        cause: error,
      });
    }
  } else {
    // The modification time in the URL makes a hot reload import the edited file, not the cached module.
    const url = `${pathToFileURL(file).href}?mtime=${statSync(file).mtimeMs}`;
    let imported: { default?: unknown };
    try {
      imported = (await import(url)) as { default?: unknown };
    } catch (error) {
      throw cliError('ERR_PERIMETER_DEV_CONFIG', `failed to load: ${(error as Error)?.message ?? error}`, {
        file,
        hint: 'fix the error above; the config must be an ES module with a default export',
        cause: error,
      });
    }
    document = typeof imported.default === 'function' ? await (imported.default as () => unknown)() : imported.default;
    if (document === undefined) {
      throw cliError('ERR_PERIMETER_DEV_CONFIG', 'has no default export', {
        file,
        hint: 'export default { functions: { … } }',
      });
    }
  }
  return validateConfig(file, document);
}
