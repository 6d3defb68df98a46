/**
 * The HTTP gateway of `perimeter dev`: one server on loopback that maps routes to functions and speaks each
 * function's format, as the platform would: an API Gateway HTTP API (payload 2.0) event for Lambda handlers, the
 * Netlify v1 event for Netlify v1 handlers, a Fetch `Request` for Netlify v2. Requests under `/_perimeter/` go to
 * the dashboard, except `POST /_perimeter/invoke/<fn>` (`perimeter invoke`).
 */
import { randomUUID } from 'node:crypto';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import { cliError } from '../errors.js';
import type { Format, SerialisedResponse } from './protocol.js';

/** Lambda's limit on a synchronous request payload. */
export const MAX_BODY_BYTES = 6 * 1024 * 1024;

export interface CompiledRoute {
  route: string;
  function: string;
  method: string | null;
  /** Path segments; `:name` matches one segment. */
  segments: string[];
  /** A final `*`: the rest of the path (possibly empty). */
  rest: boolean;
}

export interface RouteMatch {
  route: CompiledRoute;
  params: Record<string, string>;
}

function splitPath(pathname: string): string[] {
  return pathname.split('/').filter((segment) => segment !== '');
}

export function compileRoute(route: string, fn: string): CompiledRoute {
  const space = route.indexOf(' ');
  const method = space === -1 ? null : route.slice(0, space).toUpperCase();
  let routePath = space === -1 ? route : route.slice(space + 1).trim();
  const rest = routePath.endsWith('*');
  if (rest) routePath = routePath.slice(0, -1);
  return { route, function: fn, method: method === '*' ? null : method, segments: splitPath(routePath), rest };
}

/** Most specific first: exact before `*`, more segments first, literal segments before `:params`, a method before none. */
export function sortRoutes(routes: CompiledRoute[]): CompiledRoute[] {
  const params = (route: CompiledRoute) => route.segments.filter((segment) => segment.startsWith(':')).length;
  return [...routes].sort(
    (a, b) =>
      Number(a.rest) - Number(b.rest) ||
      b.segments.length - a.segments.length ||
      params(a) - params(b) ||
      Number(a.method === null) - Number(b.method === null),
  );
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

export function matchRoute(routes: readonly CompiledRoute[], method: string, pathname: string): RouteMatch | null {
  const segments = splitPath(pathname).map(decodeSegment);
  for (const route of routes) {
    if (route.method !== null && route.method !== method && !(route.method === 'GET' && method === 'HEAD')) continue;
    if (route.rest ? segments.length < route.segments.length : segments.length !== route.segments.length) continue;
    const params: Record<string, string> = {};
    let matched = true;
    for (let i = 0; i < route.segments.length && matched; i++) {
      const want = route.segments[i]!;
      if (want.startsWith(':')) params[want.slice(1)] = segments[i]!;
      else matched = want === segments[i];
    }
    if (matched) return { route, params };
  }
  return null;
}

/** What the gateway knows about one HTTP request, before it is shaped for a format. */
export interface GatewayRequest {
  method: string;
  rawPath: string;
  rawQuery: string;
  /** Lower-cased names, as the platform hands them over; repeated headers in order. */
  headerPairs: Array<[string, string]>;
  body: Buffer;
  sourceIp: string;
  protocol: string;
  host: string;
  requestId: string;
  time: Date;
}

const TEXT_TYPES =
  /^(text\/|application\/(json|xml|javascript|x-www-form-urlencoded|graphql|ld\+json)|[^;]*\+(json|xml))/i;

/** Whether the platforms would pass this body as text (else base64, `isBase64Encoded: true`). */
export function isTextBody(contentType: string | undefined): boolean {
  return contentType === undefined || contentType === '' || TEXT_TYPES.test(contentType.trim());
}

function header(request: GatewayRequest, name: string): string | undefined {
  const values = request.headerPairs.filter(([key]) => key === name).map(([, value]) => value);
  return values.length ? values.join(name === 'cookie' ? '; ' : ',') : undefined;
}

function joinedHeaders(request: GatewayRequest, skip: readonly string[] = []): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [key, value] of request.headerPairs) {
    if (skip.includes(key)) continue;
    headers[key] = key in headers ? `${headers[key]},${value}` : value;
  }
  return headers;
}

function queryParameters(rawQuery: string): { single: Record<string, string>; multi: Record<string, string[]> } {
  const multi: Record<string, string[]> = {};
  for (const [key, value] of new URLSearchParams(rawQuery)) (multi[key] ??= []).push(value);
  const single: Record<string, string> = {};
  for (const [key, values] of Object.entries(multi)) single[key] = values.join(',');
  return { single, multi };
}

function bodyOf(request: GatewayRequest): { body?: string; isBase64Encoded: boolean } {
  if (request.body.length === 0) return { isBase64Encoded: false };
  const text = isTextBody(header(request, 'content-type'));
  return { body: request.body.toString(text ? 'utf8' : 'base64'), isBase64Encoded: !text };
}

/** `23/Nov/2026:15:53:37 +0000`, API Gateway's requestContext.time. */
function clfTime(date: Date): string {
  const month = date.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${month}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

/** API Gateway HTTP API, payload format 2.0: what a Lambda behind a function URL or HTTP API receives. */
export function apiGatewayV2Event(request: GatewayRequest, match: RouteMatch): Record<string, unknown> {
  const cookieHeader = header(request, 'cookie');
  const cookies = cookieHeader
    ?.split(';')
    .map((cookie) => cookie.trim())
    .filter(Boolean);
  const { single } = queryParameters(request.rawQuery);
  const routeKey = match.route.method
    ? `${match.route.method} ${routePathOf(match.route)}`
    : `ANY ${routePathOf(match.route)}`;
  return {
    version: '2.0',
    routeKey,
    rawPath: request.rawPath,
    rawQueryString: request.rawQuery,
    ...(cookies?.length ? { cookies } : {}),
    // API Gateway moves cookies to `cookies` and leaves them out of `headers`.
    headers: joinedHeaders(request, ['cookie']),
    ...(Object.keys(single).length ? { queryStringParameters: single } : {}),
    ...(Object.keys(match.params).length ? { pathParameters: match.params } : {}),
    requestContext: {
      accountId: 'anonymous',
      apiId: 'perimeter-dev',
      domainName: request.host,
      domainPrefix: request.host.split('.')[0]!.split(':')[0],
      http: {
        method: request.method,
        path: request.rawPath,
        protocol: request.protocol,
        sourceIp: request.sourceIp,
        userAgent: header(request, 'user-agent') ?? '',
      },
      requestId: request.requestId,
      routeKey,
      stage: '$default',
      time: clfTime(request.time),
      timeEpoch: request.time.getTime(),
    },
    ...bodyOf(request),
  };
}

function routePathOf(route: CompiledRoute): string {
  const base = `/${route.segments.map((s) => (s.startsWith(':') ? `{${s.slice(1)}}` : s)).join('/')}`;
  return route.rest ? `${base === '/' ? '' : base}/{proxy+}` : base;
}

/** Netlify Functions v1 (Lambda-compatible) event. */
export function netlifyV1Event(request: GatewayRequest): Record<string, unknown> {
  const multiValueHeaders: Record<string, string[]> = {};
  for (const [key, value] of request.headerPairs) (multiValueHeaders[key] ??= []).push(value);
  const { single, multi } = queryParameters(request.rawQuery);
  const { body, isBase64Encoded } = bodyOf(request);
  return {
    path: request.rawPath,
    httpMethod: request.method,
    headers: { ...joinedHeaders(request), 'x-nf-request-id': request.requestId },
    multiValueHeaders,
    queryStringParameters: single,
    multiValueQueryStringParameters: multi,
    body: body ?? null,
    isBase64Encoded,
    rawUrl: `http://${request.host}${request.rawPath}${request.rawQuery ? `?${request.rawQuery}` : ''}`,
    rawQuery: request.rawQuery,
  };
}

/** A Fetch Request, as data the runner rebuilds (netlify-v2). */
export function fetchRequestOf(request: GatewayRequest): {
  method: string;
  url: string;
  headers: Array<[string, string]>;
  body: string | null;
  ip: string;
} {
  return {
    method: request.method,
    url: `http://${request.host}${request.rawPath}${request.rawQuery ? `?${request.rawQuery}` : ''}`,
    headers: [...request.headerPairs.filter(([key]) => !HOP_BY_HOP.has(key)), ['x-nf-request-id', request.requestId]],
    body: request.body.length ? request.body.toString('base64') : null,
    ip: request.sourceIp,
  };
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'proxy-connection',
  'te',
  'trailer',
]);

export interface GatewayResponse {
  status: number;
  headers: Array<[string, string]>;
  body: Buffer;
}

export class InvalidResponseError extends Error {}

function headerValue(value: unknown): string | null {
  return typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : null;
}

/**
 * A handler's result as the HTTP response the platform would send: `{ statusCode, headers, multiValueHeaders,
 * cookies, body, isBase64Encoded }`; for Lambda (API Gateway payload 2.0) anything else is sent as a 200 JSON body.
 */
export function responseOf(format: Format, value: unknown): GatewayResponse {
  if (format === 'netlify-v2') {
    const serialised = value as SerialisedResponse;
    return { status: serialised.status, headers: serialised.headers, body: Buffer.from(serialised.body, 'base64') };
  }
  const isResponseObject =
    typeof value === 'object' && value !== null && !Array.isArray(value) && 'statusCode' in value;
  if (!isResponseObject) {
    if (format === 'netlify-v1') {
      throw new InvalidResponseError('a Netlify v1 function must return an object with a numerical statusCode');
    }
    const body = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
    return { status: 200, headers: [['content-type', 'application/json']], body: Buffer.from(body) };
  }
  const result = value as Record<string, unknown>;
  const status = Number(result.statusCode);
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new InvalidResponseError(`statusCode must be an integer 100-599, not ${JSON.stringify(result.statusCode)}`);
  }
  const headers: Array<[string, string]> = [];
  const add = (key: string, raw: unknown) => {
    const text = headerValue(raw);
    const name = key.toLowerCase();
    if (text === null || HOP_BY_HOP.has(name) || !/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name) || /[\r\n]/.test(text))
      return;
    headers.push([name, text]);
  };
  if (result.headers && typeof result.headers === 'object') {
    for (const [key, raw] of Object.entries(result.headers)) add(key, raw);
  }
  if (result.multiValueHeaders && typeof result.multiValueHeaders === 'object') {
    for (const [key, list] of Object.entries(result.multiValueHeaders)) {
      if (!Array.isArray(list)) continue;
      // multiValueHeaders win over headers of the same name, as on API Gateway.
      for (let i = headers.length - 1; i >= 0; i--) if (headers[i]![0] === key.toLowerCase()) headers.splice(i, 1);
      for (const raw of list) add(key, raw);
    }
  }
  if (Array.isArray(result.cookies)) for (const cookie of result.cookies) add('set-cookie', cookie);
  let body: Buffer;
  if (result.body === undefined || result.body === null) body = Buffer.alloc(0);
  else if (typeof result.body === 'string')
    body = Buffer.from(result.body, result.isBase64Encoded === true ? 'base64' : 'utf8');
  else body = Buffer.from(JSON.stringify(result.body) ?? '');
  return { status, headers, body };
}

export interface ReadBodyResult {
  body: Buffer;
  tooLarge: boolean;
}

/** Reads the request body up to `limit` bytes; past it, stops reading and says so (413). */
export function readBody(req: http.IncomingMessage, limit = MAX_BODY_BYTES): Promise<ReadBodyResult> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      resolve({ body: Buffer.alloc(0), tooLarge: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        resolve({ body: Buffer.alloc(0), tooLarge: true });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!done) resolve({ body: Buffer.concat(chunks), tooLarge: false });
    });
    req.on('error', (error) => {
      if (!done) reject(error);
    });
  });
}

export function gatewayRequestOf(req: http.IncomingMessage, body: Buffer): GatewayRequest {
  const url = req.url ?? '/';
  const at = url.indexOf('?');
  const headerPairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
    headerPairs.push([req.rawHeaders[i]!.toLowerCase(), req.rawHeaders[i + 1]!]);
  return {
    method: (req.method ?? 'GET').toUpperCase(),
    rawPath: at === -1 ? url : url.slice(0, at),
    rawQuery: at === -1 ? '' : url.slice(at + 1),
    headerPairs,
    body,
    sourceIp: (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
    protocol: `HTTP/${req.httpVersion}`,
    host: req.headers.host ?? 'localhost',
    requestId: randomUUID(),
    time: new Date(),
  };
}

export function send(
  res: http.ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Array<[string, string]> = [],
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  const grouped = new Map<string, string[]>();
  for (const [key, value] of headers) grouped.set(key, [...(grouped.get(key) ?? []), value]);
  try {
    for (const [key, values] of grouped)
      res.setHeader(key, key === 'set-cookie' || values.length > 1 ? values : values[0]!);
  } catch {
    // A header Node refuses (bad characters): the response goes out without it rather than not at all.
  }
  res.setHeader('content-length', payload.length);
  res.statusCode = status;
  res.end(res.req?.method === 'HEAD' ? undefined : payload);
}

export function sendJson(res: http.ServerResponse, status: number, value: unknown): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, [['content-type', 'application/json; charset=utf-8']]);
}

/** Listens on host:port; a taken port is a coded error with the way out. */
export function listen(server: http.Server, host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') {
        reject(
          cliError('ERR_PERIMETER_DEV_PORT_IN_USE', `port ${port} on ${host} is already in use`, {
            hint: `another perimeter dev may be running; pick another port with --port (--port 0 takes any free one)`,
            cause: error,
          }),
        );
      } else if (error.code === 'EACCES' || error.code === 'EADDRNOTAVAIL') {
        reject(
          cliError('ERR_PERIMETER_DEV_PORT_IN_USE', `cannot listen on ${host}:${port}: ${error.code}`, {
            hint: 'use --host 127.0.0.1 and a port above 1023',
            cause: error,
          }),
        );
      } else reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      resolve(`http://${shown === '0.0.0.0' || shown === '[::]' ? '127.0.0.1' : shown}:${address.port}`);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
