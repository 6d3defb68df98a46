/**
 * The embedded event store of `perimeter dev` (docs/event-store.md): one SQLite file through better-sqlite3, in
 * WAL mode so the dashboard (or `sqlite3`, or `perimeter learn --events`) can read while the host writes.
 *
 * Events arrive from a function process's stderr, which is hostile input: a line that is not a well-formed event
 * is refused and counted, never thrown back at the parser and never stored half-formed. Appends only queue;
 * batches are written in one transaction each, which is what makes a burst of thousands of events per second
 * cheap. Nothing queued is dropped while the disk takes writes: past a high-water mark the caller waits for the
 * write instead (back-pressure).
 */
import { closeSync, existsSync, mkdirSync, openSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { type CliError, cliError, isCliError } from '../errors.js';
import type {
  CountByName,
  EventQuery,
  EventRecord,
  EventStoreApi,
  EventStoreOptions,
  FunctionRecord,
  InvocationRecord,
  StoredEvent,
  Summary,
  SummaryQuery,
} from './types.js';

/** Bumped when the tables change; a file from a newer version is refused rather than misread. */
export const SCHEMA_VERSION = 1;
/** `PRAGMA application_id`: marks the file as a Perimeter store ('PRMT'), so a foreign database is never written. */
export const APPLICATION_ID = 0x50524d54;
/** Events larger than this (as JSON) are refused: the runtime never writes one, a runaway or hostile process might. */
export const MAX_EVENT_BYTES = 64 * 1024;
/** The edges the summary keeps, heaviest first: an fs-heavy function can name thousands of paths. */
export const MAX_EDGES = 500;
const MAX_BUCKETS = 120;
const SQLITE_HEADER = Buffer.from('SQLite format 3\0', 'latin1');

export interface StoreOpenOptions extends EventStoreOptions {
  /** How long a statement waits for another connection's lock before failing (SQLite `busy_timeout`). Default 3,000 ms. */
  busyTimeoutMs?: number;
  /** Write failures of background flushes (the events stay queued and are retried). Default: a process warning. */
  onError?: (error: CliError) => void;
}

export interface StoreStats {
  /** Events waiting to be written. */
  queued: number;
  /** Events refused by `append` (not an event, too large, store closed). */
  rejected: number;
  /** Events dropped because writes kept failing and the queue reached its hard limit. */
  dropped: number;
  /** The last write failure, while it lasts. */
  lastError: CliError | null;
}

interface Row {
  ts: number;
  function: string;
  type: string;
  capability: string;
  action: string;
  package: string;
  target: string;
  destination: string;
  invocation: string | null;
  reason: string | null;
  weight: number;
  json: string;
}

const SCHEMA = `
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts INTEGER NOT NULL,
  function TEXT NOT NULL,
  type TEXT NOT NULL,
  capability TEXT NOT NULL,
  action TEXT NOT NULL,
  package TEXT NOT NULL,
  target TEXT NOT NULL,
  destination TEXT NOT NULL,
  invocation TEXT,
  reason TEXT,
  weight INTEGER NOT NULL,
  json TEXT NOT NULL
);
CREATE INDEX events_function ON events (function, id);
CREATE INDEX events_package ON events (package, id);
CREATE INDEX events_action ON events (action, id);
CREATE INDEX events_ts ON events (ts, action, weight);
CREATE INDEX events_summary ON events (function, package, destination, capability, type, action, ts, weight);
CREATE TABLE functions (
  name TEXT PRIMARY KEY,
  json TEXT NOT NULL
);
CREATE TABLE invocations (
  id TEXT PRIMARY KEY,
  function TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  json TEXT NOT NULL
);
CREATE INDEX invocations_function ON invocations (function, start_ms);
CREATE INDEX invocations_start ON invocations (start_ms);
`;

const REQUIRED_STRINGS = ['time', 'type', 'capability', 'action', 'target', 'package', 'function'] as const;

/**
 * Why `value` is not an event the store keeps, or null when it is. The same rules `perimeter learn` applies to
 * an events file, so whatever the store holds can be learned from.
 */
export function eventProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const record = value as Record<string, unknown>;
  if (record.perimeter !== 1) return '"perimeter" is not 1';
  for (const key of REQUIRED_STRINGS) if (typeof record[key] !== 'string') return `"${key}" is not a string`;
  if (record.invocation !== null && typeof record.invocation !== 'string')
    return '"invocation" is not a string or null';
  if (record.packages !== undefined && !(Array.isArray(record.packages) && record.packages.every(isString))) {
    return '"packages" is not a list of strings';
  }
  if (record.reason !== undefined && typeof record.reason !== 'string') return '"reason" is not a string';
  if (record.repeats !== undefined && !(Number.isSafeInteger(record.repeats) && (record.repeats as number) >= 0)) {
    return '"repeats" is not a whole number';
  }
  return null;
}

const isString = (value: unknown): value is string => typeof value === 'string';

/**
 * What the dashboard's graph shows as where an event went: one node per service, not per request. HTTP targets
 * lose their method, path and query; DNS names keep their last two labels, because exfiltration over DNS encodes
 * the data in the labels in front (one node per stolen secret would bury the attack, one `*.attacker.example`
 * node shows it).
 */
export function destinationOf(event: Pick<EventRecord, 'capability' | 'target'>): string {
  const target = event.target;
  switch (event.capability) {
    case 'network': {
      const url = /^(?:[A-Z]+ )?([a-z][a-z0-9+.-]*):\/\/(?:[^/?#@]*@)?([^/?#]*)/i.exec(target);
      if (url) return `${url[1]!.toLowerCase()}://${url[2]}`;
      if (target.startsWith('dns:')) return dnsDestination(target.slice(4));
      return target;
    }
    case 'fs':
      return target.replace(/^(?:read|write) /, '');
    case 'process':
      return target.split(' ', 1)[0]!;
    case 'env': {
      const words = target.trim().split(/\s+/);
      return `env:${words[words.length - 1]}`;
    }
    default:
      return target;
  }
}

function dnsDestination(name: string): string {
  const host = name.endsWith('.') ? name.slice(0, -1) : name;
  if (/^\d+(\.\d+){3}$/.test(host) || host.includes(':')) return `dns:${host}`;
  const labels = host.split('.');
  return labels.length > 2 ? `dns:*.${labels.slice(-2).join('.')}` : `dns:${host}`;
}

function toRow(event: EventRecord, json: string): Row {
  const parsed = Date.parse(event.time);
  return {
    // A line with an unreadable time still happened: file it under when it arrived.
    ts: Number.isFinite(parsed) ? parsed : Date.now(),
    function: event.function,
    type: event.type,
    capability: event.capability,
    action: event.action,
    package: event.package,
    target: event.target,
    destination: destinationOf(event),
    invocation: event.invocation,
    reason: event.reason ?? null,
    weight: event.repeats ?? 1,
    json,
  };
}

/** The width of a timeline bucket: a round duration that spreads `spanMs` over at most MAX_BUCKETS buckets. */
export function bucketFor(firstMs: number, lastMs: number, maxBuckets = MAX_BUCKETS): number {
  const second = 1000;
  const minute = 60 * second;
  const hour = 60 * minute;
  const day = 24 * hour;
  const steps = [
    second,
    2 * second,
    5 * second,
    10 * second,
    15 * second,
    30 * second,
    minute,
    2 * minute,
    5 * minute,
    10 * minute,
    15 * minute,
    30 * minute,
    hour,
    2 * hour,
    3 * hour,
    6 * hour,
    12 * hour,
    day,
    2 * day,
    7 * day,
  ];
  const fits = (width: number) => Math.floor(lastMs / width) - Math.floor(firstMs / width) + 1 <= maxBuckets;
  for (const step of steps) if (fits(step)) return step;
  let width = 7 * day;
  while (!fits(width)) width *= 2;
  return width;
}

function sqliteCode(error: unknown): string {
  return typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : '';
}

/** Turns an SQLite failure into the store's coded errors; anything unexpected keeps its message. */
function storeError(file: string, error: unknown, doing: string): CliError {
  if (isCliError(error)) return error;
  const code = sqliteCode(error);
  const message = (error as Error)?.message ?? String(error);
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return cliError('ERR_PERIMETER_STORE_LOCKED', `The event store is locked by another process (${doing})`, {
      file,
      hint: 'another `perimeter dev` or an open sqlite3 shell holds a write lock on it; stop it, or pass --db <other file>',
      cause: error,
    });
  }
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') {
    return cliError('ERR_PERIMETER_STORE_CORRUPT', `The event store is damaged: ${message}`, {
      file,
      hint: 'nothing was changed in it; move it away (or delete it) and a new store is created, or pass --db <other file>',
      cause: error,
    });
  }
  if (/bindings file|better_sqlite3\.node|NODE_MODULE_VERSION/.test(message) || code === 'ERR_DLOPEN_FAILED') {
    return cliError('ERR_PERIMETER_STORE_OPEN', `SQLite (better-sqlite3) could not be loaded: ${message}`, {
      file,
      hint: 'its native module is missing or was built for another Node.js version: run `npm rebuild better-sqlite3`',
      cause: error,
    });
  }
  return cliError('ERR_PERIMETER_STORE_OPEN', `The event store could not be used (${doing}): ${message}`, {
    file,
    hint:
      code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_PERM')
        ? 'check that the folder exists and is writable, or pass --db <other file>'
        : 'pass --db <other file>',
    cause: error,
  });
}

/** True when the file starts with SQLite's magic header (how `learn --events` tells a store from JSON lines). */
export function isSqliteFile(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(SQLITE_HEADER.length);
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(SQLITE_HEADER);
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export class EventStore implements EventStoreApi {
  readonly file: string;
  readonly readonly: boolean;
  private readonly db: Database.Database;
  private readonly retention: number;
  private readonly batchSize: number;
  private readonly highWater: number;
  private readonly hardLimit: number;
  private readonly flushIntervalMs: number;
  private readonly onError: (error: CliError) => void;
  private queue: Row[] = [];
  private pendingInvocations: InvocationRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private closed = false;
  private rejected = 0;
  private dropped = 0;
  private lastError: CliError | null = null;
  private summaryCache: { key: string; value: Summary } | null = null;
  private readonly writeBatch: ((rows: Row[], invocations: InvocationRecord[]) => void) | null;
  private readonly lastIdStatement: Database.Statement;
  private readonly functionsStatement: Database.Statement;
  private readonly upsertStatement: Database.Statement | null;

  /**
   * Opens the store at `file`, creating it (and its folder) unless `readonly`. Throws CliErrors:
   * ERR_PERIMETER_STORE_OPEN (cannot create or read; not a Perimeter store; newer schema), _CORRUPT (not SQLite
   * or damaged; the file is left as it is), _LOCKED (another process holds a write lock).
   */
  static open(file: string, options: StoreOpenOptions = {}): EventStore {
    const absolute = path.resolve(file);
    const readonly = options.readonly === true;
    const exists = existsSync(absolute);
    if (readonly && !exists) {
      throw cliError('ERR_PERIMETER_STORE_OPEN', 'The event store does not exist', {
        file: absolute,
        hint: 'run `perimeter dev` first (it writes <dir>/.perimeter/events.db), or pass the path of an existing store',
      });
    }
    if (!exists) {
      try {
        mkdirSync(path.dirname(absolute), { recursive: true });
      } catch (cause: any) {
        throw cliError('ERR_PERIMETER_STORE_OPEN', `Cannot create the event store's folder: ${cause?.code ?? cause}`, {
          file: absolute,
          hint: 'check the permissions of the folder, or pass --db <other file>',
          cause,
        });
      }
    } else {
      let size: number;
      try {
        const stats = statSync(absolute);
        if (stats.isDirectory()) {
          throw cliError('ERR_PERIMETER_STORE_OPEN', 'The event store path is a folder', {
            file: absolute,
            hint: 'pass the path of a file, e.g. <dir>/.perimeter/events.db',
          });
        }
        size = stats.size;
      } catch (cause) {
        throw storeError(absolute, cause, 'reading it');
      }
      // Checked before SQLite touches it: an existing file that is not a database is never written to.
      if (size > 0 && !isSqliteFile(absolute)) {
        throw cliError('ERR_PERIMETER_STORE_CORRUPT', 'The event store file is not an SQLite database', {
          file: absolute,
          hint: 'nothing was changed in it; move it away (or delete it) and a new store is created, or pass --db <other file>',
        });
      }
    }
    let db: Database.Database;
    try {
      db = new Database(absolute, { readonly, fileMustExist: readonly });
    } catch (cause) {
      throw storeError(absolute, cause, 'opening it');
    }
    try {
      return new EventStore(absolute, db, options);
    } catch (cause) {
      try {
        db.close();
      } catch {}
      throw storeError(absolute, cause, 'opening it');
    }
  }

  private constructor(file: string, db: Database.Database, options: StoreOpenOptions) {
    this.file = file;
    this.db = db;
    this.readonly = options.readonly === true;
    this.retention = Math.max(1, Math.floor(options.retention ?? 500_000));
    this.batchSize = Math.max(1, Math.floor(options.batchSize ?? 1000));
    this.highWater = 10 * this.batchSize;
    this.hardLimit = Math.max(1_000_000, 100 * this.highWater);
    this.flushIntervalMs = Math.max(1, options.flushIntervalMs ?? 50);
    this.onError =
      options.onError ?? ((error) => process.emitWarning(error.message, { code: error.code, type: 'PerimeterStore' }));

    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 3000))}`);
    this.prepareSchema();
    if (!this.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      // Fails now, with a clear error, rather than at the first flush when another process holds the write lock.
      db.exec('BEGIN IMMEDIATE');
      db.exec('ROLLBACK');
    }

    this.lastIdStatement = db.prepare('SELECT max(id) AS id FROM events');
    this.functionsStatement = db.prepare('SELECT json FROM functions ORDER BY name');
    if (this.readonly) {
      this.writeBatch = null;
      this.upsertStatement = null;
      return;
    }
    const insertEvent = db.prepare(
      `INSERT INTO events (ts, function, type, capability, action, package, target, destination, invocation, reason, weight, json)
       VALUES (@ts, @function, @type, @capability, @action, @package, @target, @destination, @invocation, @reason, @weight, @json)`,
    );
    // Ids only grow (AUTOINCREMENT), so "the newest `retention` rows" is an id range: one indexed delete.
    const trim = db.prepare('DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?');
    const trimInvocations = db.prepare(
      'DELETE FROM invocations WHERE rowid <= (SELECT max(rowid) FROM invocations) - ?',
    );
    const insertInvocation = db.prepare(
      `INSERT OR REPLACE INTO invocations (id, function, start_ms, duration_ms, outcome, json)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.upsertStatement = db.prepare(
      'INSERT INTO functions (name, json) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET json = excluded.json',
    );
    const retention = this.retention;
    this.writeBatch = db.transaction((rows: Row[], invocations: InvocationRecord[]) => {
      for (const row of rows) insertEvent.run(row);
      for (const record of invocations) {
        insertInvocation.run(
          record.id,
          record.function,
          Math.floor(record.startMs),
          Math.floor(record.durationMs),
          record.outcome,
          JSON.stringify(record),
        );
      }
      if (rows.length > 0) trim.run(retention);
      if (invocations.length > 0) trimInvocations.run(retention);
    });
  }

  private prepareSchema(): void {
    const db = this.db;
    // Reading the header and schema is what fails on a damaged or foreign file; quick_check catches a truncated
    // one whose first pages are intact. Both before anything is written.
    const version = db.pragma('user_version', { simple: true }) as number;
    const applicationId = db.pragma('application_id', { simple: true }) as number;
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
      (row) => row.name,
    );
    const check = db.pragma('quick_check(1)', { simple: true });
    if (check !== 'ok') {
      throw cliError('ERR_PERIMETER_STORE_CORRUPT', `The event store is damaged: ${String(check)}`, {
        file: this.file,
        hint: 'nothing was changed in it; move it away (or delete it) and a new store is created, or pass --db <other file>',
      });
    }
    if (version > SCHEMA_VERSION && applicationId === APPLICATION_ID) {
      throw cliError(
        'ERR_PERIMETER_STORE_OPEN',
        `The event store was written by a newer @perimeter/cli (store schema ${version}; this one reads up to ${SCHEMA_VERSION})`,
        { file: this.file, hint: 'upgrade @perimeter/cli, or pass --db <other file> to start a new store' },
      );
    }
    if (applicationId === APPLICATION_ID && version === SCHEMA_VERSION) return;
    const empty = tables.length === 0 && version === 0 && applicationId === 0;
    if (!empty) {
      throw cliError('ERR_PERIMETER_STORE_OPEN', 'The file is an SQLite database, but not a Perimeter event store', {
        file: this.file,
        hint: 'it was left as it is; pass --db <other file> (perimeter dev writes <dir>/.perimeter/events.db)',
      });
    }
    if (this.readonly) {
      throw cliError('ERR_PERIMETER_STORE_OPEN', 'The file is an empty SQLite database, not a Perimeter event store', {
        file: this.file,
        hint: 'pass the events.db that `perimeter dev` wrote',
      });
    }
    db.transaction(() => {
      db.exec(SCHEMA);
      db.pragma(`application_id = ${APPLICATION_ID}`);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }).immediate();
  }

  /**
   * Queues one event; returns false (and counts it) when it is refused: not a Perimeter event, larger than
   * MAX_EVENT_BYTES, or the store is closed. Never throws for bad input.
   */
  append(event: EventRecord): boolean {
    if (this.readonly) throw new Error('EventStore: append on a store opened read-only');
    if (this.closed || eventProblem(event) !== null) {
      this.rejected++;
      return false;
    }
    let json: string;
    try {
      json = JSON.stringify(event);
    } catch {
      this.rejected++;
      return false;
    }
    if (json.length > MAX_EVENT_BYTES) {
      this.rejected++;
      return false;
    }
    if (this.queue.length >= this.hardLimit) {
      // Only reached while writes keep failing (the disk is full, the file was locked for minutes); memory must
      // stay bounded, so the newest are counted and dropped.
      this.dropped++;
      return true;
    }
    this.queue.push(toRow(event, json));
    // While writes are failing, the retry timer is already set: a locked file must not stall every line for the
    // busy timeout.
    if (this.lastError !== null) return true;
    if (this.queue.length >= this.highWater) this.backgroundFlush();
    else if (this.queue.length >= this.batchSize) this.schedule(true);
    else this.schedule(false);
    return true;
  }

  stats(): StoreStats {
    return { queued: this.queue.length, rejected: this.rejected, dropped: this.dropped, lastError: this.lastError };
  }

  private schedule(soon: boolean): void {
    if (soon) {
      // A full batch is written as soon as the current burst of lines has been handled.
      if (this.immediate === null) {
        this.immediate = setImmediate(() => {
          this.immediate = null;
          this.backgroundFlush();
        });
        this.immediate.unref();
      }
      return;
    }
    if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.backgroundFlush();
      }, this.flushIntervalMs);
      this.timer.unref();
    }
  }

  private retryLater(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.backgroundFlush();
      },
      Math.max(this.flushIntervalMs, 1000),
    );
    this.timer.unref();
  }

  /** A flush nobody waits on: a failure keeps the events queued, is reported once, and is retried. */
  private backgroundFlush(): void {
    try {
      this.flush();
    } catch (error) {
      const first = this.lastError === null;
      this.lastError = storeError(this.file, error, 'writing events');
      if (first) this.onError(this.lastError);
      if (!this.closed) this.retryLater();
    }
  }

  flush(): void {
    if (this.writeBatch === null || (this.queue.length === 0 && this.pendingInvocations.length === 0)) return;
    if (this.closed) return;
    const rows = this.queue;
    const invocations = this.pendingInvocations;
    try {
      this.writeBatch(rows, invocations);
    } catch (error) {
      throw storeError(this.file, error, 'writing events');
    }
    // Only once the transaction committed: a failed one leaves everything queued for the next try.
    this.queue = [];
    this.pendingInvocations = [];
    this.lastError = null;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }

  /** Reads see what was appended: pending events are written first (when that fails, reads show what is stored). */
  private settle(): void {
    if (this.writeBatch !== null && !this.closed && this.lastError === null) this.backgroundFlush();
  }

  query(query: EventQuery = {}): StoredEvent[] {
    this.settle();
    const { where, params } = whereClause(query);
    if (query.afterId !== undefined) {
      where.push('id > @afterId');
      params.afterId = Math.floor(query.afterId);
    }
    if (query.beforeId !== undefined) {
      where.push('id < @beforeId');
      params.beforeId = Math.floor(query.beforeId);
    }
    params.limit = Math.min(10_000, Math.max(1, Math.floor(query.limit ?? 200)));
    const order = query.order === 'asc' ? 'ASC' : 'DESC';
    const sql = `SELECT id, json, ts, function, type, capability, action, package, target, invocation, reason, weight
      FROM events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id ${order} LIMIT @limit`;
    const rows = this.read(() => this.db.prepare(sql).all(params)) as Array<Row & { id: number }>;
    return rows.map((row) => ({ id: row.id, event: parseStored(row) }));
  }

  lastId(): number {
    this.settle();
    return (this.read(() => this.lastIdStatement.get()) as { id: number | null }).id ?? 0;
  }

  /** How many stored events (rows) match; a repeat summary counts once here, by its `repeats` in summary(). */
  count(query: Omit<EventQuery, 'afterId' | 'beforeId' | 'limit' | 'order'> = {}): number {
    this.settle();
    const { where, params } = whereClause(query);
    const sql = `SELECT count(*) AS n FROM events ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}`;
    return (this.read(() => this.db.prepare(sql).get(params)) as { n: number }).n;
  }

  summary(query: SummaryQuery = {}): Summary {
    this.settle();
    // The dashboard asks every second or so; with nothing new, the answer is the same.
    const marks = this.read(() =>
      this.db
        .prepare(
          `SELECT (SELECT max(id) FROM events) AS maxId, (SELECT min(id) FROM events) AS minId,
                  (SELECT max(rowid) FROM invocations) AS maxInv, (SELECT count(*) FROM invocations) AS invCount`,
        )
        .get(),
    );
    const key = JSON.stringify([query, marks]);
    if (this.summaryCache?.key === key) return structuredClone(this.summaryCache.value);
    const value = this.read(() => this.computeSummary(query));
    this.summaryCache = { key, value };
    return structuredClone(value);
  }

  private computeSummary(query: SummaryQuery): Summary {
    const db = this.db;
    const { where, params } = whereClause({ function: query.function, sinceMs: query.sinceMs });
    const filter = where.length > 0 ? `WHERE ${where.join(' AND ')}` : '';
    const and = (extra: string) => (where.length > 0 ? `WHERE ${where.join(' AND ')} AND ${extra}` : `WHERE ${extra}`);
    // One pass over a covering index, in its order (no sort), gives every count but the timeline.
    const groups = db
      .prepare(
        `SELECT function, package, destination, capability, type, action, sum(weight) AS weight, min(ts) AS first, max(ts) AS last
         FROM events INDEXED BY events_summary ${filter}
         GROUP BY function, package, destination, capability, type, action`,
      )
      .all(params) as Array<{
      function: string;
      package: string;
      destination: string;
      capability: string;
      type: string;
      action: string;
      weight: number;
      first: number;
      last: number;
    }>;
    const totals = {
      total: 0,
      blocked: 0,
      alerted: 0,
      observed: 0,
      first: null as number | null,
      last: null as number | null,
    };
    const byFunction = new Map<string, CountByName>();
    const byPackage = new Map<string, CountByName>();
    const edgeMap = new Map<string, Summary['edges'][number]>();
    const tally = (map: Map<string, CountByName>, name: string, action: string, weight: number) => {
      let entry = map.get(name);
      if (entry === undefined) map.set(name, (entry = { name, total: 0, blocked: 0, alerted: 0 }));
      entry.total += weight;
      if (action === 'blocked') entry.blocked += weight;
      else if (action === 'alerted') entry.alerted += weight;
    };
    for (const group of groups) {
      totals.total += group.weight;
      if (group.action === 'blocked') totals.blocked += group.weight;
      else if (group.action === 'alerted') totals.alerted += group.weight;
      else if (group.action === 'observed') totals.observed += group.weight;
      totals.first = totals.first === null ? group.first : Math.min(totals.first, group.first);
      totals.last = totals.last === null ? group.last : Math.max(totals.last, group.last);
      tally(byFunction, group.function, group.action, group.weight);
      tally(byPackage, group.package, group.action, group.weight);
      if (group.type !== 'violation') continue;
      const key = JSON.stringify([group.function, group.package, group.destination, group.capability]);
      let edge = edgeMap.get(key);
      if (edge === undefined) {
        edge = {
          function: group.function,
          package: group.package,
          destination: group.destination,
          capability: group.capability,
          blocked: 0,
          alerted: 0,
        };
        edgeMap.set(key, edge);
      }
      if (group.action === 'blocked') edge.blocked += group.weight;
      else if (group.action === 'alerted') edge.alerted += group.weight;
    }
    const heaviest = (a: CountByName, b: CountByName) => b.total - a.total || (a.name < b.name ? -1 : 1);
    const functions = [...byFunction.values()].sort(heaviest);
    const packages = [...byPackage.values()].sort(heaviest);
    const edges = [...edgeMap.values()]
      .sort((a, b) => b.blocked + b.alerted - (a.blocked + a.alerted))
      .slice(0, MAX_EDGES);

    let bucketMs = 1000;
    const buckets: Summary['timeline']['buckets'] = [];
    if (totals.first !== null && totals.last !== null) {
      let first = totals.first;
      const last = totals.last;
      if (query.bucketMs !== undefined && query.bucketMs >= 1) {
        bucketMs = Math.floor(query.bucketMs);
        // A width too fine for the span keeps the most recent buckets (a live view's window).
        first = Math.max(first, (Math.floor(last / bucketMs) - (MAX_BUCKETS - 1)) * bucketMs);
      } else {
        bucketMs = bucketFor(first, last);
      }
      const rows = db
        .prepare(
          `SELECT ts - (ts % @bucketMs) AS start,
             coalesce(sum(CASE WHEN action = 'blocked' THEN weight END), 0) AS blocked,
             coalesce(sum(CASE WHEN action = 'alerted' THEN weight END), 0) AS alerted,
             coalesce(sum(CASE WHEN action NOT IN ('blocked', 'alerted') THEN weight END), 0) AS other
           FROM events INDEXED BY events_ts ${and('ts >= @firstBucket')} GROUP BY start ORDER BY start`,
        )
        .all({ ...params, bucketMs, firstBucket: Math.floor(first / bucketMs) * bucketMs }) as Array<{
        start: number;
        blocked: number;
        alerted: number;
        other: number;
      }>;
      const found = new Map(rows.map((row) => [row.start, row]));
      // Contiguous, empty buckets included: a chart can plot them as they are.
      for (let start = Math.floor(first / bucketMs) * bucketMs; start <= last; start += bucketMs) {
        const row = found.get(start);
        buckets.push({ start, blocked: row?.blocked ?? 0, alerted: row?.alerted ?? 0, other: row?.other ?? 0 });
      }
    }

    const invocationWhere: string[] = [];
    const invocationParams: Record<string, unknown> = {};
    if (query.function !== undefined) {
      invocationWhere.push('function = @function');
      invocationParams.function = query.function;
    }
    if (query.sinceMs !== undefined) {
      invocationWhere.push('start_ms >= @sinceMs');
      invocationParams.sinceMs = Math.floor(query.sinceMs);
    }
    const invocations = db
      .prepare(
        `SELECT count(*) AS total, coalesce(sum(outcome <> 'ok'), 0) AS errors FROM invocations
         ${invocationWhere.length > 0 ? `WHERE ${invocationWhere.join(' AND ')}` : ''}`,
      )
      .get(invocationParams) as { total: number; errors: number };

    return {
      total: totals.total,
      blocked: totals.blocked,
      alerted: totals.alerted,
      observed: totals.observed,
      functions,
      packages,
      timeline: { bucketMs, buckets },
      edges,
      invocations,
    };
  }

  upsertFunction(record: FunctionRecord): void {
    const statement = this.upsertStatement;
    if (statement === null) throw new Error('EventStore: write on a read-only store');
    if (this.closed) return;
    this.write(() => statement.run(record.name, JSON.stringify(record)));
  }

  functions(): FunctionRecord[] {
    return (this.read(() => this.functionsStatement.all()) as { json: string }[]).flatMap((row) => {
      try {
        return [JSON.parse(row.json) as FunctionRecord];
      } catch {
        return [];
      }
    });
  }

  /** Queued with the events (same transaction); visible to reads at once. */
  recordInvocation(record: InvocationRecord): void {
    if (this.writeBatch === null) throw new Error('EventStore: write on a read-only store');
    if (this.closed) return;
    this.pendingInvocations.push(record);
    this.schedule(false);
  }

  invocations(query: { function?: string; afterStartMs?: number; limit?: number } = {}): InvocationRecord[] {
    this.settle();
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: Math.min(10_000, Math.max(1, Math.floor(query.limit ?? 200))) };
    if (query.function !== undefined) {
      where.push('function = @function');
      params.function = query.function;
    }
    if (query.afterStartMs !== undefined) {
      where.push('start_ms > @afterStartMs');
      params.afterStartMs = Math.floor(query.afterStartMs);
    }
    const sql = `SELECT json FROM invocations ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY start_ms DESC, rowid DESC LIMIT @limit`;
    return (this.read(() => this.db.prepare(sql).all(params)) as { json: string }[]).flatMap((row) => {
      try {
        return [JSON.parse(row.json) as InvocationRecord];
      } catch {
        return [];
      }
    });
  }

  /** Writes what is queued and closes the file. A final write failure is thrown after the file is closed. */
  close(): void {
    if (this.closed) return;
    let failure: unknown;
    try {
      this.flush();
    } catch (error) {
      failure = error;
    }
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.immediate !== null) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    const lost = this.queue.length;
    this.db.close();
    if (failure !== undefined) {
      const error = storeError(this.file, failure, `writing the last ${lost} event(s) on close`);
      throw error;
    }
  }

  private read<T>(run: () => T): T {
    if (this.closed) throw new Error('EventStore: the store is closed');
    try {
      return run();
    } catch (error) {
      throw storeError(this.file, error, 'reading events');
    }
  }

  private write<T>(run: () => T): T {
    try {
      return run();
    } catch (error) {
      throw storeError(this.file, error, 'writing');
    }
  }
}

function whereClause(query: Omit<EventQuery, 'afterId' | 'beforeId' | 'limit' | 'order'>): {
  where: string[];
  params: Record<string, unknown>;
} {
  const where: string[] = [];
  const params: Record<string, unknown> = {};
  for (const key of ['function', 'package', 'action', 'type', 'capability'] as const) {
    const value = query[key];
    if (value !== undefined) {
      where.push(`${key} = @${key}`);
      params[key] = value;
    }
  }
  if (query.sinceMs !== undefined) {
    where.push('ts >= @sinceMs');
    params.sinceMs = Math.floor(query.sinceMs);
  }
  return { where, params };
}

/** The stored JSON; when someone edited it into something unreadable, the event as the columns have it. */
function parseStored(row: Row & { id: number }): EventRecord {
  try {
    const value = JSON.parse(row.json);
    if (eventProblem(value) === null) return value as EventRecord;
  } catch {}
  return {
    perimeter: 1,
    time: new Date(row.ts).toISOString(),
    type: row.type,
    capability: row.capability,
    action: row.action,
    target: row.target,
    package: row.package,
    function: row.function,
    invocation: row.invocation,
    ...(row.reason !== null ? { reason: row.reason } : {}),
    ...(row.weight !== 1 ? { repeats: row.weight } : {}),
  };
}
