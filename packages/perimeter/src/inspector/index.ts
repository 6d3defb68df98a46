/**
 * The event inspector (`perimeter/inspector`): a function-level WAF that understands the trigger. inspectEvent()
 * recognises the trigger from the event's shape, extracts the attacker-controlled strings and keys (extract.ts),
 * decodes each through bounded layers (decode.ts) and runs linear-time detectors over every decoded form
 * (detectors/). It never throws: an internal error is reported as a finding, not passed to the handler.
 *
 * Stateless and dependency-free: it reads nothing from the guard's state, so its bundle (dist/inspector.js) is
 * self-contained.
 */
import { decodedVariants, MAX_DECODE_LAYERS, percentDecode } from './decode.js';
import { detectCommand } from './detectors/command.js';
import { detectMongoOperator, detectPollutionPath, detectPollutionValue, keySegments } from './detectors/keys.js';
import { detectSql } from './detectors/sql.js';
import { detectSsrf } from './detectors/ssrf.js';
import { detectTemplate } from './detectors/template.js';
import { detectTraversal } from './detectors/traversal.js';
import { detectXss } from './detectors/xss.js';
import { extract, lastSegment, recognizeTrigger, type Sink, walk } from './extract.js';
import type { Attack, AttackClass, Confidence, Hit, InspectionResult, InspectOptions, Trigger } from './types.js';

export { recognizeTrigger } from './extract.js';
export type { Attack, AttackClass, Confidence, InspectionResult, InspectOptions, Trigger } from './types.js';
export { decide, type FieldAllowRule, type InspectPolicy, isAllowed, type Verdict } from './verdict.js';

export const DEFAULT_MAX_FIELD_LENGTH = 131_072;
export const DEFAULT_MAX_DEPTH = 64;
export const DEFAULT_MAX_FIELDS = 10_000;
/** JSON documents nested inside strings inside JSON…: each one is a decoding layer. */
const MAX_JSON_LAYERS = 3;

/**
 * Character prefilter: each detector returns null, by its own first check, on a string without one of its
 * characters, so one pass over the string tells which detectors can be skipped. SQL and property paths can be
 * spelled in letters alone and always run.
 */
const ALWAYS = 0;
const COMMAND = 1; // ; | & newline ` $
const PATH = 2; // / \ .
const SLASH = 4; // /
const BRACE_OR_ANGLE = 8; // { <
const ANGLE_OR_COLON = 16; // < :

const CHARACTER_CLASSES = new Uint8Array(128);
for (const c of ';|&\n`$') CHARACTER_CLASSES[c.charCodeAt(0)]! |= COMMAND;
for (const c of '/\\.') CHARACTER_CLASSES[c.charCodeAt(0)]! |= PATH;
CHARACTER_CLASSES['/'.charCodeAt(0)]! |= SLASH;
for (const c of '{<') CHARACTER_CLASSES[c.charCodeAt(0)]! |= BRACE_OR_ANGLE;
for (const c of '<:') CHARACTER_CLASSES[c.charCodeAt(0)]! |= ANGLE_OR_COLON;
/** A character that starts a decoding layer (decodedVariants): percent-encoding, an entity, an escape. */
const ENCODED = 32; // % & \
for (const c of '%&\\') CHARACTER_CLASSES[c.charCodeAt(0)]! |= ENCODED;
/** A call: script breaking out of a JavaScript string (`';alert(1)//`) has no tag and no colon. */
const CALL = 64; // ( `
for (const c of '(`') CHARACTER_CLASSES[c.charCodeAt(0)]! |= CALL;
const ALL_CLASSES = COMMAND | PATH | SLASH | BRACE_OR_ANGLE | ANGLE_OR_COLON | ENCODED | CALL;

/** The prefilter classes whose characters occur in `value`. */
function characterClasses(value: string): number {
  let classes = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 128) {
      classes |= CHARACTER_CLASSES[code]!;
      if (classes === ALL_CLASSES) break;
    }
  }
  return classes;
}

const TEXT_DETECTORS: Array<[AttackClass, (value: string) => Hit | null, number]> = [
  ['sqli', detectSql, ALWAYS],
  ['cmdi', detectCommand, COMMAND],
  ['traversal', detectTraversal, PATH],
  ['ssrf', detectSsrf, SLASH],
  ['xss', detectXss, ANGLE_OR_COLON | CALL],
  ['template', detectTemplate, BRACE_OR_ANGLE],
  ['prototype-pollution', detectPollutionValue, ALWAYS],
];

const RANK: Record<Confidence, number> = { low: 0, medium: 1, high: 2 };

class Inspection implements Sink {
  readonly attacks = new Map<string, Attack>();
  private fields = 0;
  private truncated = false;

  constructor(
    readonly maxDepth: number,
    private readonly maxFieldLength: number,
    private readonly maxFields: number,
  ) {}

  report(attackClass: AttackClass, path: string, found: Hit): void {
    const id = `${attackClass}\u0000${path}`;
    const existing = this.attacks.get(id);
    if (existing && RANK[existing.confidence] >= RANK[found.confidence]) return;
    this.attacks.set(id, { class: attackClass, path, fragment: found.fragment, confidence: found.confidence });
  }

  oversize(path: string, reason: string): void {
    this.report('oversize', path, { fragment: reason, confidence: 'low' });
  }

  private admit(path: string): boolean {
    if (++this.fields <= this.maxFields) return true;
    if (!this.truncated) {
      this.truncated = true;
      this.oversize(path, `more than ${this.maxFields} fields; the rest was not scanned`);
    }
    return false;
  }

  value(path: string, text: string, depth: number, jsonLayers: number): void {
    if (!this.admit(path)) return;
    if (text.length > this.maxFieldLength) {
      this.oversize(path, `${text.length} characters (limit ${this.maxFieldLength})`);
      return;
    }
    if (text.length === 0) return;
    // A string that is a JSON document is judged by its parsed content: raw JSON punctuation is not an attack.
    const trimmedStart = text.charCodeAt(firstNonSpace(text));
    if ((trimmedStart === 123 /* { */ || trimmedStart === 91) /* [ */ && jsonLayers < MAX_JSON_LAYERS) {
      const parsed = parseJson(text);
      if (parsed !== undefined) {
        walk(this, path, parsed, depth + 1, jsonLayers + 1);
        return;
      }
    }
    const textClasses = characterClasses(text);
    if ((textClasses & ENCODED) === 0) {
      // Nothing to decode (decodedVariants would return the text alone): the common case, without its arrays.
      for (const [attackClass, detect, needs] of TEXT_DETECTORS) {
        if (needs !== ALWAYS && (textClasses & needs) === 0) continue;
        const found = detect(text);
        if (found) this.report(attackClass, path, found);
      }
      return;
    }
    const variants = decodedVariants(text);
    const classes = variants.map((variant, v) => (v === 0 ? textClasses : characterClasses(variant)));
    for (const [attackClass, detect, needs] of TEXT_DETECTORS) {
      for (let v = 0; v < variants.length; v++) {
        if (needs !== ALWAYS && (classes[v]! & needs) === 0) continue;
        const found = detect(variants[v]!);
        if (found) {
          this.report(attackClass, path, found);
          break;
        }
      }
    }
    // A decoded form that is JSON (a URL-encoded JSON query parameter) is walked too.
    const last = variants[variants.length - 1]!;
    if (last !== text && jsonLayers < MAX_JSON_LAYERS) {
      const start = last.charCodeAt(firstNonSpace(last));
      if (start === 123 || start === 91) {
        const parsed = parseJson(last);
        if (parsed !== undefined) walk(this, path, parsed, depth + 1, jsonLayers + 1);
      }
    }
  }

  key(path: string, key: string, parentPath: string | undefined): void {
    const operator = detectMongoOperator(key);
    if (operator) this.report('nosqli', path, operator);
    if (key !== '__proto__' && key !== 'prototype') return;
    const parentKey = parentPath === undefined ? '' : lastSegment(parentPath);
    if (key === '__proto__' || parentKey === 'constructor')
      this.report('prototype-pollution', path, {
        fragment: parentKey ? `${parentKey}.${key}` : key,
        confidence: 'high',
      });
  }

  queryKey(path: string, key: string): void {
    if (key.length > this.maxFieldLength) {
      this.oversize(path, `key of ${key.length} characters`);
      return;
    }
    const segments = keySegments(key.includes('%') ? percentDecode(key) : key);
    for (const segment of segments) {
      const operator = detectMongoOperator(segment);
      if (operator) {
        this.report('nosqli', path, { fragment: key.slice(0, 100), confidence: 'high' });
        break;
      }
    }
    const pollution = detectPollutionPath(segments);
    if (pollution) this.report('prototype-pollution', path, { fragment: key.slice(0, 100), confidence: 'high' });
  }
}

function firstNonSpace(text: string): number {
  let i = 0;
  while (i < text.length && i < 64 && text.charCodeAt(i) <= 32) i++;
  return i;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Inspects an event for attacks. `attacks` is empty for clean input; `oversize` entries name fields that were
 * not scanned because of the size, depth or field-count bounds.
 */
export function inspectEvent(event: unknown, options: InspectOptions = {}): InspectionResult {
  let trigger: Trigger = 'generic';
  const inspection = new Inspection(
    options.maxDepth ?? DEFAULT_MAX_DEPTH,
    options.maxFieldLength ?? DEFAULT_MAX_FIELD_LENGTH,
    options.maxFields ?? DEFAULT_MAX_FIELDS,
  );
  let failure: string | undefined;
  try {
    trigger = options.trigger ?? recognizeTrigger(event);
    extract(inspection, event, trigger, options.body);
  } catch (error) {
    // Fail closed, visibly: an event the inspector could not finish is reported (and decide() blocks it), never
    // silently passed.
    failure = `inspection stopped: ${error instanceof Error ? error.message : String(error)}`;
    inspection.oversize('', failure);
  }
  const result: InspectionResult = { trigger, attacks: [...inspection.attacks.values()] };
  if (failure !== undefined) result.error = failure;
  return result;
}

export { MAX_DECODE_LAYERS };
