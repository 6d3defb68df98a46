/**
 * The event sink: one JSON object per line, to stderr and to `PERIMETER_EVENTS_FILE` when set.
 *
 * - Never blocks the handler: lines are queued and written asynchronously in batches; a synchronous flush
 *   happens only at process exit (and when an adapter asks, before a Lambda freeze).
 * - Bounded under floods: repeats of the same (type, capability, action, target, package) within a window
 *   are counted, not written, and reported once as `repeats`; at most `MAX_PER_SECOND` distinct lines are
 *   written per second and the rest are summarised in one `suppressed` event. Memory stays bounded too.
 * - Secrets are scrubbed from every target and message (see redact.ts).
 */
import { DateNow, fsOpenSync, fsWriteSync, JSONStringify, SafeMap, setImmediatePristine } from './pristine.js';
import { redact } from './redact.js';
import { currentInvocationScope } from './scope.js';

export type EventType = 'violation' | 'tamper' | 'policy-error' | 'suppressed' | 'guard' | (string & {});

export interface EventInput {
  type: EventType;
  capability: string;
  action: 'blocked' | 'alerted' | 'observed';
  target: string;
  package: string;
  /** Every package on the stack, outermost first, when more than one. */
  packages?: string[];
  /** What the decision rested on: `no-rule`, `package-rule`, `internal-error`, … */
  reason?: string;
  /** Which package's rules denied it, when a package rule did. */
  deniedBy?: string;
  /** Free-form extra detail, scrubbed like the target. */
  detail?: string;
}

export interface PerimeterEvent extends EventInput {
  perimeter: 1;
  time: string;
  function: string;
  invocation: string | null;
  repeats?: number;
}

const DEDUP_WINDOW_MS = 1000;
const MAX_PER_SECOND = 200;
const MAX_KEYS = 10_000;
const MAX_QUEUED_BYTES = 1 << 20;

interface SinkState {
  fds: number[];
  functionName: string;
  queue: string[];
  queuedBytes: number;
  scheduled: boolean;
  windowStart: number;
  writtenThisWindow: number;
  suppressed: number;
  seen: Map<string, { count: number; event: PerimeterEvent }>;
  listeners: Array<(event: PerimeterEvent) => void>;
}

const state: SinkState = {
  fds: [2],
  functionName: 'unknown',
  queue: [],
  queuedBytes: 0,
  scheduled: false,
  windowStart: 0,
  writtenThisWindow: 0,
  suppressed: 0,
  seen: new SafeMap(),
  listeners: [],
};

export interface SinkOptions {
  functionName: string;
  eventsFile?: string | undefined;
  /** Write to stderr as well (default true). */
  stderr?: boolean;
}

export function configureSink(options: SinkOptions): void {
  state.functionName = options.functionName;
  state.fds = options.stderr === false ? [] : [2];
  if (options.eventsFile) {
    // Opened once, append-only: a write never truncates what earlier invocations recorded.
    state.fds.push(fsOpenSync(options.eventsFile, 'a'));
  }
}

/** In-process subscribers (adapters, the dev host). They get every event, de-duplicated the same way. */
export function onEvent(listener: (event: PerimeterEvent) => void): () => void {
  state.listeners.push(listener);
  return () => {
    state.listeners = state.listeners.filter((l) => l !== listener);
  };
}

export function emit(input: EventInput): void {
  const scope = currentInvocationScope();
  const invocation = scope?.invocation ?? null;
  const now = DateNow();
  rollWindow(now);
  // A repeat is recognised on the raw target, before the (comparatively costly) redaction: under a flood of
  // identical denials, each repeat costs a map lookup. Two raw targets that redact alike stay two entries.
  const key = `${input.type}\u0000${input.capability}\u0000${input.action}\u0000${input.target}\u0000${input.package}\u0000${invocation}`;
  const seen = state.seen.get(key);
  if (seen) {
    seen.count++;
    return;
  }
  const event: PerimeterEvent = {
    perimeter: 1,
    time: new Date(now).toISOString(),
    type: input.type,
    capability: input.capability,
    action: input.action,
    target: redact(input.target),
    package: input.package,
    function: scope?.function ?? state.functionName,
    invocation,
  };
  if (input.packages && input.packages.length > 1) event.packages = input.packages;
  if (input.reason) event.reason = input.reason;
  if (input.deniedBy) event.deniedBy = input.deniedBy;
  if (input.detail) event.detail = redact(input.detail);
  if (state.seen.size < MAX_KEYS) state.seen.set(key, { count: 0, event });
  write(event);
}

function rollWindow(now: number, force = false): void {
  if (!force && now - state.windowStart < DEDUP_WINDOW_MS) return;
  const repeats = [...state.seen.values()].filter((s) => s.count > 0);
  state.seen.clear();
  state.windowStart = now;
  state.writtenThisWindow = 0;
  for (const { count, event } of repeats) write({ ...event, time: new Date(now).toISOString(), repeats: count });
  if (state.suppressed > 0) {
    const suppressed = state.suppressed;
    state.suppressed = 0;
    write({
      perimeter: 1,
      time: new Date(now).toISOString(),
      type: 'suppressed',
      capability: 'events',
      action: 'observed',
      target: `${suppressed} events`,
      package: 'perimeter',
      function: state.functionName,
      invocation: null,
      detail: `more than ${MAX_PER_SECOND} distinct events per second; the rest were counted, not written`,
    });
  }
}

function write(event: PerimeterEvent): void {
  if (event.type !== 'suppressed' && state.writtenThisWindow >= MAX_PER_SECOND) {
    state.suppressed++;
    return;
  }
  state.writtenThisWindow++;
  for (const listener of state.listeners) {
    try {
      listener(event);
    } catch {
      // A failing subscriber must not break the operation that produced the event.
    }
  }
  if (state.fds.length === 0) return;
  const line = `${JSONStringify(event)}\n`;
  // The summary itself is never dropped: it is small, and it is the only trace of what was.
  if (event.type !== 'suppressed' && state.queuedBytes + line.length > MAX_QUEUED_BYTES) {
    state.suppressed++;
    return;
  }
  state.queue.push(line);
  state.queuedBytes += line.length;
  if (!state.scheduled) {
    state.scheduled = true;
    setImmediatePristine(flushAsync).unref();
  }
}

function takeBatch(): string {
  const batch = state.queue.join('');
  state.queue = [];
  state.queuedBytes = 0;
  state.scheduled = false;
  return batch;
}

/**
 * Runs on the next turn of the event loop, never inside the operation that produced the events. The batch is
 * written with a synchronous write on purpose: an asynchronous write still in the thread pool when the process
 * exits (or when the platform freezes it) is lost, and it can land after a later synchronous flush.
 */
function flushAsync(): void {
  if (state.queue.length === 0) {
    state.scheduled = false;
    return;
  }
  writeBatch(takeBatch(), false);
}

/** Writes to every sink; a sink that would block (EAGAIN on a non-blocking pipe) gets the rest later. */
function writeBatch(batch: string, finalFlush: boolean): void {
  const bytes = Buffer.from(batch);
  for (const fd of state.fds) {
    const rest = writeAll(fd, bytes, finalFlush ? 1000 : 1);
    if (rest !== null && !finalFlush) retryLater(fd, rest);
  }
}

/** Returns what is left when the sink would block, or null when all was written (or the reader is gone). */
function writeAll(fd: number, bytes: Buffer, attempts: number): Buffer | null {
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += fsWriteSync(fd, bytes, offset, bytes.length - offset);
    } catch (error: any) {
      if (error?.code !== 'EAGAIN') return null; // EPIPE, EBADF: nothing more can be told to that reader.
      if (--attempts <= 0) return bytes.subarray(offset);
    }
  }
  return null;
}

const pendingBytes = new SafeMap<number, Buffer>();

function retryLater(fd: number, rest: Buffer): void {
  const waiting = pendingBytes.get(fd);
  if (waiting) {
    // Bounded like the queue: past the limit the oldest unwritten bytes are what is kept.
    if (waiting.length < MAX_QUEUED_BYTES) pendingBytes.set(fd, Buffer.concat([waiting, rest]));
    return;
  }
  pendingBytes.set(fd, rest);
  setImmediatePristine(() => {
    const chunk = pendingBytes.get(fd);
    pendingBytes.delete(fd);
    if (!chunk) return;
    const left = writeAll(fd, chunk, 1);
    if (left !== null) retryLater(fd, left);
  }).unref();
}

/** Writes everything queued, synchronously. Called at exit and by adapters before the platform freezes the process. */
export function flushEvents(): void {
  // Adapters flush after every invocation; after a quiet one there is nothing to roll or write.
  if (state.queue.length === 0 && state.seen.size === 0 && state.suppressed === 0) return;
  rollWindow(DateNow(), true);
  if (state.queue.length === 0) return;
  writeBatch(takeBatch(), true);
}
