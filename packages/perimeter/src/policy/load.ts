/**
 * Finding, reading and validating the policy file. Every failure is a coded error naming the file, the key and
 * a hint; the preload turns it into a stop before the handler loads (fail closed).
 */
import { perimeterError } from '../errors.js';
import { fsExistsSync, fsReadFileSync, JSONParse, pathDirname, pathResolve } from '../pristine.js';
import { type CompiledPolicy, compilePolicy, type PolicyDocument } from './compile.js';
import { policySchema } from './schema.js';
import { validateAgainstSchema } from './validate.js';

export const POLICY_FILE_NAME = 'perimeter.json';

export interface PolicyLocation {
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** The entry script (process.argv[1]); its folder is searched first. */
  main?: string | undefined;
}

/** Where the policy comes from: `PERIMETER_POLICY`, else `perimeter.json` beside the handler, the Lambda task root, then cwd. */
export function findPolicyFile(location: PolicyLocation = {}): { file: string | null; searched: string[] } {
  const env = location.env ?? process.env;
  if (env.PERIMETER_POLICY)
    return { file: pathResolve(location.cwd ?? process.cwd(), env.PERIMETER_POLICY), searched: [] };
  const dirs: string[] = [];
  if (location.main) dirs.push(pathDirname(pathResolve(location.main)));
  if (env.LAMBDA_TASK_ROOT) dirs.push(env.LAMBDA_TASK_ROOT);
  dirs.push(location.cwd ?? process.cwd());
  const searched = [...new Set(dirs.map((d) => pathResolve(d, POLICY_FILE_NAME)))];
  return { file: searched.find((f) => fsExistsSync(f)) ?? null, searched };
}

export function readPolicyFile(file: string): CompiledPolicy {
  let text: string;
  try {
    text = fsReadFileSync(file, 'utf8');
  } catch (cause: any) {
    const missing = cause?.code === 'ENOENT';
    throw perimeterError(
      missing ? 'ERR_PERIMETER_POLICY_NOT_FOUND' : 'ERR_PERIMETER_POLICY_READ',
      missing ? 'Policy file not found' : `Policy file cannot be read: ${cause?.code ?? cause}`,
      {
        file,
        hint: missing
          ? 'check PERIMETER_POLICY or create perimeter.json beside the handler'
          : 'check the file permissions',
        cause,
      },
    );
  }
  let document: unknown;
  try {
    document = JSONParse(text);
  } catch (cause: any) {
    throw perimeterError('ERR_PERIMETER_POLICY_JSON', `Policy is not valid JSON: ${cause?.message}`, {
      file,
      key: jsonErrorLocation(text),
      hint: 'perimeter.json is strict JSON: no comments, no trailing commas, keys in double quotes',
      cause,
    });
  }
  return parsePolicy(document, file);
}

/** Validates a policy document (from a file or from code) and compiles it. */
export function parsePolicy(document: unknown, file = '<inline>'): CompiledPolicy {
  const issues = validateAgainstSchema(document, policySchema as any);
  if (issues.length > 0) {
    const first = issues[0]!;
    const list = issues.map((i) => `  - ${i.key}: ${i.message} (${i.hint})`).join('\n');
    const err = perimeterError(
      'ERR_PERIMETER_POLICY_INVALID',
      `Invalid policy: ${first.key}: ${first.message}${issues.length > 1 ? `\n${list}` : ''}`,
      { file, key: first.key, hint: first.hint },
    );
    (err as any).issues = issues;
    throw err;
  }
  return compilePolicy(document as PolicyDocument, file);
}

function jsonErrorLocation(text: string): string | undefined {
  const offset = firstSyntaxError(text);
  if (offset < 0) return undefined;
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: JSON forbids raw control characters inside strings
const JSON_STRING = /"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;
const JSON_NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

/**
 * The offset of the first syntax error in `text`, or -1. V8 names a position for some mistakes only (not for
 * "Unexpected token '/'", i.e. a comment, the most common one, nor for a truncated file), so the loader finds
 * it itself and reports the same line and column on every Node version.
 */
function firstSyntaxError(text: string): number {
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const fail = (): never => {
    throw i;
  };
  const token = (pattern: RegExp) => {
    pattern.lastIndex = i;
    if (!pattern.test(text)) fail();
    i = pattern.lastIndex;
  };
  const value = (): void => {
    skipSpace();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      skipSpace();
      while (text[i] !== close) {
        if (c === '{') {
          skipSpace();
          if (text[i] !== '"') fail();
          token(JSON_STRING);
          skipSpace();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        skipSpace();
        if (text[i] === close) break;
        if (text[i] !== ',') fail();
        i++;
        skipSpace();
        if (text[i] === close) fail(); // a trailing comma
      }
      i++;
    } else if (c === '"') {
      token(JSON_STRING);
    } else if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) {
      token(JSON_NUMBER);
    } else {
      const word = ['true', 'false', 'null'].find((w) => text.startsWith(w, i));
      if (word === undefined) fail();
      i += word!.length;
    }
  };
  try {
    value();
    skipSpace();
    if (i < text.length) fail();
  } catch (at) {
    return typeof at === 'number' ? at : -1;
  }
  return -1;
}
