/**
 * Just enough of the POSIX shell grammar (plus the bash extensions that run code) to find every command a
 * shell string would start: `sh -c "curl …"` is judged by `curl`, not by `sh`.
 *
 * The parser does not evaluate anything. It reads words (quotes, escapes, `$…` expansions), operators
 * (`; & && || | |&`, newlines), subshells `( … )`, command substitutions `$( … )` and backticks, process
 * substitutions `<( … )`, redirections (their targets are file names, not commands) and here-documents (their
 * bodies are data). Commands found inside substitutions are reported like any other, because the shell runs
 * them before the outer command.
 *
 * Whatever it cannot judge statically makes the whole string unjudgeable (the caller denies it): an expansion
 * in command position (`x=curl; $x`), `eval`/`exec`/`source`/`.`/`trap`/`alias`/`hash`/`enable`/`let`/`mapfile`,
 * `case` and function definitions, bash arithmetic (which runs `$( … )` hidden in variable values), and
 * assignments to variables that change what later commands are or load (NODE_OPTIONS, PATH, LD_*, BASH_ENV, …).
 */

import { safeSetOf } from '../pristine.js';

export interface ShellWord {
  /** The word after quote removal; for a dynamic word, the literal parts only. */
  text: string;
  /** True when the value depends on run time (expansions, globs, substitutions). */
  dynamic: boolean;
}

export interface ShellCommand {
  words: ShellWord[];
  /** Names assigned before the command word (`NAME=value cmd`), or by a standalone assignment. */
  assignments: string[];
  /** True when some earlier command may have changed the directory (`cd`, `pushd`…). */
  afterCd: boolean;
}

export type ShellParse = { ok: true; commands: ShellCommand[] } | { ok: false; reason: string };

class Unjudgeable extends Error {}

const METACHARS = safeSetOf([' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')']);
/** Reserved words that may precede a command without being one. */
const PREFIX_KEYWORDS = safeSetOf([
  '!',
  '{',
  '}',
  'if',
  'then',
  'else',
  'elif',
  'fi',
  'do',
  'done',
  'while',
  'until',
  'time',
]);
/** Constructs that run code the parser cannot see. */
export const UNJUDGEABLE_WORDS = safeSetOf([
  'eval',
  'exec',
  'source',
  '.',
  'trap',
  'alias',
  'hash',
  'enable',
  'let',
  'mapfile',
  'readarray',
  'fc',
  'coproc',
  'case',
  'select',
  'function',
  'bind',
  'complete',
  'compgen',
  '[[',
  '((',
]);
const CD_WORDS = safeSetOf(['cd', 'pushd', 'popd']);

const ASSIGNMENT = /^([A-Za-z_][A-Za-z0-9_]*)(\[[^\]]*\])?\+?=/;

/** Variables whose change alters which program a later word names, or what a program loads before it runs. */
export function isSensitiveVariable(name: string): boolean {
  return (
    name === 'NODE_OPTIONS' ||
    name === 'PATH' ||
    name === 'IFS' ||
    name === 'BASH_ENV' ||
    name === 'ENV' ||
    name === 'PS4' ||
    name === 'SHELLOPTS' ||
    name === 'BASHOPTS' ||
    name === 'CDPATH' ||
    name.startsWith('LD_') ||
    name.startsWith('BASH_FUNC_') ||
    name.startsWith('PERIMETER_')
  );
}

export function parseShell(script: string): ShellParse {
  const commands: ShellCommand[] = [];
  try {
    const parser = new Parser(script, commands);
    parser.parseList(null);
    if (parser.pos < script.length) throw new Unjudgeable(`unexpected "${script[parser.pos]}"`);
    return { ok: true, commands };
  } catch (error) {
    if (error instanceof Unjudgeable) return { ok: false, reason: error.message };
    throw error;
  }
}

interface PendingHereDoc {
  delimiter: string;
  stripTabs: boolean;
  expands: boolean;
}

class Parser {
  pos = 0;
  private cdSeen = false;
  private hereDocs: PendingHereDoc[] = [];
  private depth = 0;

  constructor(
    private readonly src: string,
    private readonly out: ShellCommand[],
  ) {}

  /** Parses commands until `terminator` (`)` for subshells and `$(`) or the end. */
  parseList(terminator: ')' | null): void {
    if (++this.depth > 32) throw new Unjudgeable('nesting too deep');
    let command = this.newCommand();
    for (;;) {
      this.skipBlanks();
      if (this.pos >= this.src.length) {
        if (terminator !== null) throw new Unjudgeable('unterminated substitution or subshell');
        this.finish(command);
        break;
      }
      const c = this.src[this.pos]!;
      if (c === '#' && this.atWordStart()) {
        while (this.pos < this.src.length && this.src[this.pos] !== '\n') this.pos++;
        continue;
      }
      if (c === '\n') {
        this.pos++;
        this.finish(command);
        command = this.newCommand();
        this.readHereDocBodies();
        continue;
      }
      if (c === ')') {
        if (terminator !== ')') throw new Unjudgeable('unbalanced ")"');
        this.pos++;
        this.finish(command);
        break;
      }
      if (c === ';' || c === '|' || (c === '&' && this.src[this.pos + 1] !== '>')) {
        if (c === ';' && this.src[this.pos + 1] === ';') throw new Unjudgeable('case clauses');
        this.pos++;
        if ((c === '&' || c === '|') && (this.src[this.pos] === c || (c === '|' && this.src[this.pos] === '&')))
          this.pos++;
        this.finish(command);
        command = this.newCommand();
        continue;
      }
      if (c === '(') {
        if (command.words.length > 0) throw new Unjudgeable('function definitions');
        if (this.src[this.pos + 1] === '(') throw new Unjudgeable('arithmetic commands');
        this.pos++;
        this.parseList(')');
        continue;
      }
      if (c === '<' || c === '>' || c === '&') {
        this.readRedirection(command);
        continue;
      }
      const word = this.readWord();
      // `2>file`: a word of digits directly followed by a redirection is the file descriptor, not an argument.
      if (!word.dynamic && /^\d+$/.test(word.text) && (this.peek() === '<' || this.peek() === '>')) continue;
      this.addWord(command, word);
    }
    this.depth--;
  }

  private newCommand(): ShellCommand & { assignmentsOnly: boolean; raw: string[] } {
    return { words: [], assignments: [], afterCd: this.cdSeen, assignmentsOnly: true, raw: [] };
  }

  private addWord(command: ShellCommand & { raw: string[] }, word: ShellWord & { assignment?: string }): void {
    if (command.words.length === 0) {
      if (word.assignment !== undefined) {
        command.assignments.push(word.assignment);
        return;
      }
      if (!word.dynamic && command.assignments.length === 0 && PREFIX_KEYWORDS.has(word.text)) return;
      if (!word.dynamic && (word.text === 'for' || word.text === 'in')) {
        // `for NAME in WORDS;`: the loop header names no command; its words were scanned for substitutions.
        this.skipForHeader();
        return;
      }
      if (!word.dynamic && UNJUDGEABLE_WORDS.has(word.text)) throw new Unjudgeable(`"${word.text}"`);
      if (word.dynamic) throw new Unjudgeable('an expansion in command position');
      if (CD_WORDS.has(word.text)) this.cdSeen = true;
    }
    command.words.push({ text: word.text, dynamic: word.dynamic });
  }

  private skipForHeader(): void {
    for (;;) {
      this.skipBlanks();
      const c = this.peek();
      if (c === undefined || c === ';' || c === '\n') return;
      if (METACHARS.has(c)) throw new Unjudgeable('for loop header');
      this.readWord();
    }
  }

  private finish(command: ShellCommand): void {
    if (command.words.length === 0 && command.assignments.length === 0) return;
    const first = command.words[0]?.text;
    // Builtins that assign or unset name their variables as arguments.
    if (first === 'export' || first === 'readonly' || first === 'local' || first === 'declare' || first === 'typeset') {
      for (const word of command.words.slice(1)) {
        if (word.text.startsWith('-')) throw new Unjudgeable(`"${first}" with options`);
        const match = ASSIGNMENT.exec(word.text);
        command.assignments.push(match ? match[1]! : word.text);
      }
    }
    if (first === 'unset') for (const word of command.words.slice(1)) command.assignments.push(word.text);
    for (const name of command.assignments) {
      if (isSensitiveVariable(name)) throw new Unjudgeable(`a change to ${name}`);
    }
    this.out.push({ words: command.words, assignments: command.assignments, afterCd: command.afterCd });
  }

  private atWordStart(): boolean {
    return this.pos === 0 || METACHARS.has(this.src[this.pos - 1]!);
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  private skipBlanks(): void {
    for (;;) {
      const c = this.src[this.pos];
      if (c === ' ' || c === '\t') this.pos++;
      else if (c === '\\' && this.src[this.pos + 1] === '\n') this.pos += 2;
      else return;
    }
  }

  private readRedirection(command: ShellCommand & { raw: string[] }): void {
    const s = this.src;
    let op = s[this.pos]!;
    this.pos++;
    if (op === '&') {
      // `&>` / `&>>`
      op += s[this.pos++]!;
      if (s[this.pos] === '>') this.pos++;
    } else if ((op === '<' || op === '>') && s[this.pos] === '(') {
      // Process substitution: its commands run; the word is a /dev/fd path.
      this.pos++;
      this.parseList(')');
      this.addWord(command, { text: '', dynamic: true });
      return;
    } else if (op === '<' && s[this.pos] === '<') {
      this.pos++;
      if (s[this.pos] === '<') {
        this.pos++; // here-string: the word is data (its substitutions still run)
      } else {
        const stripTabs = s[this.pos] === '-';
        if (stripTabs) this.pos++;
        this.skipBlanks();
        const start = this.pos;
        const delimiter = this.readWord();
        const raw = s.slice(start, this.pos);
        const expands = !/['"\\]/.test(raw);
        this.hereDocs.push({ delimiter: delimiter.text, stripTabs, expands });
        return;
      }
    } else if (
      s[this.pos] === '>' ||
      s[this.pos] === '&' ||
      s[this.pos] === '|' ||
      (op === '<' && s[this.pos] === '>')
    ) {
      this.pos++;
    }
    this.skipBlanks();
    if (this.pos >= s.length || METACHARS.has(s[this.pos]!)) {
      throw new Unjudgeable('a redirection without a target');
    }
    this.readWord();
  }

  private readHereDocBodies(): void {
    const docs = this.hereDocs;
    this.hereDocs = [];
    for (const doc of docs) {
      let found = false;
      while (this.pos < this.src.length) {
        let end = this.src.indexOf('\n', this.pos);
        if (end === -1) end = this.src.length;
        let line = this.src.slice(this.pos, end);
        this.pos = Math.min(end + 1, this.src.length);
        if (doc.stripTabs) line = line.replace(/^\t+/, '');
        if (line === doc.delimiter) {
          found = true;
          break;
        }
        if (doc.expands && /[`$]/.test(line)) throw new Unjudgeable('a here-document with expansions');
      }
      if (!found) throw new Unjudgeable('an unterminated here-document');
    }
  }

  /** One shell word, with quote removal; substitutions inside it are parsed (their commands are reported). */
  readWord(): ShellWord & { assignment?: string } {
    const s = this.src;
    let text = '';
    let dynamic = false;
    let plain = true; // still in the unquoted, unexpanded prefix (for assignment detection)
    let plainPrefix = '';
    const start = this.pos;
    while (this.pos < s.length) {
      const c = s[this.pos]!;
      if (METACHARS.has(c)) break;
      if (c === '\\') {
        const next = s[this.pos + 1];
        this.pos += 2;
        if (next === undefined) break;
        if (next !== '\n') text += next;
        plain = false;
        continue;
      }
      if (c === "'") {
        const end = s.indexOf("'", this.pos + 1);
        if (end === -1) throw new Unjudgeable('an unterminated quote');
        text += s.slice(this.pos + 1, end);
        this.pos = end + 1;
        plain = false;
        continue;
      }
      if (c === '"') {
        this.pos++;
        plain = false;
        for (;;) {
          if (this.pos >= s.length) throw new Unjudgeable('an unterminated quote');
          const d = s[this.pos]!;
          if (d === '"') {
            this.pos++;
            break;
          }
          if (d === '\\') {
            const next = s[this.pos + 1];
            if (next === '$' || next === '`' || next === '"' || next === '\\') text += next;
            else if (next !== '\n') text += `\\${next ?? ''}`;
            this.pos += 2;
            continue;
          }
          if (d === '$' || d === '`') {
            this.readExpansion();
            dynamic = true;
            continue;
          }
          text += d;
          this.pos++;
        }
        continue;
      }
      if (c === '$' || c === '`') {
        if (c === '$' && s[this.pos + 1] === "'") {
          // $'…' (ANSI-C quoting): escapes we do not interpret; the value is unknown.
          const end = s.indexOf("'", this.pos + 2);
          if (end === -1) throw new Unjudgeable('an unterminated quote');
          this.pos = end + 1;
        } else {
          this.readExpansion();
        }
        dynamic = true;
        plain = false;
        continue;
      }
      if (c === '*' || c === '?' || c === '[' || c === '{' || c === '}' || (c === '~' && this.pos === start)) {
        // Pathname, brace and tilde expansion: `{curl,evil.example}` is a command in bash.
        if (!(this.pos === start && (c === '{' || c === '}') && this.wordIsSingle(c))) dynamic = true;
      }
      if (plain) plainPrefix += c;
      text += c;
      this.pos++;
    }
    const match = ASSIGNMENT.exec(plainPrefix);
    return match ? { text, dynamic, assignment: match[1]! } : { text, dynamic };
  }

  /** `{` or `}` alone is a reserved word (a group), not a brace expansion. */
  private wordIsSingle(c: string): boolean {
    const next = this.src[this.pos + 1];
    return c !== undefined && (next === undefined || METACHARS.has(next));
  }

  /** `$( … )`, `` ` … ` ``, `${ … }`, `$(( … ))`, `$name`: parses the commands a substitution runs. */
  private readExpansion(): void {
    const s = this.src;
    if (s[this.pos] === '`') {
      let inner = '';
      this.pos++;
      for (;;) {
        if (this.pos >= s.length) throw new Unjudgeable('an unterminated backquote');
        const c = s[this.pos]!;
        if (c === '`') {
          this.pos++;
          break;
        }
        if (c === '\\' && (s[this.pos + 1] === '`' || s[this.pos + 1] === '\\' || s[this.pos + 1] === '$')) {
          inner += s[this.pos + 1];
          this.pos += 2;
          continue;
        }
        inner += c;
        this.pos++;
      }
      const nested = parseShell(inner);
      if (!nested.ok) throw new Unjudgeable(nested.reason);
      for (const command of nested.commands) this.out.push(command);
      return;
    }
    // s[pos] === '$'
    const next = s[this.pos + 1];
    if (next === '(') {
      if (s[this.pos + 2] === '(') {
        // Arithmetic: bash evaluates variable values as expressions, and `a[$(cmd)]` in one runs cmd.
        const end = s.indexOf('))', this.pos + 3);
        if (end === -1) throw new Unjudgeable('unterminated arithmetic');
        const body = s.slice(this.pos + 3, end);
        if (/[A-Za-z_$`[]/.test(body)) throw new Unjudgeable('arithmetic on variables');
        this.pos = end + 2;
        return;
      }
      this.pos += 2;
      this.parseList(')');
      return;
    }
    if (next === '{') {
      let depth = 0;
      for (let i = this.pos + 1; i < s.length; i++) {
        if (s[i] === '{') depth++;
        else if (s[i] === '}' && --depth === 0) {
          const body = s.slice(this.pos + 2, i);
          if (/[`$(]/.test(body)) throw new Unjudgeable('a nested expansion');
          this.pos = i + 1;
          return;
        }
      }
      throw new Unjudgeable('an unterminated ${');
    }
    this.pos++;
    // $name, $1, $@, $$, $?, …
    if (next !== undefined && /[A-Za-z_]/.test(next)) {
      while (this.pos < s.length && /[A-Za-z0-9_]/.test(s[this.pos]!)) this.pos++;
    } else if (next !== undefined && /[0-9@*#?$!-]/.test(next)) {
      this.pos++;
    }
  }
}
