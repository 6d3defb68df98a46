/**
 * The OTLP/HTTP JSON exporter. Telemetry must never hurt the function it observes, so:
 * - `exportEvent` / `exportSpan` only convert and queue; they never throw and never wait;
 * - the queue is bounded: past `maxQueue` the oldest item goes and is counted, memory stays flat when the
 *   collector is down;
 * - one request is in flight at a time; 429/502/503/504 and network errors are retried with exponential backoff
 *   (or after the collector's Retry-After), anything else is given up on and counted;
 * - timers are unref'd, so a pending export never keeps a process alive — call `flush()` before a Lambda freeze or
 *   `shutdown()` before exit to deliver what is queued.
 */
import {
  type AttributeValue,
  eventToLogRecord,
  type InvocationLike,
  invocationToSpan,
  logsRequest,
  type OtlpLogRecord,
  type OtlpSpan,
  type PerimeterEventLike,
  tracesRequest,
} from './convert.js';

export interface OtlpExporterOptions {
  /** The collector's base URL, e.g. `http://127.0.0.1:4318`; `/v1/logs` and `/v1/traces` are appended. */
  endpoint: string;
  /** Sent with every request (`authorization`, `x-honeycomb-team`, …). */
  headers?: Record<string, string>;
  /** `service.name` of every resource; default: each function's own name. */
  serviceName?: string;
  /** Extra resource attributes. */
  resource?: Record<string, AttributeValue>;
  /** Items per request, default 512. A full batch is sent without waiting for the interval. */
  batchSize?: number;
  /** Longest time an item waits before being sent, default 1,000 ms. */
  flushIntervalMs?: number;
  /** Per-request timeout, default 10,000 ms. */
  timeoutMs?: number;
  /** Items kept while the collector is slow or down, default 2,048; past it the oldest are dropped. */
  maxQueue?: number;
  /** Attempts per batch including the first, default 5. */
  maxAttempts?: number;
  /** First retry delay, doubled each time (with jitter), default 200 ms. */
  initialBackoffMs?: number;
  /** Longest retry delay, Retry-After included, default 30,000 ms. */
  maxBackoffMs?: number;
  /** Longest time `shutdown()` spends delivering; what is left then is dropped and counted. Default 5,000 ms. */
  shutdownTimeoutMs?: number;
}

export interface OtlpExporterStats {
  /** Items waiting to be sent (not counting a batch in flight). */
  queued: number;
  /** Items in the request being sent or retried. */
  inFlight: number;
  /** Log records and spans the collector accepted. */
  sent: { logs: number; spans: number };
  /** Items dropped because the queue was full (oldest first), or exported after shutdown. */
  dropped: number;
  /** Items given up on: retries exhausted, a non-retryable answer, or rejected in a partial success. */
  failed: number;
  /** Items that could not be converted (not an event or invocation). */
  invalid: number;
  /** HTTP requests made, retries included. */
  requests: number;
  retries: number;
  /** The last delivery problem, e.g. `POST http://…/v1/logs: HTTP 503`. */
  lastError: string | null;
}

export interface OtlpExporter {
  /** The collector's base URL as requests are made to it (normalised: no default port, no trailing slash). */
  readonly endpoint: string;
  /** Queues one Perimeter event as a log record. Never throws. */
  exportEvent(event: PerimeterEventLike): void;
  /** Queues one finished invocation as a span. Never throws. */
  exportSpan(invocation: InvocationLike): void;
  /** Sends everything queued so far (retrying as configured). Never rejects. */
  flush(): Promise<void>;
  /**
   * Flushes for at most `shutdownTimeoutMs` (a dead collector must not hold up a process that is stopping), then
   * stops: what was not delivered, and later exports, are dropped and counted. Never rejects.
   */
  shutdown(): Promise<void>;
  stats(): OtlpExporterStats;
}

type Item =
  | { kind: 'log'; function: string; record: OtlpLogRecord }
  | { kind: 'span'; function: string; span: OtlpSpan };

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

export function createOtlpExporter(options: OtlpExporterOptions): OtlpExporter {
  const base = parseEndpoint(options.endpoint);
  const logsUrl = `${base}/v1/logs`;
  const tracesUrl = `${base}/v1/traces`;
  const batchSize = positiveInteger(options.batchSize, 512, 'batchSize');
  const flushIntervalMs = positiveInteger(options.flushIntervalMs, 1000, 'flushIntervalMs');
  const timeoutMs = positiveInteger(options.timeoutMs, 10_000, 'timeoutMs');
  const maxQueue = positiveInteger(options.maxQueue, 2048, 'maxQueue');
  const maxAttempts = positiveInteger(options.maxAttempts, 5, 'maxAttempts');
  const initialBackoffMs = positiveInteger(options.initialBackoffMs, 200, 'initialBackoffMs');
  const maxBackoffMs = positiveInteger(options.maxBackoffMs, 30_000, 'maxBackoffMs');
  const shutdownTimeoutMs = positiveInteger(options.shutdownTimeoutMs, 5000, 'shutdownTimeoutMs');
  const headers = { ...options.headers, 'content-type': 'application/json' };
  const resourceOptions = {
    ...(options.serviceName !== undefined ? { serviceName: options.serviceName } : {}),
    ...(options.resource !== undefined ? { resource: options.resource } : {}),
  };

  const queue: Item[] = [];
  let inFlight = 0;
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let pump: Promise<void> | undefined;
  // While someone awaits flush(), the backoff timer must keep the process alive, or `await flush()` at the end
  // of a script would silently end the process mid-retry.
  let waiters = 0;
  let sleeping: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  let stopping = false;
  // Aborts the request in flight when shutdown runs out of time.
  const abort = new AbortController();
  const stats = {
    sent: { logs: 0, spans: 0 },
    dropped: 0,
    failed: 0,
    invalid: 0,
    requests: 0,
    retries: 0,
    lastError: null as string | null,
  };

  function enqueue(item: Item): void {
    queue.push(item);
    if (queue.length > maxQueue) {
      stats.dropped += queue.splice(0, queue.length - maxQueue).length;
    }
    if (queue.length >= batchSize) startPump();
    else if (!timer) {
      timer = setTimeout(() => {
        timer = undefined;
        startPump();
      }, flushIntervalMs);
      timer.unref();
    }
  }

  function startPump(): Promise<void> {
    if (timer) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (!pump) {
      pump = drain().finally(() => {
        pump = undefined;
        // Items queued during the last request start their own interval.
        if (queue.length > 0 && !timer) {
          timer = setTimeout(() => {
            timer = undefined;
            startPump();
          }, flushIntervalMs);
          timer.unref();
        }
      });
    }
    return pump;
  }

  async function drain(): Promise<void> {
    // Encoding a batch is real work: never on the caller's turn (exportEvent runs inside the function's request).
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (queue.length > 0) {
      const batch = queue.splice(0, batchSize);
      inFlight = batch.length;
      try {
        const logs = batch.filter((item) => item.kind === 'log');
        const spans = batch.filter((item) => item.kind === 'span');
        if (logs.length > 0) {
          const body = JSON.stringify(logsRequest(logs, resourceOptions));
          const accepted = await send(logsUrl, body, logs.length, 'rejectedLogRecords');
          stats.sent.logs += accepted;
        }
        if (spans.length > 0) {
          const body = JSON.stringify(tracesRequest(spans, resourceOptions));
          const accepted = await send(tracesUrl, body, spans.length, 'rejectedSpans');
          stats.sent.spans += accepted;
        }
      } catch (error) {
        // send() handles every expected failure; this is the last guard against a bug hurting the caller.
        stats.failed += batch.length;
        stats.lastError = `internal: ${describe(error)}`;
      } finally {
        inFlight = 0;
      }
    }
  }

  /** Posts one body; returns how many items the collector accepted (0 when given up). */
  async function send(url: string, body: string, count: number, rejectedField: string): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      stats.requests += 1;
      let retryAfterMs: number | undefined;
      let problem: string;
      try {
        const response = await fetch(url, {
          method: 'POST',
          headers,
          body,
          signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), abort.signal]),
        });
        const text = await response.text().catch(() => '');
        if (response.ok) {
          const rejected = Math.min(count, rejectedCount(text, rejectedField));
          if (rejected > 0) {
            stats.failed += rejected;
            stats.lastError = `POST ${url}: collector rejected ${rejected} of ${count}`;
          }
          return count - rejected;
        }
        problem = `POST ${url}: HTTP ${response.status}`;
        if (!RETRYABLE_STATUS.has(response.status)) {
          stats.failed += count;
          stats.lastError = `${problem} (not retryable)`;
          return 0;
        }
        retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
      } catch (error) {
        problem = `POST ${url}: ${describe(error)}`;
      }
      stats.lastError = problem;
      if (attempt >= maxAttempts || stopping) {
        stats.failed += count;
        stats.lastError = `${problem} (gave up after ${attempt} attempts)`;
        return 0;
      }
      stats.retries += 1;
      const backoff = Math.min(maxBackoffMs, initialBackoffMs * 2 ** (attempt - 1));
      // Full jitter spreads the retries of many function instances hitting one recovering collector.
      const delay =
        retryAfterMs !== undefined ? Math.min(maxBackoffMs, retryAfterMs) : backoff / 2 + (Math.random() * backoff) / 2;
      await sleep(delay);
    }
  }

  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      wake = () => {
        clearTimeout(sleeping);
        sleeping = undefined;
        wake = undefined;
        resolve();
      };
      sleeping = setTimeout(wake, ms);
      if (waiters === 0) sleeping.unref();
    });
  }

  async function flush(): Promise<void> {
    waiters += 1;
    sleeping?.ref();
    try {
      // A pump may end while items queued during its last request are still waiting: loop until both are done.
      while (pump || queue.length > 0) await startPump();
    } catch {
      // drain() does not reject; never let a surprise reach the caller either.
    } finally {
      waiters -= 1;
      if (waiters === 0) sleeping?.unref();
    }
  }

  return {
    endpoint: base,
    exportEvent(event) {
      if (closed) {
        stats.dropped += 1;
        return;
      }
      try {
        if (!event || typeof event !== 'object') throw new TypeError('not an event');
        enqueue({ kind: 'log', function: String(event.function ?? 'unknown'), record: eventToLogRecord(event) });
      } catch {
        stats.invalid += 1;
      }
    },
    exportSpan(invocation) {
      if (closed) {
        stats.dropped += 1;
        return;
      }
      try {
        if (!invocation || typeof invocation !== 'object' || typeof invocation.id !== 'string') {
          throw new TypeError('not an invocation');
        }
        enqueue({ kind: 'span', function: String(invocation.function), span: invocationToSpan(invocation) });
      } catch {
        stats.invalid += 1;
      }
    },
    flush,
    async shutdown() {
      if (closed) return;
      closed = true;
      let deadline: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((resolve) => {
        deadline = setTimeout(resolve, shutdownTimeoutMs);
      });
      await Promise.race([flush(), timedOut]);
      clearTimeout(deadline);
      if (pump) {
        // Out of time: the batch in flight gets no more retries, and nothing queued is sent.
        stopping = true;
        stats.dropped += queue.splice(0).length;
        wake?.();
        abort.abort();
        await pump;
      }
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
    stats() {
      return {
        queued: queue.length,
        inFlight,
        sent: { ...stats.sent },
        dropped: stats.dropped,
        failed: stats.failed,
        invalid: stats.invalid,
        requests: stats.requests,
        retries: stats.retries,
        lastError: stats.lastError,
      };
    },
  };
}

function parseEndpoint(endpoint: unknown): string {
  if (typeof endpoint !== 'string' || endpoint === '') {
    throw new TypeError('createOtlpExporter: endpoint is required, e.g. "http://127.0.0.1:4318"');
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`createOtlpExporter: endpoint "${endpoint}" is not a URL, e.g. "http://127.0.0.1:4318"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`createOtlpExporter: endpoint "${endpoint}" must be http: or https: (OTLP/HTTP)`);
  }
  // The base URL, as OTEL_EXPORTER_OTLP_ENDPOINT means it: the signal path is appended.
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

function positiveInteger(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new TypeError(`createOtlpExporter: ${name} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Retry-After as delay-seconds or an HTTP date (RFC 9110 §10.2.3), in ms; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null, now: number = Date.now()): number | undefined {
  if (header === null) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** `partialSuccess.rejectedLogRecords` / `rejectedSpans` of an export response (int64: string or number). */
function rejectedCount(text: string, field: string): number {
  if (!text) return 0;
  try {
    const parsed = JSON.parse(text) as { partialSuccess?: Record<string, unknown> };
    const value = Number(parsed?.partialSuccess?.[field] ?? 0);
    return Number.isFinite(value) && value > 0 ? value : 0;
  } catch {
    return 0;
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    if (error.name === 'TimeoutError') return 'timed out';
    return cause?.code ? `${error.message} (${cause.code})` : error.message;
  }
  return String(error);
}
