/**
 * Reads Perimeter event files (JSON lines, docs/events.md) and the SQLite event store of `perimeter dev`
 * (docs/event-store.md). Strict by default because a policy is written from what is read here: a line we cannot
 * understand might be the one behaviour the function depends on, so it is an error with its line number (a
 * store's row id) unless the caller opts into skipping (`lenient`).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { EventStore, isSqliteFile } from '../dev/store.js';
import type { EventRecord } from '../dev/types.js';
import { type CliError, cliError } from '../errors.js';

/** An event as read for learn: the runtime's fields (docs/events.md) plus where the line came from. */
export interface PerimeterEventLine extends EventRecord {
  /** Where it was read from, for explanations. */
  source: { file: string; line: number };
}

export interface ReadEventsResult {
  events: PerimeterEventLine[];
  /** Lines skipped in lenient mode, each with why. */
  skipped: CliError[];
  /** Fields this reader does not know, by name: reported, not fatal (adding a field does not bump the version). */
  unknownFields: Map<string, number>;
  files: string[];
}

const KNOWN_VERSION = 1;
const KNOWN_FIELDS = new Set([
  'perimeter',
  'time',
  'type',
  'capability',
  'action',
  'target',
  'package',
  'function',
  'invocation',
  'packages',
  'reason',
  'deniedBy',
  'detail',
  'repeats',
]);
const REQUIRED_STRINGS = ['time', 'type', 'capability', 'action', 'target', 'package', 'function'] as const;

/** Lists the event files behind `input`: the file itself, or every `*.jsonl` in a folder (sorted, not recursive). */
export function eventFiles(input: string): string[] {
  let stats: ReturnType<typeof statSync>;
  try {
    stats = statSync(input);
  } catch (cause: any) {
    throw cliError('ERR_PERIMETER_EVENTS_READ', `Cannot read events: ${cause?.code ?? cause}`, {
      file: input,
      hint: 'pass a .jsonl file written through PERIMETER_EVENTS_FILE, a folder of them, or the events.db of `perimeter dev`',
      cause,
    });
  }
  if (!stats.isDirectory()) return [input];
  const files = readdirSync(input)
    .filter((name) => name.endsWith('.jsonl'))
    .sort()
    .map((name) => path.join(input, name));
  if (files.length === 0) {
    throw cliError('ERR_PERIMETER_EVENTS_READ', 'The folder holds no .jsonl event files', { file: input });
  }
  return files;
}

export function readEvents(inputs: readonly string[], options: { lenient?: boolean } = {}): ReadEventsResult {
  const result: ReadEventsResult = { events: [], skipped: [], unknownFields: new Map(), files: [] };
  for (const input of inputs) {
    for (const file of eventFiles(input)) {
      result.files.push(file);
      // Told apart by content, not by name: a store is whatever starts with SQLite's header.
      if (isSqliteFile(file)) {
        readStore(file, result, options.lenient === true);
        continue;
      }
      if (/\.(sqlite3?|db)$/i.test(file)) {
        throw cliError('ERR_PERIMETER_EVENTS_READ', 'The file is named like an SQLite event store but is not one', {
          file,
          hint: 'an event store written by `perimeter dev` starts with the SQLite header; if this holds JSON lines, rename it to .jsonl',
        });
      }
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (cause: any) {
        throw cliError('ERR_PERIMETER_EVENTS_READ', `Cannot read events: ${cause?.code ?? cause}`, { file, cause });
      }
      parseEventText(text, file, result, options.lenient === true);
    }
  }
  return result;
}

/** Every event of an event store, oldest first, read through a read-only connection (a running dev keeps writing). */
function readStore(file: string, into: ReadEventsResult, lenient: boolean): void {
  const store = EventStore.open(file, { readonly: true });
  try {
    const last = store.lastId();
    let after = 0;
    for (;;) {
      const page = store.query({ afterId: after, order: 'asc', limit: 10_000 });
      for (const { id, event } of page) {
        if (id > last) break;
        try {
          const checked = checkEvent(event as unknown as Record<string, unknown>, file, id);
          countUnknown(checked, into);
          into.events.push(checked);
        } catch (error) {
          if (!lenient) throw error;
          into.skipped.push(error as CliError);
        }
      }
      if (page.length < 10_000 || page[page.length - 1]!.id >= last) break;
      after = page[page.length - 1]!.id;
    }
  } finally {
    store.close();
  }
}

function countUnknown(event: PerimeterEventLine, into: ReadEventsResult): void {
  for (const key of Object.keys(event)) {
    if (!KNOWN_FIELDS.has(key) && key !== 'source') {
      into.unknownFields.set(key, (into.unknownFields.get(key) ?? 0) + 1);
    }
  }
}

/** Parses one file's text into `into`; exported for tests. */
export function parseEventText(text: string, file: string, into: ReadEventsResult, lenient: boolean): void {
  const lines = text.split('\n');
  const endsWithNewline = text.endsWith('\n');
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index]!;
    const lineNumber = index + 1;
    if (raw.trim() === '') continue;
    const isLast = index === lines.length - 1;
    try {
      const event = parseEventLine(raw, file, lineNumber, isLast && !endsWithNewline);
      if (event === null) continue;
      countUnknown(event, into);
      into.events.push(event);
    } catch (error) {
      if (!lenient) throw error;
      into.skipped.push(error as CliError);
    }
  }
}

function parseEventLine(raw: string, file: string, line: number, unterminatedLast: boolean): PerimeterEventLine | null {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (cause) {
    if (unterminatedLast && raw.trimStart().startsWith('{')) {
      throw cliError('ERR_PERIMETER_EVENTS_TRUNCATED', 'The last line is cut off', {
        file,
        line,
        hint: 'the writing process was probably killed; fix or delete the line, or pass --lenient to skip it',
        cause,
      });
    }
    throw cliError('ERR_PERIMETER_EVENTS_JSON', `Line is not JSON: ${preview(raw)}`, {
      file,
      line,
      hint: 'events files hold one JSON event per line; pass --lenient to skip other lines',
      cause,
    });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw cliError('ERR_PERIMETER_EVENTS_INVALID', `Line is not an event object: ${preview(raw)}`, { file, line });
  }
  return checkEvent(value as Record<string, unknown>, file, line);
}

/** The checks every event passes, whether from a line of JSON or a row of a store. */
function checkEvent(record: Record<string, unknown>, file: string, line: number): PerimeterEventLine {
  if (!('perimeter' in record)) {
    throw cliError('ERR_PERIMETER_EVENTS_INVALID', 'Line has no "perimeter" field: not a Perimeter event', {
      file,
      line,
      hint: 'pass --lenient to skip lines other programs wrote',
    });
  }
  if (record.perimeter !== KNOWN_VERSION) {
    throw cliError(
      'ERR_PERIMETER_EVENTS_VERSION',
      `Event format version ${JSON.stringify(record.perimeter)} is not supported (this CLI reads version ${KNOWN_VERSION})`,
      { file, line, hint: 'upgrade @perimeter/cli to read events written by a newer runtime' },
    );
  }
  for (const key of REQUIRED_STRINGS) {
    if (typeof record[key] !== 'string') {
      throw cliError('ERR_PERIMETER_EVENTS_INVALID', `Event field "${key}" is missing or not a string`, { file, line });
    }
  }
  if (record.invocation !== null && typeof record.invocation !== 'string') {
    throw cliError('ERR_PERIMETER_EVENTS_INVALID', 'Event field "invocation" must be a string or null', {
      file,
      line,
    });
  }
  if (record.packages !== undefined && !isStringArray(record.packages)) {
    throw cliError('ERR_PERIMETER_EVENTS_INVALID', 'Event field "packages" must be a list of strings', { file, line });
  }
  if (record.repeats !== undefined && !(Number.isInteger(record.repeats) && (record.repeats as number) >= 0)) {
    throw cliError('ERR_PERIMETER_EVENTS_INVALID', 'Event field "repeats" must be a whole number', { file, line });
  }
  return { ...(record as unknown as PerimeterEventLine), source: { file, line } };
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function preview(raw: string): string {
  return JSON.stringify(raw.length > 60 ? `${raw.slice(0, 60)}…` : raw);
}
