/**
 * Pure functions from Perimeter events and invocations to OTLP/HTTP JSON request bodies
 * (`ExportLogsServiceRequest`, `ExportTraceServiceRequest`), following the protobuf JSON mapping OTLP uses:
 * lowerCamelCase field names, trace and span ids as hex (not base64), 64-bit integers as decimal strings,
 * enums as numbers.
 */
import { createHash } from 'node:crypto';

export const SCOPE_NAME = '@perimeter/otel';
export const SCOPE_VERSION = '0.1.0';

/**
 * The fields of a Perimeter event this package reads (docs/events.md). Every other field present on the object
 * (`packages`, `reason`, `deniedBy`, `detail`, `repeats`, later additions) is exported as `perimeter.<field>` too.
 */
export interface PerimeterEventLike {
  time: string;
  type: string;
  capability: string;
  action: string;
  target: string;
  package: string;
  function: string;
  invocation: string | null;
}

/** One invocation of a function as the dev host records it (`InvocationRecord` in @perimeter/cli). */
export interface InvocationLike {
  id: string;
  function: string;
  trigger: string;
  request: string;
  startMs: number;
  durationMs: number;
  outcome: string;
  statusCode?: number;
  error?: string;
}

export type AttributeValue = string | number | boolean | ReadonlyArray<string | number | boolean>;

export interface AnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
  arrayValue?: { values: AnyValue[] };
  kvlistValue?: { values: KeyValue[] };
}

export interface KeyValue {
  key: string;
  value: AnyValue;
}

export interface OtlpResource {
  attributes: KeyValue[];
}

export interface OtlpScope {
  name: string;
  version: string;
}

export interface OtlpLogRecord {
  timeUnixNano: string;
  observedTimeUnixNano: string;
  severityNumber: number;
  severityText: string;
  body: AnyValue;
  attributes: KeyValue[];
  traceId?: string;
  spanId?: string;
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: KeyValue[];
  status: { code: number; message?: string };
}

export interface ExportLogsServiceRequest {
  resourceLogs: Array<{ resource: OtlpResource; scopeLogs: Array<{ scope: OtlpScope; logRecords: OtlpLogRecord[] }> }>;
}

export interface ExportTraceServiceRequest {
  resourceSpans: Array<{ resource: OtlpResource; scopeSpans: Array<{ scope: OtlpScope; spans: OtlpSpan[] }> }>;
}

export interface ResourceOptions {
  /** `service.name` of every resource; default: the function's name. */
  serviceName?: string;
  /** Extra resource attributes (`deployment.environment.name`, `cloud.region`, …). */
  resource?: Record<string, AttributeValue>;
}

/** SeverityNumber values from logs.proto. */
export const Severity = { INFO: 9, WARN: 13, ERROR: 17 } as const;
/** Span.SpanKind values from trace.proto. */
export const SpanKind = { SERVER: 2, CONSUMER: 5 } as const;
/** Status.StatusCode values from trace.proto. */
export const StatusCode = { UNSET: 0, OK: 1, ERROR: 2 } as const;

// The event fields that become typed, named attributes; any other field is exported as `perimeter.<field>` too.
const KNOWN_FIELDS = new Set(['perimeter', 'time', 'function', 'invocation']);

/** A W3C trace id (32 hex) for an invocation: the same id always gives the same trace, in every process. */
export function traceIdFor(invocation: string): string {
  const uuid = invocation.replace(/-/g, '').toLowerCase();
  // An AWS request id is a UUID: using its hex as it is lets a person paste the request id into a trace search.
  if (/^[0-9a-f]{32}$/.test(uuid) && !/^0+$/.test(uuid)) return uuid;
  return nonZeroHex(`perimeter-trace\u0000${invocation}`, 32);
}

/** The span id (16 hex) of an invocation's span; its events' log records carry it too. */
export function spanIdFor(invocation: string): string {
  return nonZeroHex(`perimeter-span\u0000${invocation}`, 16);
}

function nonZeroHex(seed: string, length: number): string {
  const hex = createHash('sha256').update(seed).digest('hex').slice(0, length);
  // All-zero ids are invalid in OTLP; a SHA-256 prefix of zeros is astronomically unlikely but cheap to rule out.
  return /^0+$/.test(hex) ? `${hex.slice(0, -1)}1` : hex;
}

/** Milliseconds since the epoch (or an ISO time) as the unix-nanosecond decimal string OTLP expects. */
export function unixNanos(time: number | string): string {
  const ms = typeof time === 'number' ? time : Date.parse(time);
  if (!Number.isFinite(ms)) return '0';
  const whole = Math.floor(ms);
  const fraction = Math.round((ms - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(fraction)).toString();
}

export function anyValue(value: unknown): AnyValue | undefined {
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) return { stringValue: String(value) };
    return Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value };
  }
  if (typeof value === 'bigint') return { intValue: value.toString() };
  if (Array.isArray(value)) {
    const values: AnyValue[] = [];
    for (const item of value) {
      const converted = anyValue(item);
      if (converted) values.push(converted);
    }
    return { arrayValue: { values } };
  }
  if (value !== null && typeof value === 'object') {
    return { kvlistValue: { values: keyValues(value as Record<string, unknown>) } };
  }
  return undefined;
}

export function keyValues(record: Record<string, unknown>, prefix = ''): KeyValue[] {
  const out: KeyValue[] = [];
  for (const [key, raw] of Object.entries(record)) {
    const value = anyValue(raw);
    if (value) out.push({ key: `${prefix}${key}`, value });
  }
  return out;
}

export function severityOf(action: string): { severityNumber: number; severityText: string } {
  if (action === 'blocked') return { severityNumber: Severity.ERROR, severityText: 'ERROR' };
  if (action === 'alerted') return { severityNumber: Severity.WARN, severityText: 'WARN' };
  return { severityNumber: Severity.INFO, severityText: 'INFO' };
}

/** One event as a LogRecord. `observedMs` is when the exporter received it (default: now). */
export function eventToLogRecord(event: PerimeterEventLike, observedMs: number = Date.now()): OtlpLogRecord {
  const attributes: KeyValue[] = [];
  for (const [key, raw] of Object.entries(event)) {
    if (KNOWN_FIELDS.has(key)) continue;
    const value = anyValue(raw);
    if (value) attributes.push({ key: `perimeter.${key}`, value });
  }
  attributes.push({ key: 'perimeter.function', value: { stringValue: String(event.function) } });
  if (event.invocation) {
    attributes.push({ key: 'perimeter.invocation', value: { stringValue: event.invocation } });
    attributes.push({ key: 'faas.invocation_id', value: { stringValue: event.invocation } });
  }
  const record: OtlpLogRecord = {
    timeUnixNano: unixNanos(event.time),
    observedTimeUnixNano: unixNanos(observedMs),
    ...severityOf(event.action),
    body: {
      stringValue: `${event.action} ${event.capability} ${event.target} (package ${event.package}, function ${event.function})`,
    },
    attributes,
  };
  if (event.invocation) {
    record.traceId = traceIdFor(event.invocation);
    record.spanId = spanIdFor(event.invocation);
  }
  return record;
}

/** FaaS semantic conventions' `faas.trigger` for a Perimeter trigger name. */
export function faasTrigger(trigger: string): string {
  if (trigger === 'http') return 'http';
  if (['sqs', 'sns', 'eventbridge', 'kinesis'].includes(trigger)) return 'pubsub';
  if (['s3', 'dynamodb'].includes(trigger)) return 'datasource';
  if (trigger === 'schedule' || trigger === 'timer') return 'timer';
  return 'other';
}

export function invocationToSpan(invocation: InvocationLike): OtlpSpan {
  const attributes: KeyValue[] = [
    { key: 'faas.name', value: { stringValue: invocation.function } },
    { key: 'faas.trigger', value: { stringValue: faasTrigger(invocation.trigger) } },
    { key: 'faas.invocation_id', value: { stringValue: invocation.id } },
    { key: 'perimeter.function', value: { stringValue: invocation.function } },
    { key: 'perimeter.trigger', value: { stringValue: invocation.trigger } },
    { key: 'perimeter.request', value: { stringValue: invocation.request } },
    { key: 'perimeter.outcome', value: { stringValue: invocation.outcome } },
  ];
  if (typeof invocation.statusCode === 'number') {
    attributes.push({ key: 'http.response.status_code', value: { intValue: String(invocation.statusCode) } });
  }
  if (invocation.error) attributes.push({ key: 'perimeter.error', value: { stringValue: invocation.error } });
  // A server span with a 5xx answer is an error even when the handler returned normally (HTTP semantic conventions).
  const failed = invocation.outcome !== 'ok' || (invocation.statusCode ?? 0) >= 500;
  const status: OtlpSpan['status'] = failed
    ? { code: StatusCode.ERROR, message: invocation.error ?? invocation.outcome }
    : { code: StatusCode.UNSET };
  return {
    traceId: traceIdFor(invocation.id),
    spanId: spanIdFor(invocation.id),
    name: invocation.request || invocation.function,
    kind: invocation.trigger === 'http' ? SpanKind.SERVER : SpanKind.CONSUMER,
    startTimeUnixNano: unixNanos(invocation.startMs),
    endTimeUnixNano: unixNanos(invocation.startMs + Math.max(0, invocation.durationMs)),
    attributes,
    status,
  };
}

function resourceFor(functionName: string, options: ResourceOptions): OtlpResource {
  const attributes: KeyValue[] = [
    { key: 'service.name', value: { stringValue: options.serviceName ?? functionName } },
    { key: 'faas.name', value: { stringValue: functionName } },
  ];
  const extra = options.resource ? keyValues(options.resource) : [];
  // Caller-given resource attributes win over the defaults, service.name included.
  const overridden = new Set(extra.map((kv) => kv.key));
  return { attributes: [...attributes.filter((kv) => !overridden.has(kv.key)), ...extra] };
}

function groupByFunction<T>(items: readonly T[], nameOf: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const name = nameOf(item);
    const group = groups.get(name);
    if (group) group.push(item);
    else groups.set(name, [item]);
  }
  return groups;
}

/** Log records grouped into one ResourceLogs per function (the function is the service). */
export function logsRequest(
  records: ReadonlyArray<{ function: string; record: OtlpLogRecord }>,
  options: ResourceOptions = {},
): ExportLogsServiceRequest {
  const scope = { name: SCOPE_NAME, version: SCOPE_VERSION };
  return {
    resourceLogs: [...groupByFunction(records, (r) => r.function)].map(([name, group]) => ({
      resource: resourceFor(name, options),
      scopeLogs: [{ scope, logRecords: group.map((r) => r.record) }],
    })),
  };
}

export function tracesRequest(
  spans: ReadonlyArray<{ function: string; span: OtlpSpan }>,
  options: ResourceOptions = {},
): ExportTraceServiceRequest {
  const scope = { name: SCOPE_NAME, version: SCOPE_VERSION };
  return {
    resourceSpans: [...groupByFunction(spans, (s) => s.function)].map(([name, group]) => ({
      resource: resourceFor(name, options),
      scopeSpans: [{ scope, spans: group.map((s) => s.span) }],
    })),
  };
}

/** The `/v1/logs` request body for these events. */
export function perimeterEventsToOtlp(
  events: readonly PerimeterEventLike[],
  options: ResourceOptions & { observedMs?: number } = {},
): ExportLogsServiceRequest {
  return logsRequest(
    events.map((event) => ({ function: String(event.function), record: eventToLogRecord(event, options.observedMs) })),
    options,
  );
}

/** The `/v1/traces` request body for these invocations. */
export function invocationsToOtlp(
  invocations: readonly InvocationLike[],
  options: ResourceOptions = {},
): ExportTraceServiceRequest {
  return tracesRequest(
    invocations.map((invocation) => ({ function: invocation.function, span: invocationToSpan(invocation) })),
    options,
  );
}
