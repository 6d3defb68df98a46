/**
 * Decoding layers. Attackers encode payloads to slip past filters that look at the raw text, so each value is
 * scanned as received and after every decoding an application might apply: percent-decoding (repeated: `%252e`
 * is `%2e` is `.`), HTML character references, `\uXXXX` / `\xXX` escapes. Every layer is a single linear pass and
 * the number of layers is bounded, so a value of n characters costs O(n) per layer whatever it contains.
 */

export const MAX_DECODE_LAYERS = 8;
const MAX_URL_ROUNDS = 3;

/** The value and each distinct decoding of it, raw first. */
export function decodedVariants(value: string): string[] {
  const variants = [value];
  let current = value;
  let layers = 0;
  const push = (next: string): void => {
    layers++;
    if (next !== current) {
      current = next;
      if (!variants.includes(next)) variants.push(next);
    }
  };
  for (let round = 0; round < 2 && layers < MAX_DECODE_LAYERS; round++) {
    const before = current;
    for (let i = 0; i < MAX_URL_ROUNDS && current.includes('%') && layers < MAX_DECODE_LAYERS; i++) {
      const decoded = percentDecode(current);
      if (decoded === current) break;
      push(decoded);
    }
    if (current.includes('&') && layers < MAX_DECODE_LAYERS) push(decodeHtmlEntities(current));
    if (current.includes('\\') && layers < MAX_DECODE_LAYERS) push(decodeEscapes(current));
    if (current === before) break;
  }
  for (let v = 1; v < variants.length; v++) variants[v] = flat(variants[v]!);
  return variants;
}

/**
 * The decoders build their output by concatenation, which V8 keeps as a tree of pieces (a cons string). Once the
 * detectors' character loops have seen such strings, V8 recompiles them for every string shape and every later
 * event is scanned ~40 % slower (measured: 48,000 → 29,000 API Gateway events/s after one pass over the attack
 * corpus). A JSON round trip is the one cheap, portable way to get a flat string back; it runs only on values that
 * had something to decode.
 */
function flat(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Lenient percent-decoding: invalid escapes stay as they are (decodeURIComponent throws on them, and a throw would
 * hide the rest of the value). Overlong UTF-8 forms of `.`, `/` and `\` (`%c0%ae`, `%c0%af`, `%c1%9c`), which old
 * decoders accepted and traversal payloads still use, decode to the character they spell.
 */
export function percentDecode(input: string): string {
  let percent = input.indexOf('%');
  if (percent === -1) return input;
  let out = '';
  let copied = 0;
  while (percent !== -1) {
    const bytes: number[] = [];
    let j = percent;
    while (j + 2 < input.length && input.charCodeAt(j) === 37 /* % */) {
      const hi = hexValue(input.charCodeAt(j + 1));
      const lo = hexValue(input.charCodeAt(j + 2));
      if (hi < 0 || lo < 0) break;
      bytes.push(hi * 16 + lo);
      j += 3;
    }
    if (bytes.length === 0) {
      percent = input.indexOf('%', percent + 1);
      continue;
    }
    out += input.slice(copied, percent) + decodeBytes(bytes);
    copied = j;
    percent = input.indexOf('%', j);
  }
  return out + input.slice(copied);
}

function decodeBytes(bytes: number[]): string {
  let out = '';
  let from = 0;
  for (let k = 1; k < bytes.length; k++) {
    const lead = bytes[k - 1];
    const byte = bytes[k]!;
    if ((lead === 0xc0 && (byte === 0xae || byte === 0xaf)) || (lead === 0xc1 && byte === 0x9c)) {
      out += utf8.decode(Uint8Array.from(bytes.slice(from, k - 1)));
      out += byte === 0xae ? '.' : byte === 0xaf ? '/' : '\\';
      from = k + 1;
      k++;
    }
  }
  return out + utf8.decode(Uint8Array.from(bytes.slice(from)));
}

const NAMED_ENTITIES: Record<string, string> = {
  lt: '<',
  gt: '>',
  amp: '&',
  quot: '"',
  apos: "'",
  sol: '/',
  bsol: '\\',
  lpar: '(',
  rpar: ')',
  colon: ':',
  semi: ';',
  equals: '=',
  tab: '\t',
  newline: '\n',
  grave: '`',
  dollar: '$',
  lcub: '{',
  rcub: '}',
  period: '.',
  percnt: '%',
  num: '#',
};

/** HTML character references, with or without the closing `;` (browsers accept `&#60` and `&lt`). */
export function decodeHtmlEntities(input: string): string {
  let out = '';
  let copied = 0;
  for (let i = input.indexOf('&'); i !== -1; i = input.indexOf('&', i + 1)) {
    let j = i + 1;
    if (input[j] === '#') {
      j++;
      const hex = input[j] === 'x' || input[j] === 'X';
      if (hex) j++;
      let value = 0;
      let digits = 0;
      while (j < input.length && digits < 8) {
        const d = hex ? hexValue(input.charCodeAt(j)) : input.charCodeAt(j) - 48;
        if (d < 0 || d > (hex ? 15 : 9)) break;
        value = value * (hex ? 16 : 10) + d;
        digits++;
        j++;
      }
      if (digits > 0 && value <= 0x10ffff) {
        if (input[j] === ';') j++;
        out += input.slice(copied, i) + String.fromCodePoint(value);
        copied = j;
        i = j - 1;
      }
    } else {
      let name = '';
      while (j < input.length && name.length < 10) {
        const c = input.charCodeAt(j);
        if (!((c >= 97 && c <= 122) || (c >= 65 && c <= 90))) break;
        name += input[j];
        j++;
      }
      const replacement = NAMED_ENTITIES[name.toLowerCase()];
      if (replacement !== undefined && Object.hasOwn(NAMED_ENTITIES, name.toLowerCase())) {
        if (input[j] === ';') j++;
        out += input.slice(copied, i) + replacement;
        copied = j;
        i = j - 1;
      }
    }
  }
  return out + input.slice(copied);
}

/** JavaScript/JSON-style `\uXXXX`, `\u{X…}` and `\xXX` escapes; other backslashes stay. */
export function decodeEscapes(input: string): string {
  let out = '';
  let copied = 0;
  for (let i = input.indexOf('\\'); i !== -1 && i + 1 < input.length; i = input.indexOf('\\', i + 1)) {
    const kind = input[i + 1];
    let decoded = '';
    let end = -1;
    if (kind === 'u' || kind === 'U') {
      if (input[i + 2] === '{') {
        let j = i + 3;
        let value = 0;
        while (j < input.length && j < i + 10 && hexValue(input.charCodeAt(j)) >= 0) {
          value = value * 16 + hexValue(input.charCodeAt(j));
          j++;
        }
        if (input[j] === '}' && j > i + 3 && value <= 0x10ffff) {
          decoded = String.fromCodePoint(value);
          end = j + 1;
        }
      } else {
        const value = hex4(input, i + 2);
        if (value >= 0) {
          decoded = String.fromCharCode(value);
          end = i + 6;
        }
      }
    } else if (kind === 'x' || kind === 'X') {
      const hi = hexValue(input.charCodeAt(i + 2));
      const lo = hexValue(input.charCodeAt(i + 3));
      if (hi >= 0 && lo >= 0) {
        decoded = String.fromCharCode(hi * 16 + lo);
        end = i + 4;
      }
    } else if (kind === '\\') {
      i++; // an escaped backslash: the next one is not the start of an escape
      continue;
    }
    if (end === -1) continue;
    out += input.slice(copied, i) + decoded;
    copied = end;
    i = end - 1;
  }
  return out + input.slice(copied);
}

function hex4(input: string, at: number): number {
  if (at + 4 > input.length) return -1;
  let value = 0;
  for (let k = 0; k < 4; k++) {
    const d = hexValue(input.charCodeAt(at + k));
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

/** Base64 (standard or URL alphabet) to UTF-8 text; null when it is not valid base64. */
export function decodeBase64Text(input: string): string | null {
  const compact = input.replace(/\s+/g, '');
  if (compact.length % 4 === 1) return null;
  for (let i = 0; i < compact.length; i++) {
    const c = compact.charCodeAt(i);
    const ok =
      (c >= 65 && c <= 90) ||
      (c >= 97 && c <= 122) ||
      (c >= 48 && c <= 57) ||
      c === 43 ||
      c === 47 ||
      c === 45 ||
      c === 95 ||
      (c === 61 && i >= compact.length - 2);
    if (!ok) return null;
  }
  return utf8.decode(Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64'));
}
