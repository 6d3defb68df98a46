/**
 * `@perimeter/otel`: Perimeter events as OpenTelemetry logs and function invocations as spans, sent over
 * OTLP/HTTP with JSON encoding. No dependencies; `@perimeter/otel/runtime` adds `attachToRuntime` for use inside
 * a guarded function.
 */
export type {
  AnyValue,
  AttributeValue,
  ExportLogsServiceRequest,
  ExportTraceServiceRequest,
  InvocationLike,
  KeyValue,
  OtlpLogRecord,
  OtlpSpan,
  PerimeterEventLike,
  ResourceOptions,
} from './convert.js';
export {
  eventToLogRecord,
  invocationsToOtlp,
  invocationToSpan,
  perimeterEventsToOtlp,
  Severity,
  SpanKind,
  StatusCode,
  spanIdFor,
  traceIdFor,
  unixNanos,
} from './convert.js';
export type { OtlpExporter, OtlpExporterOptions, OtlpExporterStats } from './exporter.js';
export { createOtlpExporter, parseRetryAfter } from './exporter.js';
