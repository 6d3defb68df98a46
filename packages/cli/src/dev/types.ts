/**
 * The contracts between the parts of `perimeter dev`: the event store (store.ts), the function host and gateway
 * (host.ts), the dashboard server (dashboard-server.ts) and the OpenTelemetry sink. Each part is written against
 * these types only, so each can be replaced or tested alone.
 */

/** A Perimeter event as the runtime writes it (docs/events.md); unknown fields are kept as they are. */
export interface EventRecord {
  perimeter: 1;
  time: string;
  type: string;
  capability: string;
  action: string;
  target: string;
  package: string;
  function: string;
  invocation: string | null;
  packages?: string[];
  reason?: string;
  deniedBy?: string;
  detail?: string;
  repeats?: number;
  [field: string]: unknown;
}

export interface StoredEvent {
  /** Store-assigned, strictly increasing; live views ask for `afterId`. */
  id: number;
  event: EventRecord;
}

export interface EventQuery {
  function?: string;
  package?: string;
  /** `blocked`, `alerted`, `observed`. */
  action?: string;
  type?: string;
  capability?: string;
  /** Only events with a larger id (live tailing). */
  afterId?: number;
  /** Only events with a smaller id (paging back). */
  beforeId?: number;
  /** Only events whose `time` is at or after this (ms since the epoch). */
  sinceMs?: number;
  /** Default 200, at most 10,000. */
  limit?: number;
  /** Default `desc` (newest first). */
  order?: 'asc' | 'desc';
}

/** One function as the host runs it; kept in the store so `perimeter dashboard --db` can show it later. */
export interface FunctionRecord {
  name: string;
  /** Absolute path of the handler file. */
  handler: string;
  /** How the handler is called: `handler(event, context)` (lambda, netlify-v1) or `default(Request, context)`. */
  format: 'lambda' | 'netlify-v1' | 'netlify-v2';
  /** `http`, or the non-HTTP trigger it is fired with (`sqs`, `s3`, …). */
  trigger: string;
  /** Gateway routes: `METHOD /path` or `/path`, `*` at the end matches the rest. */
  routes: string[];
  /** The policy file in effect, or null when the host runs the function with a generated alert-mode policy. */
  policyFile: string | null;
  /** The parsed policy in effect. */
  policy: unknown;
  status: 'starting' | 'ready' | 'failed' | 'stopped';
  /** Why it failed (the first lines of the error, e.g. the policy error). */
  error?: string;
  pid?: number;
  /** ISO time of the last status change. */
  updatedAt: string;
}

export interface InvocationRecord {
  /** The request id the function saw (`context.awsRequestId`), also the events' `invocation`. */
  id: string;
  function: string;
  trigger: string;
  /** e.g. `POST /api/checkout` or `sqs`. */
  request: string;
  startMs: number;
  durationMs: number;
  outcome: 'ok' | 'error' | 'timeout' | 'crashed';
  /** HTTP status the gateway answered, when HTTP. */
  statusCode?: number;
  error?: string;
}

export interface SummaryQuery {
  function?: string;
  sinceMs?: number;
  /** Timeline bucket width; default: chosen so that there are at most 120 buckets. */
  bucketMs?: number;
}

export interface CountByName {
  name: string;
  total: number;
  blocked: number;
  alerted: number;
}

/** What the dashboard draws. Counts weigh repeat summaries (`repeats`) as that many occurrences. */
export interface Summary {
  total: number;
  blocked: number;
  alerted: number;
  observed: number;
  functions: CountByName[];
  packages: CountByName[];
  timeline: { bucketMs: number; buckets: Array<{ start: number; blocked: number; alerted: number; other: number }> };
  /** function → package → destination (see `destinationOf` in store.ts), for the graph. */
  edges: Array<{
    function: string;
    package: string;
    destination: string;
    capability: string;
    blocked: number;
    alerted: number;
  }>;
  invocations: { total: number; errors: number };
}

export interface EventStoreOptions {
  /** Keep at most this many events; the oldest go first. Default 500,000. */
  retention?: number;
  /** Flush a batch when this many events are queued. Default 1,000. */
  batchSize?: number;
  /** Flush queued events at least this often. Default 50 ms. */
  flushIntervalMs?: number;
  /** Open an existing store for reading only (`perimeter dashboard --db`, `learn --events x.sqlite`). */
  readonly?: boolean;
}

/**
 * The embedded event store (store.ts, SQLite through better-sqlite3, WAL). Methods are synchronous; `append`
 * only queues. Open errors are CliErrors: ERR_PERIMETER_STORE_OPEN, _CORRUPT, _LOCKED.
 */
export interface EventStoreApi {
  readonly file: string;
  /** Queues one event (never drops; queues past the high-water mark flush synchronously: back-pressure). */
  append(event: EventRecord): void;
  /** Writes everything queued, in one transaction. */
  flush(): void;
  query(query?: EventQuery): StoredEvent[];
  /** The largest id stored (0 when empty), after a flush. */
  lastId(): number;
  count(query?: Omit<EventQuery, 'afterId' | 'beforeId' | 'limit' | 'order'>): number;
  summary(query?: SummaryQuery): Summary;
  upsertFunction(record: FunctionRecord): void;
  functions(): FunctionRecord[];
  recordInvocation(record: InvocationRecord): void;
  invocations(query?: { function?: string; afterStartMs?: number; limit?: number }): InvocationRecord[];
  close(): void;
}
