/**
 * Cross-site scripting: markup that runs script when the value is rendered as HTML. A hand-written scan for a tag
 * opening (`<` + letter) that is `<script`, or whose attributes (up to the tag's `>`) include an event handler
 * `on…=`, and for `javascript:` / `vbscript:` URLs (browsers ignore tabs and newlines inside the scheme, so those
 * are removed first), and for a call of `alert`/`prompt`/`confirm`/`eval` breaking out of a JavaScript string.
 * Entity- and percent-encoded forms are decoded by the layers before this runs. `<b>`, `<3` and
 * `2 < 4` are not tags that run anything.
 */
import type { Hit } from '../types.js';

function isLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

function lower(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/**
 * Index of an `on<letters>=` attribute inside the tag that starts at `open`, or -(index where the scan stopped)-1:
 * the tag's `>` or the length cap. The caller resumes past that point, so overlapping tags are scanned once.
 */
function eventHandler(value: string, open: number): number {
  let quote = '';
  let i = open + 1;
  for (; i < value.length && i - open < 4096; i++) {
    const c = value[i]!;
    if (quote !== '') {
      if (c === quote) quote = '';
      continue;
    }
    if (c === '>') return -i - 1;
    if (c === '"' || c === "'") {
      // A quote right after `=` opens an attribute value; elsewhere it is just a character of a broken tag.
      let back = i - 1;
      while (back > open && value[back] === ' ') back--;
      if (value[back] === '=') quote = c;
      continue;
    }
    const prev = value[i - 1]!;
    if (
      (prev === ' ' || prev === '/' || prev === '\t' || prev === '\n' || prev === '"' || prev === "'") &&
      lower(value.charCodeAt(i)) === 111 /* o */ &&
      lower(value.charCodeAt(i + 1)) === 110 /* n */
    ) {
      let j = i + 2;
      while (j < value.length && isLetter(value.charCodeAt(j))) j++;
      if (j > i + 3) {
        while (value[j] === ' ' || value[j] === '\t' || value[j] === '\n') j++;
        if (value[j] === '=') return i;
      }
    }
  }
  return -i - 1;
}

/**
 * Start of a `javascript:` / `vbscript:` URL, or -1. Read backwards from each colon (at most a few dozen characters
 * each), skipping the tabs and newlines browsers drop inside a scheme, so every character is looked at a bounded
 * number of times.
 */
function schemeUrl(value: string): number {
  for (let colon = value.indexOf(':'); colon !== -1; colon = value.indexOf(':', colon + 1)) {
    const after = value[colon + 1];
    if (after === undefined || after === ' ') continue;
    for (const scheme of ['javascript', 'vbscript']) {
      let i = colon - 1;
      let k = scheme.length - 1;
      for (let steps = 0; k >= 0 && i >= 0 && steps < 64; steps++) {
        const c = value[i];
        if (c === '\t' || c === '\n' || c === '\r') {
          i--;
          continue;
        }
        if (lower(value.charCodeAt(i)) !== scheme.charCodeAt(k)) break;
        i--;
        k--;
      }
      if (k >= 0) continue;
      const before = i < 0 ? '' : value[i]!;
      // Where a URL starts: the start of the value, after a space or C0 control (browsers strip those before a
      // URL), an attribute value, a CSS url(, a Markdown link target, or another scheme's colon
      // (`javascript:javascript:`, which slips past filters that strip the first one).
      if (before === '' || value.charCodeAt(i) <= 32 || '"\'=(>:'.includes(before)) return i + 1;
    }
  }
  return -1;
}

const SCRIPT_SINKS = ['alert', 'prompt', 'confirm', 'eval'];

/**
 * Script injected into a JavaScript string or statement context (`";alert(1);t="`, `';eval(name)//`): a call of a
 * classic sink right after a statement or operator character that itself follows a closing quote or starts the
 * value. The quote or start-of-value anchor keeps code in a blog body ("call alert(msg) when…") benign.
 */
function scriptBreakout(value: string): Hit | null {
  for (const sink of SCRIPT_SINKS) {
    for (let at = value.indexOf(sink); at !== -1; at = value.indexOf(sink, at + 1)) {
      let after = at + sink.length;
      while (value[after] === ' ') after++;
      if (value[after] !== '(' && value[after] !== '`') continue;
      let back = at - 1;
      while (back >= 0 && value[back] === ' ') back--;
      if (back < 0 || !';+-,|&'.includes(value[back]!)) continue;
      back--;
      while (back >= 0 && value[back] === ' ') back--;
      if (back < 0 || value[back] === '"' || value[back] === "'" || value[back] === '`') {
        return { fragment: value.slice(Math.max(0, back), at + 40), confidence: 'medium' };
      }
    }
  }
  return null;
}

export function detectXss(value: string): Hit | null {
  const hasTag = value.includes('<');
  if (hasTag) {
    // Attributes seen from an earlier opening cover every opening before the point that scan reached.
    let scannedTo = -1;
    for (let open = value.indexOf('<'); open !== -1; open = value.indexOf('<', open + 1)) {
      if (!isLetter(value.charCodeAt(open + 1))) continue;
      if (value.slice(open + 1, open + 7).toLowerCase() === 'script') {
        const next = value[open + 7];
        if (next === undefined || next === '>' || next === ' ' || next === '/' || next === '\t' || next === '\n')
          return { fragment: value.slice(open, open + 80), confidence: 'high' };
      }
      if (open < scannedTo) continue;
      const handler = eventHandler(value, open);
      if (handler >= 0) return { fragment: value.slice(open, Math.max(handler + 40, open + 40)), confidence: 'high' };
      scannedTo = -handler - 1;
    }
  }
  if (value.includes(':')) {
    const at = schemeUrl(value);
    if (at !== -1) return { fragment: value.slice(at, at + 80), confidence: 'high' };
  }
  return value.includes('(') || value.includes('`') ? scriptBreakout(value) : null;
}
