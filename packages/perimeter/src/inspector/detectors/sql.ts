/**
 * SQL injection, by grammar rather than by keyword lists. A value is injected into one of a few contexts: inside a
 * single- or double-quoted string literal, or in place of a number. For each context the value is tokenised the
 * way a SQL lexer would see it there (strings with '' and \' escapes, numbers, words, operators, --, # and block
 * comments), and it is an attack when it leaves its context and what follows is SQL: a boolean condition that ends
 * the clause (`' OR '1'='1`, `1 OR 1=1--`), a stacked statement (`1; DROP TABLE x`), a UNION SELECT, or a comment
 * that cuts off the rest of the query (`admin'--`). Prose with SQL words ("select a table, or drop by") never
 * leaves a context and never forms those sequences. The lexer is a single forward pass; the rules look at a bounded
 * number of tokens after each breakout, so the cost is linear in the value.
 */
import type { Hit } from '../types.js';

type Kind = 'str' | 'num' | 'word' | 'var' | 'op' | 'cmt' | 'semi' | 'lp' | 'rp' | 'comma' | 'other';
interface Token {
  kind: Kind;
  /** Upper-cased text for words, the operator for operators. */
  text: string;
  start: number;
}

const CONTEXT_TOKENS = 48;

function isWordStart(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c > 127;
}
function isWordPart(c: number): boolean {
  return isWordStart(c) || (c >= 48 && c <= 57) || c === 36;
}
function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
function isSpace(c: number): boolean {
  return c === 32 || (c >= 9 && c <= 13) || c === 160;
}
const OPERATOR_CHARS = '=<>!|&+-*/%^~:.';

/** A forward-only SQL lexer over `source` from `position`. */
class Lexer {
  constructor(
    private readonly source: string,
    private position: number,
  ) {}

  next(): Token | null {
    const s = this.source;
    let i = this.position;
    while (i < s.length && isSpace(s.charCodeAt(i))) i++;
    if (i >= s.length) {
      this.position = i;
      return null;
    }
    const start = i;
    const c = s.charCodeAt(i);
    const ch = s[i]!;
    let kind: Kind;
    let text = ch;
    if (ch === "'" || ch === '"' || ch === '`') {
      i++;
      while (i < s.length) {
        const d = s[i];
        if (d === '\\' && ch !== '`') i += 2;
        else if (d === ch) {
          if (s[i + 1] === ch) i += 2;
          else break;
        } else i++;
      }
      i = Math.min(i + 1, s.length);
      kind = ch === '`' ? 'word' : 'str';
      text = ch === '`' ? 'IDENT' : '';
    } else if ((ch === '-' && s[i + 1] === '-') || ch === '#') {
      while (i < s.length && s[i] !== '\n') i++;
      kind = 'cmt';
    } else if (ch === '/' && s[i + 1] === '*') {
      const close = s.indexOf('*/', i + 2);
      i = close === -1 ? s.length : close + 2;
      kind = 'cmt';
    } else if (isDigit(c) || (ch === '.' && isDigit(s.charCodeAt(i + 1)))) {
      i++;
      while (i < s.length && (isWordPart(s.charCodeAt(i)) || s[i] === '.')) i++;
      kind = 'num';
    } else if (ch === '@') {
      i++;
      if (s[i] === '@') i++;
      while (i < s.length && isWordPart(s.charCodeAt(i))) i++;
      kind = 'var';
    } else if (isWordStart(c)) {
      i++;
      while (i < s.length && isWordPart(s.charCodeAt(i))) i++;
      kind = 'word';
      text = s.slice(start, i).toUpperCase();
    } else if (ch === ';') {
      i++;
      kind = 'semi';
    } else if (ch === '(') {
      i++;
      kind = 'lp';
    } else if (ch === ')') {
      i++;
      kind = 'rp';
    } else if (ch === ',') {
      i++;
      kind = 'comma';
    } else if (OPERATOR_CHARS.includes(ch)) {
      i++;
      const two = s.slice(start, start + 2);
      if (['<=', '>=', '<>', '!=', '||', '&&', '::', ':='].includes(two)) i++;
      kind = 'op';
      text = s.slice(start, i);
    } else {
      i++;
      kind = 'other';
    }
    this.position = i;
    return { kind, text, start };
  }
}

function tokens(source: string, from: number, limit: number): Token[] {
  const lexer = new Lexer(source, from);
  const out: Token[] = [];
  for (let token = lexer.next(); token !== null && out.length < limit; token = lexer.next()) out.push(token);
  return out;
}

const LOGICAL = new Set(['AND', 'OR', 'XOR', '&&', '||']);
const COMPARISON = new Set(['=', '<', '>', '<=', '>=', '<>', '!=', 'LIKE', 'IS', 'REGEXP', 'RLIKE', 'IN', 'BETWEEN']);
const CLAUSE_END = new Set(['AND', 'OR', 'XOR', 'UNION', 'ORDER', 'GROUP', 'LIMIT', 'HAVING', 'INTO', 'PROCEDURE']);
const SQL_FUNCTIONS = new Set([
  'SLEEP',
  'PG_SLEEP',
  'BENCHMARK',
  'EXTRACTVALUE',
  'UPDATEXML',
  'CONVERT',
  'CAST',
  'CHAR',
  'CHR',
  'ASCII',
  'SUBSTRING',
  'SUBSTR',
  'MID',
  'ORD',
  'CONCAT',
  'VERSION',
  'USER',
  'DATABASE',
  'LOAD_FILE',
  'IF',
  'IIF',
  'COUNT',
  'LENGTH',
  'DB_NAME',
  'HEX',
  'UNHEX',
  'EXISTS',
  'RANDOMBLOB',
  'DBMS_PIPE',
  'UTL_INADDR',
]);
const OBJECT_KINDS = new Set([
  'TABLE',
  'DATABASE',
  'SCHEMA',
  'VIEW',
  'USER',
  'INDEX',
  'PROCEDURE',
  'FUNCTION',
  'LOGIN',
]);

/** Comments are whitespace to SQL, except that a comment also ends the query for everything after it. */
function significant(list: Token[], i: number): number {
  while (i < list.length && list[i]!.kind === 'cmt') i++;
  return i;
}

function word(token: Token | undefined, ...texts: string[]): boolean {
  return token !== undefined && token.kind === 'word' && texts.includes(token.text);
}

/** `; <statement>`: the statement keyword and what must follow it for it to be a statement, not a sentence. */
function isStatement(list: Token[], i: number): boolean {
  i = significant(list, i);
  const head = list[i];
  if (head === undefined || head.kind !== 'word') return false;
  const next = list[significant(list, i + 1)];
  switch (head.text) {
    case 'DROP':
    case 'CREATE':
    case 'ALTER':
    case 'TRUNCATE':
      return next !== undefined && next.kind === 'word' && (OBJECT_KINDS.has(next.text) || head.text === 'TRUNCATE');
    case 'INSERT':
      return word(next, 'INTO');
    case 'DELETE':
      return word(next, 'FROM');
    case 'UPDATE': {
      const after = list[significant(list, significant(list, i + 1) + 1)];
      return next !== undefined && next.kind === 'word' && word(after, 'SET');
    }
    case 'SELECT':
    case 'SHUTDOWN':
      return true;
    case 'EXEC':
    case 'EXECUTE':
      return next !== undefined && (next.kind === 'word' || next.kind === 'lp');
    case 'DECLARE':
      return next !== undefined && next.kind === 'var';
    case 'WAITFOR':
      return word(next, 'DELAY', 'TIME');
    default:
      return false;
  }
}

interface Operand {
  end: number;
  /** Unambiguously SQL on its own: a sub-select or a call of a SQL function. */
  strong: boolean;
  literal: boolean;
}

function operand(list: Token[], i: number): Operand | null {
  i = significant(list, i);
  let t = list[i];
  if (t === undefined) return null;
  if (t.kind === 'op' && (t.text === '-' || t.text === '+' || t.text === '~' || t.text === '!')) {
    i = significant(list, i + 1);
    t = list[i];
    if (t === undefined) return null;
  }
  if (t.kind === 'lp') {
    const inner = list[significant(list, i + 1)];
    if (word(inner, 'SELECT')) return { end: list.length, strong: true, literal: false };
    return null;
  }
  if (t.kind === 'str' || t.kind === 'num' || t.kind === 'var')
    return { end: i + 1, strong: false, literal: t.kind !== 'var' };
  if (t.kind === 'word') {
    const after = significant(list, i + 1);
    if (list[after]?.kind === 'lp') {
      let depth = 0;
      let j = after;
      for (; j < list.length; j++) {
        if (list[j]!.kind === 'lp') depth++;
        else if (list[j]!.kind === 'rp' && --depth === 0) break;
      }
      return { end: j + 1, strong: SQL_FUNCTIONS.has(t.text), literal: false };
    }
    return { end: i + 1, strong: false, literal: t.text === 'NULL' || t.text === 'TRUE' || t.text === 'FALSE' };
  }
  return null;
}

/** After AND/OR: a condition that closes the clause, e.g. `1=1--`, `'a'='a`, `SLEEP(5)`, `(SELECT …)`. */
function isCondition(list: Token[], i: number): boolean {
  i = significant(list, i);
  // Opening parentheses are skipped, but `(SELECT` is itself the operand (a sub-query).
  while (list[i]?.kind === 'lp' && !word(list[significant(list, i + 1)], 'SELECT')) i = significant(list, i + 1);
  const left = operand(list, i);
  if (left === null) return false;
  if (left.strong) return true;
  let end = significant(list, left.end);
  const op = list[end];
  if (op !== undefined && (op.kind === 'op' || op.kind === 'word') && COMPARISON.has(op.text)) {
    const right = operand(list, end + 1);
    if (right === null) return false;
    if (right.strong) return true;
    end = right.end;
  } else if (!left.literal) {
    return false;
  }
  while (list[end]?.kind === 'rp') end++;
  const after = list[end];
  return (
    after === undefined ||
    after.kind === 'cmt' ||
    after.kind === 'semi' ||
    (after.kind === 'word' && CLAUSE_END.has(after.text)) ||
    (after.kind === 'op' && LOGICAL.has(after.text))
  );
}

/** What follows a breakout out of the value's context. */
function afterBreakout(list: Token[], allowTruncation: boolean): 'high' | 'medium' | null {
  let i = 0;
  while (list[i]?.kind === 'rp') i++;
  const t = list[i];
  if (t === undefined) return null;
  if (t.kind === 'cmt') return allowTruncation ? 'medium' : null;
  if (t.kind === 'semi') {
    if (isStatement(list, i + 1)) return 'high';
    const next = list[i + 1];
    return allowTruncation && next !== undefined && next.kind === 'cmt' ? 'medium' : null;
  }
  if (t.kind === 'word' && t.text === 'UNION') {
    let j = significant(list, i + 1);
    if (word(list[j], 'ALL', 'DISTINCT')) j = significant(list, j + 1);
    return word(list[j], 'SELECT') ? 'high' : null;
  }
  if ((t.kind === 'word' || t.kind === 'op') && LOGICAL.has(t.text)) return isCondition(list, i + 1) ? 'high' : null;
  return null;
}

/** Index just past the quote that closes a string the value starts inside, or -1. */
function breakout(value: string, quote: string): number {
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (c === '\\') i++;
    else if (c === quote) {
      if (value[i + 1] === quote) i++;
      else return i + 1;
    }
  }
  return -1;
}

function numberPrefix(value: string): number {
  let i = 0;
  while (i < value.length && isSpace(value.charCodeAt(i))) i++;
  if (value[i] === '-' || value[i] === '+') i++;
  const digits = i;
  while (i < value.length && (isDigit(value.charCodeAt(i)) || value[i] === '.')) i++;
  return i > digits && isDigit(value.charCodeAt(digits)) ? i : -1;
}

/** Grammar that is SQL wherever it appears: UNION SELECT, `; DROP TABLE`, WAITFOR DELAY, EXEC xp_cmdshell. */
function anywhere(value: string): Hit | null {
  const lexer = new Lexer(value, 0);
  let before2: Token | null = null;
  let before: Token | null = null;
  for (let t = lexer.next(); t !== null; t = lexer.next()) {
    if (t.kind === 'cmt') continue;
    if (t.kind === 'word' && before !== null && before.kind === 'word') {
      if (
        t.text === 'SELECT' &&
        (before.text === 'UNION' ||
          (before2?.text === 'UNION' && (before.text === 'ALL' || before.text === 'DISTINCT')))
      )
        return hit(value, (before2?.text === 'UNION' ? before2 : before).start, 'high');
      if (t.text === 'DELAY' && before.text === 'WAITFOR') return hit(value, before.start, 'high');
      if ((before.text === 'EXEC' || before.text === 'EXECUTE') && /^(XP|SP)_/.test(t.text))
        return hit(value, before.start, 'high');
      if (OBJECT_KINDS.has(t.text) && before.text === 'DROP' && before2?.kind === 'semi')
        return hit(value, before2.start, 'high');
    }
    before2 = before;
    before = t;
  }
  return null;
}

function hit(value: string, at: number, confidence: 'high' | 'medium'): Hit {
  return { fragment: value.slice(Math.max(0, at - 20), at + 80), confidence };
}

// Words the anywhere-rules start from; a value without any of them skips that lexing pass (a literal alternation:
// linear, no backtracking).
const ANYWHERE_WORDS = /union|waitfor|exec|drop/i;

export function detectSql(value: string): Hit | null {
  const found = ANYWHERE_WORDS.test(value) ? anywhere(value) : null;
  if (found) return found;
  for (const quote of ["'", '"']) {
    if (!value.includes(quote)) continue;
    const at = breakout(value, quote);
    if (at === -1) continue;
    const verdict = afterBreakout(tokens(value, at, CONTEXT_TOKENS), true);
    if (verdict) return hit(value, at - 1, verdict);
  }
  const numberEnd = numberPrefix(value);
  if (numberEnd !== -1) {
    const verdict = afterBreakout(tokens(value, numberEnd, CONTEXT_TOKENS), false);
    if (verdict) return hit(value, 0, verdict);
  }
  return null;
}
