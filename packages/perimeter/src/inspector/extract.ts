/**
 * Trigger recognition and extraction: which parts of an event an attacker controls, as (path, string) pairs and
 * object keys. Only those parts are visited — headers, query, path, path parameters, cookies and the body of HTTP
 * events; message bodies and attributes of queue and topic messages; object keys of S3 notifications; the `detail`
 * of EventBridge events; stream images and records. Envelope fields written by AWS (ARNs, timestamps, request ids)
 * are not input and are not scanned.
 */
import { decodeBase64Text, percentDecode } from './decode.js';
import type { Trigger } from './types.js';

export interface Sink {
  /** A string the attacker controls. `jsonLayers` counts JSON documents found inside strings on the way here. */
  value(path: string, text: string, depth: number, jsonLayers: number): void;
  /**
   * An object key (parsed JSON, DynamoDB map) under `parentPath`, which ends in the parent's key (lastSegment() of
   * it is that key): the cut is left to the sink, which needs it only for rare keys.
   */
  key(path: string, key: string, parentPath: string | undefined): void;
  /** A query-string or form key, whose bracket/dot path a body parser turns into nesting. */
  queryKey(path: string, key: string): void;
  oversize(path: string, reason: string): void;
  readonly maxDepth: number;
}

type Dict = Record<string, unknown>;

function isObject(value: unknown): value is Dict {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function records(event: Dict): Dict[] {
  return Array.isArray(event.Records) ? (event.Records.filter(isObject) as Dict[]) : [];
}

/** The trigger, from the event's shape. */
export function recognizeTrigger(event: unknown): Trigger {
  if (!isObject(event)) return 'generic';
  const first = records(event)[0];
  if (first) {
    const source = first.eventSource ?? first.EventSource;
    if (source === 'aws:sqs') return 'sqs';
    if (source === 'aws:sns' || isObject(first.Sns)) return 'sns';
    if (source === 'aws:s3' || isObject(first.s3)) return 's3';
    if (source === 'aws:dynamodb' || isObject(first.dynamodb)) return 'dynamodb';
    if (source === 'aws:kinesis' || isObject(first.kinesis)) return 'kinesis';
  }
  if ('detail-type' in event && 'detail' in event && 'source' in event) return 'eventbridge';
  if (typeof event.specversion === 'string' && 'type' in event && 'source' in event) return 'cloudevent';
  if (typeof event.method === 'string' && typeof event.url === 'string') {
    if (isFetchHeaders(event.headers)) return 'fetch-request';
    if (isObject(event.headers)) return 'gcf-http';
  }
  const context = event.requestContext;
  if (isObject(context)) {
    if (isObject(context.elb)) return 'alb';
    if (event.version === '2.0' || isObject(context.http)) {
      const domain = typeof context.domainName === 'string' ? context.domainName : '';
      return domain.includes('.lambda-url.') ? 'function-url' : 'apigateway-v2';
    }
    if ('httpMethod' in event || 'resource' in event) return 'apigateway-v1';
  }
  if ('httpMethod' in event && 'headers' in event) return 'rawUrl' in event ? 'netlify-v1' : 'apigateway-v1';
  return 'generic';
}

interface FetchHeaders {
  forEach(callback: (value: string, name: string) => void): void;
}

function isFetchHeaders(headers: unknown): headers is FetchHeaders {
  return (
    typeof headers === 'object' &&
    headers !== null &&
    typeof (headers as FetchHeaders).forEach === 'function' &&
    typeof (headers as { get?: unknown }).get === 'function'
  );
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

/** What follows the last `.`: the key a dotted path ends in. */
export function lastSegment(text: string): string {
  const dot = text.lastIndexOf('.');
  return dot === -1 ? text : text.slice(dot + 1);
}

/**
 * Every string and key under `value`, depth-bounded. `segment` ends like `path` and its last segment is the same
 * (the parent's key, with `[i]` for array items); it is passed down rather than the path searched, because paths
 * are built by concatenation and searching one flattens it.
 */
export function walk(
  sink: Sink,
  path: string,
  value: unknown,
  depth: number,
  jsonLayers: number,
  segment: string = path,
): void {
  if (depth > sink.maxDepth) {
    sink.oversize(path, `nesting deeper than ${sink.maxDepth}`);
    return;
  }
  if (typeof value === 'string') sink.value(path, value, depth, jsonLayers);
  else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++)
      walk(sink, `${path}[${i}]`, value[i], depth + 1, jsonLayers, `${segment}[${i}]`);
  } else if (isObject(value)) {
    for (const key of Object.keys(value)) {
      const child = join(path, key);
      sink.key(child, key, segment);
      walk(sink, child, value[key], depth + 1, jsonLayers, key);
    }
  }
}

function strings(sink: Sink, path: string, map: unknown): void {
  if (!isObject(map)) return;
  for (const key of Object.keys(map)) {
    const value = map[key];
    if (typeof value === 'string') sink.value(join(path, key), value, 1, 0);
    else if (Array.isArray(value))
      value.forEach((item, i) => {
        if (typeof item === 'string') sink.value(`${join(path, key)}[${i}]`, item, 1, 0);
      });
  }
}

function query(sink: Sink, path: string, map: unknown): void {
  if (!isObject(map)) return;
  for (const key of Object.keys(map)) sink.queryKey(join(path, key), key);
  strings(sink, path, map);
}

function urlPath(url: string): string {
  const scheme = url.indexOf('://');
  if (scheme === -1) return url;
  const slash = url.indexOf('/', scheme + 3);
  if (slash === -1) return '';
  const query = url.indexOf('?', slash);
  return query === -1 ? url.slice(slash) : url.slice(slash, query);
}

/** A raw query string, split as a server would: keys and values, percent-decoded by URLSearchParams. */
function rawQuery(sink: Sink, path: string, text: string): void {
  if (text === '') return;
  let i = 0;
  for (const [key, value] of new URLSearchParams(text)) {
    sink.queryKey(`${path}.${key}`, key);
    sink.value(`${path}.${key}`, value, 1, 0);
    if (++i > 10_000) break;
  }
}

function headerValue(headers: unknown, name: string): string {
  if (!isObject(headers)) return '';
  for (const key of Object.keys(headers))
    if (key.toLowerCase() === name && typeof headers[key] === 'string') return headers[key] as string;
  return '';
}

function http(sink: Sink, event: Dict): void {
  if (typeof event.path === 'string') sink.value('path', event.path, 0, 0);
  if (typeof event.rawPath === 'string') sink.value('rawPath', event.rawPath, 0, 0);
  // Netlify Functions v1 add the whole URL and the raw query string to the API Gateway v1 shape.
  // Only rawUrl's path: its host is the site's own (`http://localhost:8888` under `netlify dev`), not input, and the
  // query is rawQuery.
  if (typeof event.rawUrl === 'string') sink.value('rawUrl', urlPath(event.rawUrl), 0, 0);
  if (typeof event.rawQuery === 'string') rawQuery(sink, 'rawQuery', event.rawQuery);
  strings(sink, 'headers', event.headers);
  strings(sink, 'multiValueHeaders', event.multiValueHeaders);
  if (Array.isArray(event.cookies))
    event.cookies.forEach((cookie, i) => {
      if (typeof cookie === 'string') sink.value(`cookies[${i}]`, cookie, 1, 0);
    });
  query(sink, 'queryStringParameters', event.queryStringParameters);
  query(sink, 'multiValueQueryStringParameters', event.multiValueQueryStringParameters);
  strings(sink, 'pathParameters', event.pathParameters);
  if (typeof event.body !== 'string' || event.body === '') return;
  let body: string | null = event.body;
  if (event.isBase64Encoded === true) {
    body = decodeBase64Text(body);
    if (body === null) {
      sink.oversize('body', 'isBase64Encoded but not base64');
      return;
    }
  }
  textBody(sink, body, headerValue(event.headers, 'content-type'));
}

function textBody(sink: Sink, body: string, contentType: string): void {
  const type = contentType.toLowerCase();
  if (type.startsWith('application/x-www-form-urlencoded')) {
    const form = new URLSearchParams(body);
    let i = 0;
    for (const [key, value] of form) {
      sink.queryKey(`body.${key}`, key);
      sink.value(`body.${key}`, value, 1, 0);
      if (++i > 10_000) break;
    }
    return;
  }
  sink.value('body', body, 0, 0);
}

/** DynamoDB's typed attribute values ({S}, {N}, {M}, {L}, {SS}…) to plain values. */
export function unmarshal(attribute: unknown, depth = 0): unknown {
  if (!isObject(attribute) || depth > 64) return undefined;
  if ('S' in attribute) return attribute.S;
  if ('N' in attribute) return attribute.N;
  if ('B' in attribute)
    return typeof attribute.B === 'string' ? (decodeBase64Text(attribute.B) ?? undefined) : undefined;
  if ('SS' in attribute) return attribute.SS;
  if ('NS' in attribute) return attribute.NS;
  if ('BS' in attribute && Array.isArray(attribute.BS))
    return attribute.BS.map((b) => (typeof b === 'string' ? decodeBase64Text(b) : null));
  if ('L' in attribute && Array.isArray(attribute.L)) return attribute.L.map((item) => unmarshal(item, depth + 1));
  if ('M' in attribute && isObject(attribute.M)) return unmarshalImage(attribute.M, depth + 1);
  return undefined;
}

function unmarshalImage(image: Dict, depth = 0): Dict {
  const out: Dict = {};
  for (const key of Object.keys(image)) {
    // defineProperty: a key named __proto__ must stay an own key (and be reported), not set the prototype.
    Object.defineProperty(out, key, { value: unmarshal(image[key], depth), enumerable: true, writable: true });
  }
  return out;
}

/** A Fetch Request: its URL and headers; its body only as read by the caller, since reading it is asynchronous. */
function fetchRequest(sink: Sink, event: Dict, body: string | undefined): void {
  const url = new URL(event.url as string, 'http://localhost');
  sink.value('path', url.pathname, 0, 0);
  rawQuery(sink, 'query', url.search.slice(1));
  if (isFetchHeaders(event.headers)) {
    const headers = event.headers;
    let contentType = '';
    headers.forEach((value, name) => {
      if (name === 'content-type') contentType = value;
      sink.value(`headers.${name}`, value, 1, 0);
    });
    if (typeof body === 'string' && body !== '') textBody(sink, body, contentType);
  }
}

/** An Express-style request as Google Cloud Functions pass it: the body is already parsed by content type. */
function expressRequest(sink: Sink, event: Dict): void {
  const raw = typeof event.originalUrl === 'string' ? event.originalUrl : (event.url as string);
  const url = new URL(raw, 'http://localhost');
  sink.value('path', url.pathname, 0, 0);
  // req.query is parsed with `qs`, which nests bracketed keys: the raw query string carries the keys as sent.
  rawQuery(sink, 'query', url.search.slice(1));
  if (isObject(event.query) && url.search === '') walk(sink, 'query', event.query, 1, 0);
  strings(sink, 'headers', event.headers);
  const body = event.body;
  if (typeof body === 'string') {
    if (body !== '') textBody(sink, body, headerValue(event.headers, 'content-type'));
  } else if (body instanceof Uint8Array) {
    // A Buffer: no body parser matched the content type.
    if (body.length > 0) textBody(sink, new TextDecoder().decode(body), headerValue(event.headers, 'content-type'));
  } else if (isObject(body) || Array.isArray(body)) walk(sink, 'body', body, 1, 0);
}

/** A CloudEvent: `data` (JSON or text) or `data_base64`; Pub/Sub messages carry their payload base64 inside. */
function cloudEvent(sink: Sink, event: Dict): void {
  if (typeof event.subject === 'string') sink.value('subject', event.subject, 0, 0);
  if (typeof event.data_base64 === 'string') {
    const text = decodeBase64Text(event.data_base64);
    if (text === null) sink.oversize('data_base64', 'not base64');
    else sink.value('data_base64', text, 0, 0);
  }
  const data = event.data;
  if (typeof data === 'string') {
    sink.value('data', data, 0, 0);
    return;
  }
  if (!isObject(data)) {
    if (Array.isArray(data)) walk(sink, 'data', data, 1, 0);
    return;
  }
  const message = data.message;
  if (isObject(message) && typeof message.data === 'string') {
    const text = decodeBase64Text(message.data);
    if (text === null) sink.oversize('data.message.data', 'not base64');
    walk(sink, 'data', { ...data, message: { ...message, data: text ?? '' } }, 1, 0);
    return;
  }
  walk(sink, 'data', data, 1, 0);
}

export function extract(sink: Sink, event: unknown, trigger: Trigger, body?: string): void {
  if (!isObject(event)) {
    walk(sink, '', event, 0, 0);
    return;
  }
  switch (trigger) {
    case 'apigateway-v1':
    case 'apigateway-v2':
    case 'function-url':
    case 'alb':
    case 'netlify-v1':
      http(sink, event);
      return;
    case 'eventbridge':
      walk(sink, 'detail', event.detail, 1, 0);
      return;
    case 'fetch-request':
      fetchRequest(sink, event, body);
      return;
    case 'gcf-http':
      expressRequest(sink, event);
      return;
    case 'cloudevent':
      cloudEvent(sink, event);
      return;
    case 'generic':
      walk(sink, '', event, 0, 0);
      return;
    default:
      break;
  }
  records(event).forEach((record, i) => {
    const at = `Records[${i}]`;
    switch (trigger) {
      case 'sqs': {
        if (typeof record.body === 'string') sink.value(`${at}.body`, record.body, 1, 0);
        const attributes = record.messageAttributes;
        if (isObject(attributes))
          for (const name of Object.keys(attributes)) {
            const attribute = attributes[name];
            if (isObject(attribute) && typeof attribute.stringValue === 'string')
              sink.value(`${at}.messageAttributes.${name}`, attribute.stringValue, 2, 0);
          }
        break;
      }
      case 'sns': {
        const sns = isObject(record.Sns) ? record.Sns : {};
        if (typeof sns.Message === 'string') sink.value(`${at}.Sns.Message`, sns.Message, 2, 0);
        if (typeof sns.Subject === 'string') sink.value(`${at}.Sns.Subject`, sns.Subject, 2, 0);
        const attributes = sns.MessageAttributes;
        if (isObject(attributes))
          for (const name of Object.keys(attributes)) {
            const attribute = attributes[name];
            if (isObject(attribute) && typeof attribute.Value === 'string')
              sink.value(`${at}.Sns.MessageAttributes.${name}`, attribute.Value, 3, 0);
          }
        break;
      }
      case 's3': {
        const object = isObject(record.s3) && isObject(record.s3.object) ? record.s3.object : {};
        // S3 notifications carry the key form-encoded: `+` is a space, `%2B` a plus.
        if (typeof object.key === 'string')
          sink.value(`${at}.s3.object.key`, percentDecode(object.key.replaceAll('+', ' ')), 3, 0);
        break;
      }
      case 'dynamodb': {
        const stream = isObject(record.dynamodb) ? record.dynamodb : {};
        for (const image of ['Keys', 'NewImage', 'OldImage'])
          if (isObject(stream[image])) walk(sink, `${at}.dynamodb.${image}`, unmarshalImage(stream[image]), 2, 0);
        break;
      }
      case 'kinesis': {
        const data = isObject(record.kinesis) ? record.kinesis.data : undefined;
        if (typeof data === 'string') {
          const text = decodeBase64Text(data);
          if (text === null) sink.oversize(`${at}.kinesis.data`, 'not base64');
          else sink.value(`${at}.kinesis.data`, text, 2, 0);
        }
        break;
      }
      default:
        walk(sink, at, record, 1, 0);
    }
  });
}
