/**
 * The static pass (`perimeter learn --from-code`): reads the function's source or bundle with a real parser
 * (@babel/parser: ESM, CommonJS, TypeScript, JSX) and proposes rules from what the code names literally:
 * URLs and URL template prefixes, `process.env` names, `child_process` calls with literal programs, absolute
 * fs paths. Everything found is marked inferred: code can build a URL at run time that no literal shows, and a
 * literal in a dead branch is never used, so this is a starting point for an alert-mode run, not a verdict.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from '@babel/parser';
import { cliError } from '../errors.js';
import { generalisePath, hostKey, parseNetworkTarget } from './generalise.js';
import type { Observation } from './learn.js';

export interface StaticResult {
  observations: Observation[];
  /** Package (or `app`) → built-in modules it loads. */
  builtins: Map<string, Set<string>>;
  files: number;
  /** Files that could not be parsed, with why. */
  unparsed: Array<{ file: string; error: string }>;
}

const SOURCE_EXTENSIONS = /\.(m|c)?(j|t)sx?$/;
const MAX_FILE_BYTES = 8 * 1024 * 1024;
const CHILD_PROCESS_CALLS = new Set(['spawn', 'spawnSync', 'exec', 'execSync', 'execFile', 'execFileSync', 'fork']);
const SHELL_CALLS = new Set(['exec', 'execSync']);
const FS_READS = new Set([
  'readFile',
  'readFileSync',
  'createReadStream',
  'readdir',
  'readdirSync',
  'opendir',
  'opendirSync',
  'stat',
  'statSync',
  'existsSync',
  'access',
  'accessSync',
]);
const FS_WRITES = new Set([
  'writeFile',
  'writeFileSync',
  'appendFile',
  'appendFileSync',
  'createWriteStream',
  'mkdir',
  'mkdirSync',
  'rm',
  'rmSync',
  'unlink',
  'unlinkSync',
]);
const IGNORED_HOSTS = /(^|\.)(w3\.org|json-schema\.org|xmlsoap\.org|purl\.org|schemas\.microsoft\.com)$/;
const BUILTINS = new Set([
  'child_process',
  'dgram',
  'dns',
  'fs',
  'fs/promises',
  'http',
  'http2',
  'https',
  'net',
  'tls',
  'worker_threads',
]);
/**
 * esbuild marks each module's code with a line comment holding its path: `// node_modules/<pkg>/file.js` for a
 * dependency, `// src/handler.ts` for the function's own code.
 */
const BUNDLE_MODULE_COMMENT = /^\s?((?:\.\.?\/)*[\w@.+-][\w@.+/-]*\.(?:m|c)?[jt]sx?)\s*$/;
const NODE_MODULES_PACKAGE = /(?:^|\/)node_modules\/((?:@[^/\s]+\/)?[^/\s]+)\//;

export function scanCode(inputs: readonly string[], options: { includeDeps?: boolean } = {}): StaticResult {
  const result: StaticResult = { observations: [], builtins: new Map(), files: 0, unparsed: [] };
  for (const input of inputs) {
    for (const file of sourceFiles(input, options.includeDeps === true)) {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (cause: any) {
        result.unparsed.push({ file, error: String(cause?.code ?? cause) });
        continue;
      }
      result.files++;
      scanSource(text, file, result);
    }
  }
  return result;
}

function sourceFiles(input: string, includeDeps: boolean): string[] {
  let stats: ReturnType<typeof statSync>;
  try {
    stats = statSync(input);
  } catch (cause: any) {
    throw cliError('ERR_PERIMETER_LEARN_INPUT', `Cannot read code: ${cause?.code ?? cause}`, { file: input, cause });
  }
  if (!stats.isDirectory()) return [input];
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name === '.git' || (entry.name === 'node_modules' && !includeDeps)) continue;
        walk(full);
      } else if (entry.isFile() && SOURCE_EXTENSIONS.test(entry.name) && !entry.name.endsWith('.d.ts')) {
        if (statSync(full).size <= MAX_FILE_BYTES) files.push(full);
      }
    }
  };
  walk(input);
  return files;
}

export function packageOfFile(file: string): string {
  const parts = file.split(/[\\/]/);
  const index = parts.lastIndexOf('node_modules');
  if (index < 0 || index + 1 >= parts.length) return 'app';
  const first = parts[index + 1]!;
  return first.startsWith('@') && parts[index + 2] ? `${first}/${parts[index + 2]}` : first;
}

/** Scans one file's text; exported for tests. */
export function scanSource(text: string, file: string, into: StaticResult): void {
  let ast: any;
  const typescript = /\.(m|c)?tsx?$/.test(file);
  try {
    ast = parse(text, {
      sourceType: 'unambiguous',
      allowReturnOutsideFunction: true,
      allowImportExportEverywhere: true,
      errorRecovery: true,
      plugins: typescript ? ['typescript', ...(file.endsWith('x') ? (['jsx'] as const) : [])] : ['jsx'],
    });
  } catch (error: any) {
    into.unparsed.push({ file, error: String(error?.message ?? error) });
    return;
  }
  const filePackage = packageOfFile(file);
  const markers: Array<{ start: number; name: string }> = [];
  for (const comment of ast.comments ?? []) {
    const match = comment.type === 'CommentLine' ? BUNDLE_MODULE_COMMENT.exec(comment.value) : null;
    if (match) markers.push({ start: comment.start, name: NODE_MODULES_PACKAGE.exec(match[1]!)?.[1] ?? 'app' });
  }
  const packageAt = (position: number): string => {
    if (filePackage !== 'app' || markers.length === 0) return filePackage;
    let name = 'app';
    for (const marker of markers) {
      if (marker.start > position) break;
      name = marker.name;
    }
    return name;
  };
  const usesChildProcess = /child_process/.test(text);
  const add = (capability: Observation['capability'], list: string, target: string, node: any) => {
    const name = packageAt(node.start ?? 0);
    into.observations.push({
      capability,
      list,
      target,
      packages: name === 'app' ? [] : [name],
      count: 1,
      inferred: true,
      where: `${file}:${node.loc?.start?.line ?? 0}`,
    });
  };
  const noteBuiltin = (specifier: string, node: any) => {
    const id = specifier.replace(/^node:/, '');
    if (!BUILTINS.has(id)) return;
    const name = packageAt(node.start ?? 0);
    const set = into.builtins.get(name) ?? new Set<string>();
    set.add(id);
    into.builtins.set(name, set);
  };

  walk(ast.program, (node, parent) => {
    switch (node.type) {
      case 'StringLiteral': {
        if (parent?.type === 'ImportDeclaration' || parent?.type === 'ExportAllDeclaration') {
          noteBuiltin(node.value, node);
          return;
        }
        const rule = urlRule(node.value);
        if (rule) add('network', 'allow', rule, node);
        return;
      }
      case 'TemplateLiteral': {
        const rule = templateUrlRule(node.quasis.map((q: any) => q.value.cooked ?? q.value.raw));
        if (rule) add('network', 'allow', rule, node);
        return;
      }
      case 'MemberExpression':
      case 'OptionalMemberExpression': {
        if (!isProcessEnv(node.object)) return;
        const name =
          !node.computed && node.property.type === 'Identifier' ? node.property.name : literal(node.property);
        if (name && !BASELINE_ENV.test(name)) add('env', 'allow', name, node);
        return;
      }
      case 'VariableDeclarator': {
        if (node.id?.type !== 'ObjectPattern' || !isProcessEnv(node.init)) return;
        for (const property of node.id.properties) {
          if (property.type !== 'ObjectProperty') continue;
          const name = property.computed ? literal(property.key) : (property.key.name ?? property.key.value);
          if (typeof name === 'string' && !BASELINE_ENV.test(name)) add('env', 'allow', name, property);
        }
        return;
      }
      case 'CallExpression':
      case 'OptionalCallExpression': {
        const callee = calleeName(node.callee);
        const first = node.arguments[0];
        if ((callee === 'require' || node.callee.type === 'Import') && first) {
          const specifier = literal(first);
          if (specifier) noteBuiltin(specifier, node);
          return;
        }
        if (!callee || !first) return;
        if (usesChildProcess && CHILD_PROCESS_CALLS.has(callee)) {
          const program = literal(first);
          if (!program) return;
          if (SHELL_CALLS.has(callee)) {
            // A shell string: the runtime judges each command in it; the first word is the program to allow.
            const word = program.trim().split(/\s+/)[0];
            if (word) add('process', 'allow', word, node);
          } else if (callee === 'fork') {
            add('process', 'allow', 'node', node);
          } else {
            add('process', 'allow', program, node);
          }
          return;
        }
        const isRead = FS_READS.has(callee);
        if (isRead || FS_WRITES.has(callee)) {
          const file = literal(first);
          if (file?.startsWith('/') && !file.includes('\n')) add('fs', isRead ? 'read' : 'write', file, node);
        }
        return;
      }
    }
  });
}

function walk(node: any, visit: (node: any, parent: any) => void, parent: any = null): void {
  if (node === null || typeof node !== 'object') return;
  if (Array.isArray(node)) {
    for (const child of node) walk(child, visit, parent);
    return;
  }
  if (typeof node.type !== 'string') return;
  visit(node, parent);
  for (const key of Object.keys(node)) {
    if (key === 'loc' || key === 'leadingComments' || key === 'trailingComments' || key === 'innerComments') continue;
    const child = node[key];
    if (child !== null && typeof child === 'object') walk(child, visit, node);
  }
}

function literal(node: any): string | undefined {
  if (node?.type === 'StringLiteral') return node.value;
  if (node?.type === 'TemplateLiteral' && node.expressions.length === 0) return node.quasis[0]?.value.cooked;
  return undefined;
}

function calleeName(callee: any): string | undefined {
  if (callee?.type === 'Identifier') return callee.name;
  if ((callee?.type === 'MemberExpression' || callee?.type === 'OptionalMemberExpression') && !callee.computed) {
    return callee.property?.name;
  }
  // esbuild's CommonJS interop: `(0, import_child_process.spawn)(...)`
  if (callee?.type === 'SequenceExpression') return calleeName(callee.expressions.at(-1));
  return undefined;
}

function isProcessEnv(node: any): boolean {
  if (node?.type !== 'MemberExpression' || node.computed) return false;
  const object = node.object;
  const isProcess =
    (object?.type === 'Identifier' && object.name === 'process') ||
    (object?.type === 'MemberExpression' &&
      object.object?.type === 'Identifier' &&
      object.object.name === 'globalThis' &&
      object.property?.name === 'process');
  return isProcess && node.property?.name === 'env';
}

/**
 * Names every piece of code may read without a rule (docs/policy.md, "The baseline"): proposing them would
 * only add noise. A mirror of the runtime's list, kept short on purpose: a name missing here is merely proposed.
 */
const BASELINE_ENV =
  /^(PATH|HOME|PWD|USER|LOGNAME|SHELL|HOSTNAME|TMPDIR|TMP|TEMP|LANG|LANGUAGE|LC_.*|TZ|TERM|COLORTERM|NO_COLOR|FORCE_COLOR|NODE_ENV|NODE_OPTIONS|NODE_DEBUG|NODE_PATH|NODE_EXTRA_CA_CERTS|AWS_REGION|AWS_DEFAULT_REGION|AWS_EXECUTION_ENV|AWS_LAMBDA_.*|LAMBDA_TASK_ROOT|LAMBDA_RUNTIME_DIR|_HANDLER|_X_AMZN_TRACE_ID|NETLIFY|NETLIFY_DEV|K_SERVICE|K_REVISION|K_CONFIGURATION|FUNCTION_TARGET|FUNCTION_SIGNATURE_TYPE|FUNCTION_NAME|FUNCTION_REGION|PORT|PERIMETER_.*)$/;

/** A whole string literal that is a URL → a rule for it (ids in the path generalised). */
export function urlRule(value: string): string | undefined {
  if (!/^(https?|wss?):\/\/[^\s]+$/.test(value)) return undefined;
  const target = parseNetworkTarget(value);
  if (target?.kind !== 'http' || !isRealHost(target.host!)) return undefined;
  const pathShape = generalisePath(target.path!);
  return `${hostKey(target.scheme!, target.host!, target.port)}${pathShape === '/' ? '' : pathShape}`;
}

/**
 * A template literal starting with a URL: the literal prefix names the host; each `${…}` becomes `*` within its
 * segment (`/users/${id}/orders` → `/users/` + `*` + `/orders`). A template whose host is itself an expression proposes
 * nothing.
 */
export function templateUrlRule(quasis: readonly string[]): string | undefined {
  const head = quasis[0] ?? '';
  const match = /^(https?|wss?):\/\/([^/\s?#]+)(\/[^\s?#]*)?/.exec(head);
  if (!match) return undefined;
  if (quasis.length > 1 && match[3] === undefined) return undefined; // `https://${host}` or `https://api.${region}…`
  const target = parseNetworkTarget(`${match[1]}://${match[2]}/`);
  if (!target || !isRealHost(target.host!)) return undefined;
  const key = hostKey(target.scheme!, target.host!, target.port);
  if (quasis.length === 1) return urlRule(head);
  let pathText = match[3]!;
  for (const quasi of quasis.slice(1)) {
    if (/[?#]/.test(pathText)) break;
    pathText += `*${quasi}`;
  }
  // An expression is taken to be one segment (an id): if it ever holds a `/`, the alert-mode run reports it.
  const shape = generalisePath(pathText.replace(/[?#].*$/, '').replaceAll(/\*+/g, '*'));
  return `${key}${shape === '/' ? '' : shape}`;
}

function isRealHost(host: string): boolean {
  return host.includes('.') || host === 'localhost' || host.startsWith('[')
    ? !IGNORED_HOSTS.test(host) && !/[{}$<>]/.test(host)
    : false;
}
