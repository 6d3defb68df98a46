/**
 * The dashboard's HTTP side: the built page (packages/dashboard, built into dist/dashboard) and a small JSON +
 * Server-Sent Events API over the event store, all under /_perimeter/. Mounted by the `perimeter dev` gateway
 * and by `perimeter dashboard --db`; it never listens itself.
 *
 * Everything it serves comes from events, and events describe what possibly hostile code tried to do: targets,
 * package and function names are attacker-chosen text. So the page renders them as text only (Preact, never
 * HTML), every response carries nosniff and a same-origin-only Content-Security-Policy, there is no CORS, and
 * requests whose Host is not a loopback name or an IP literal are refused (DNS rebinding would otherwise let any
 * web page read the events of a local `perimeter dev`).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { validatePolicyObject } from '../commands/learn.js';
import { cliError } from '../errors.js';
import type { PerimeterEventLine } from '../learn/events.js';
import { learnPolicy, observationsFromEvents, type RuleExplanation } from '../learn/learn.js';
import { diffPolicies, type PolicyChange, type PolicyDoc } from '../learn/policy.js';
import type { EventQuery, EventStoreApi, FunctionRecord, StoredEvent, Summary } from './types.js';

export interface DashboardOptions {
  store: EventStoreApi;
  /** The functions to list; default `store.functions()` (what a past `perimeter dev` recorded). */
  functions?: () => FunctionRecord[];
  /** How often the live stream looks for new events. Default 250 ms. */
  pollMs?: number;
  /** Host names (besides loopback names and IP literals) the dashboard answers to, e.g. a dev container's name. */
  allowedHosts?: string[];
  /** Where the built page is; default the dist/dashboard folder beside this module's own folder. */
  assetsDir?: string;
}

export interface Dashboard {
  /** Answers the request and returns true when it is the dashboard's (under /_perimeter/, except invoke/). */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
  /** Ends every live stream and stops polling. */
  close(): void;
}

/** GET api/events */
export interface EventsResponse {
  events: StoredEvent[];
  /** The store's largest id when the query ran: pass it as `afterId` to api/stream to continue from here. */
  lastId: number;
}

/** GET api/functions */
export interface FunctionsResponse {
  functions: FunctionRecord[];
}

/** GET api/functions/<name>/suggestion: what `perimeter learn` would change, from the stored violations. */
export interface Suggestion {
  function: string;
  /** The policy file in effect, or null (a generated alert-mode policy, or no record of the function). */
  policyFile: string | null;
  /** The policy in effect. */
  policy: PolicyDoc;
  /** The policy learn would write. */
  suggested: PolicyDoc;
  changes: PolicyChange[];
  explanations: Record<string, Record<string, RuleExplanation>>;
  notes: string[];
  /** Violation events (rows) of this function that were read. */
  violations: number;
}

export const DASHBOARD_PREFIX = '/_perimeter/';
const INVOKE_PREFIX = '/_perimeter/invoke/';
const MAX_QUERY_LIMIT = 10_000;
/** Events pushed per stream message; a client further behind catches up over the next polls. */
const STREAM_BATCH = 1000;
const SUMMARY_EVERY_MS = 1000;
/** Invocations change the summary without adding events, so it is also recomputed this often. */
const SUMMARY_IDLE_MS = 5000;
const HEARTBEAT_MS = 15_000;
/** Function records change on their own (a function failing, restarting): looked at this often. */
const FUNCTIONS_EVERY_MS = 1000;
/** A stream client this far behind (unread bytes) is dropped; its browser reconnects and resumes by id. */
const MAX_STREAM_BACKLOG = 8 * 1024 * 1024;
/** Violations read for a suggestion, at most (newest win). */
const MAX_SUGGESTION_EVENTS = 100_000;

const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

const ASSET_TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

interface StreamClient {
  res: ServerResponse;
  filter: Pick<EventQuery, 'function' | 'package' | 'action'>;
  cursor: number;
  sentSummary: string;
  sentFunctions: string;
}

export function createDashboard(options: DashboardOptions): Dashboard {
  const { store } = options;
  const listFunctions = options.functions ?? (() => store.functions());
  const pollMs = Math.max(10, options.pollMs ?? 250);
  const allowedHosts = new Set((options.allowedHosts ?? []).map((host) => host.toLowerCase()));
  const assets = loadAssets(options.assetsDir ?? defaultAssetsDir());

  const clients = new Set<StreamClient>();
  let poller: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let lastSummaryAt = 0;
  let lastFunctionsAt = 0;
  let lastSummaryId = -1;
  let closed = false;

  function handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const pathname = url.pathname;
    if (pathname !== '/_perimeter' && !pathname.startsWith(DASHBOARD_PREFIX)) return false;
    if (pathname.startsWith(INVOKE_PREFIX)) return false;
    try {
      route(req, res, url);
    } catch (error) {
      if (error instanceof BadRequest) sendError(res, 400, 'bad-request', error.message);
      else
        sendError(res, 500, 'internal', (error as Error)?.message ?? String(error), (error as { code?: string })?.code);
    }
    return true;
  }

  function route(req: IncomingMessage, res: ServerResponse, url: URL): void {
    if (!hostAllowed(req.headers.host, allowedHosts)) {
      sendError(
        res,
        403,
        'host-not-allowed',
        'This dashboard only answers to loopback names and IP addresses (DNS rebinding protection)',
      );
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      sendError(res, 405, 'method-not-allowed', `${req.method} is not allowed here`);
      return;
    }
    if (url.pathname === '/_perimeter') {
      res.writeHead(301, { ...SECURITY_HEADERS, Location: `${DASHBOARD_PREFIX}${url.search}` });
      res.end();
      return;
    }
    const rest = url.pathname.slice(DASHBOARD_PREFIX.length);
    if (rest === '' || rest === 'index.html') {
      sendAsset(req, res, assets.get('index.html')!);
      return;
    }
    const asset = assets.get(rest);
    if (asset) {
      sendAsset(req, res, asset);
      return;
    }
    if (rest.startsWith('api/')) {
      api(req, res, rest.slice(4), url.searchParams);
      return;
    }
    sendError(res, 404, 'not-found', `Nothing at ${url.pathname}`);
  }

  function api(req: IncomingMessage, res: ServerResponse, route: string, params: URLSearchParams): void {
    if (route === 'events') {
      const query: EventQuery = {
        ...textParams(params, ['function', 'package', 'action', 'type', 'capability']),
        ...intParams(params, ['afterId', 'beforeId', 'sinceMs']),
      };
      const limit = intParam(params, 'limit');
      query.limit = Math.min(Math.max(limit ?? 200, 1), MAX_QUERY_LIMIT);
      // lastId first: an event stored between the two calls is then delivered by a stream started at lastId.
      const lastId = store.lastId();
      const body: EventsResponse = { events: store.query(query), lastId };
      sendJson(req, res, body);
      return;
    }
    if (route === 'summary') {
      const summary: Summary = store.summary({
        ...textParams(params, ['function']),
        ...intParams(params, ['sinceMs', 'bucketMs']),
      });
      sendJson(req, res, summary);
      return;
    }
    if (route === 'functions') {
      const body: FunctionsResponse = { functions: listFunctions() };
      sendJson(req, res, body);
      return;
    }
    const match = /^functions\/([^/]+)\/suggestion$/.exec(route);
    if (match) {
      let name: string;
      try {
        name = decodeURIComponent(match[1]!);
      } catch {
        throw badRequest('the function name is not valid percent-encoding');
      }
      const suggestion = suggest(name);
      if (!suggestion) {
        sendError(res, 404, 'unknown-function', `No function "${name}" is known`);
        return;
      }
      sendJson(req, res, suggestion);
      return;
    }
    if (route === 'stream') {
      openStream(req, res, params);
      return;
    }
    sendError(res, 404, 'not-found', `No API endpoint api/${route}`);
  }

  /** What `perimeter learn --events <store> --function <name> --policy <its policy>` would do, minus the writing. */
  function suggest(name: string): Suggestion | null {
    const record = listFunctions().find((candidate) => candidate.name === name);
    const stored = violationsOf(name);
    if (!record && stored.length === 0) return null;
    const notes: string[] = [];
    let policy: PolicyDoc = { mode: 'alert' };
    if (record && record.policy !== null && typeof record.policy === 'object' && !Array.isArray(record.policy)) {
      policy = record.policy as PolicyDoc;
    } else if (!record) {
      notes.push('no record of this function in the store: suggesting against an empty alert-mode policy');
    } else {
      notes.push('the function has no readable policy (see its error): suggesting against an empty alert-mode policy');
    }
    const base = path.dirname(record?.policyFile ?? record?.handler ?? store.file);
    // Where an event came from, the way `perimeter learn --events <store>` says it: the store's file and the row id.
    const lines: PerimeterEventLine[] = stored.map(({ id, event }) => ({
      ...event,
      source: { file: store.file, line: id },
    }));
    const selection = observationsFromEvents(lines, name);
    for (const [reason, count] of selection.ignored)
      notes.push(`not learned: ${count} violation(s) with reason ${reason}`);
    if (stored.length >= MAX_SUGGESTION_EVENTS)
      notes.push(`only the newest ${MAX_SUGGESTION_EVENTS} violations were read`);
    const result = learnPolicy(policy, selection.observations, { perPackage: 'network', base });
    notes.push(...result.notes);
    try {
      validatePolicyObject(result.policy, record?.policyFile ?? 'perimeter.json');
    } catch (error) {
      notes.push(`the suggested policy does not validate: ${(error as Error).message.split('\n')[0]}`);
    }
    return {
      function: name,
      policyFile: record?.policyFile ?? null,
      policy,
      suggested: result.policy,
      changes: diffPolicies(policy, result.policy, base),
      explanations: result.explanations,
      notes,
      violations: stored.length,
    };
  }

  function violationsOf(name: string): StoredEvent[] {
    const pages: StoredEvent[][] = [];
    let read = 0;
    let beforeId: number | undefined;
    while (read < MAX_SUGGESTION_EVENTS) {
      const page = store.query({ function: name, type: 'violation', limit: MAX_QUERY_LIMIT, order: 'desc', beforeId });
      pages.push(page);
      read += page.length;
      if (page.length < MAX_QUERY_LIMIT) break;
      beforeId = page.at(-1)!.id;
    }
    return pages.flat().reverse();
  }

  // ------------------------------------------------------------------------------------------------------------
  // Live stream (Server-Sent Events)

  function openStream(req: IncomingMessage, res: ServerResponse, params: URLSearchParams): void {
    if (closed) {
      sendError(res, 503, 'closed', 'The dashboard is shutting down');
      return;
    }
    // A reconnecting EventSource sends the id of the last message it got; that wins over the URL's afterId.
    const resumeHeader = req.headers['last-event-id'];
    const resume =
      typeof resumeHeader === 'string' && /^\d{1,15}$/.test(resumeHeader) ? Number(resumeHeader) : undefined;
    const client: StreamClient = {
      res,
      filter: textParams(params, ['function', 'package', 'action']),
      cursor: resume ?? intParam(params, 'afterId') ?? store.lastId(),
      sentSummary: '',
      sentFunctions: '',
    };
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'X-Accel-Buffering': 'no',
    });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    res.write('retry: 2000\n\n');
    clients.add(client);
    req.socket.setKeepAlive(true);
    res.on('close', () => {
      clients.delete(client);
      if (clients.size === 0) stopPolling();
    });
    startPolling();
    pushFunctions(client, JSON.stringify(listFunctions()));
    pushSummary(client, summaryJson(client.filter.function));
    pushEvents(client, store.lastId());
  }

  function startPolling(): void {
    if (poller) return;
    poller = setInterval(poll, pollMs);
    heartbeat = setInterval(() => {
      for (const client of clients) client.res.write(': heartbeat\n\n');
    }, HEARTBEAT_MS);
    poller.unref?.();
    heartbeat.unref?.();
  }

  function stopPolling(): void {
    clearInterval(poller);
    clearInterval(heartbeat);
    poller = undefined;
    heartbeat = undefined;
  }

  function poll(): void {
    try {
      const lastId = store.lastId();
      for (const client of clients) pushEvents(client, lastId);
      const now = Date.now();
      if (now - lastFunctionsAt >= FUNCTIONS_EVERY_MS) {
        lastFunctionsAt = now;
        const functions = JSON.stringify(listFunctions());
        for (const client of clients) pushFunctions(client, functions);
      }
      const due = now - lastSummaryAt >= (lastId !== lastSummaryId ? SUMMARY_EVERY_MS : SUMMARY_IDLE_MS);
      if (due) {
        lastSummaryAt = now;
        lastSummaryId = lastId;
        const byFunction = new Map<string, string>();
        for (const client of clients) {
          const key = client.filter.function ?? '';
          if (!byFunction.has(key)) byFunction.set(key, summaryJson(client.filter.function));
          pushSummary(client, byFunction.get(key)!);
        }
      }
    } catch (error) {
      // The store went away under us (closed by the host): the streams cannot continue.
      for (const client of clients) {
        send(client, 'failure', JSON.stringify({ message: (error as Error)?.message ?? String(error) }));
        client.res.end();
      }
      clients.clear();
      stopPolling();
    }
  }

  function pushEvents(client: StreamClient, lastId: number): void {
    if (lastId <= client.cursor) return;
    const rows = store.query({ ...client.filter, afterId: client.cursor, order: 'asc', limit: STREAM_BATCH });
    client.cursor = rows.length === STREAM_BATCH ? rows.at(-1)!.id : lastId;
    // The id is the cursor even when nothing matched the filter, so a reconnect resumes after what was skipped.
    if (rows.length > 0) send(client, 'events', JSON.stringify(rows), client.cursor);
  }

  function pushSummary(client: StreamClient, json: string): void {
    if (json === client.sentSummary) return;
    client.sentSummary = json;
    send(client, 'summary', json);
  }

  function pushFunctions(client: StreamClient, json: string): void {
    if (json === client.sentFunctions) return;
    client.sentFunctions = json;
    send(client, 'functions', json);
  }

  function summaryJson(fn: string | undefined): string {
    return JSON.stringify(store.summary(fn === undefined ? {} : { function: fn }));
  }

  function send(client: StreamClient, event: string, data: string, id?: number): void {
    if (client.res.writableLength > MAX_STREAM_BACKLOG) {
      client.res.destroy();
      clients.delete(client);
      return;
    }
    // JSON.stringify never emits a raw newline, so each message is exactly one data line.
    client.res.write(`event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${data}\n\n`);
  }

  function close(): void {
    closed = true;
    stopPolling();
    for (const client of clients) client.res.end();
    clients.clear();
  }

  return { handle, close };
}

// --------------------------------------------------------------------------------------------------------------
// Helpers

function defaultAssetsDir(): string {
  // This module is dist/dev/dashboard-server.js; the build puts the page in dist/dashboard/.
  return fileURLToPath(new URL('../dashboard/', import.meta.url));
}

function loadAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  for (const [name, type] of Object.entries(ASSET_TYPES)) {
    let body: Buffer;
    try {
      body = readFileSync(path.join(dir, name));
    } catch (cause) {
      throw cliError('ERR_PERIMETER_DASHBOARD_ASSETS', `The dashboard is not built: ${name} is missing`, {
        file: path.join(dir, name),
        hint: 'run `npm run build` in the Perimeter repository (it builds packages/dashboard into packages/cli/dist/dashboard)',
        cause,
      });
    }
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
    assets.set(name, { type, body, gzip: gzipSync(body), etag });
  }
  return assets;
}

function sendAsset(req: IncomingMessage, res: ServerResponse, asset: Asset): void {
  // Fixed file names, so the browser must revalidate; the ETag keeps that to a 304.
  const headers: Record<string, string> = {
    ...SECURITY_HEADERS,
    'Content-Type': asset.type,
    'Cache-Control': 'no-cache',
    ETag: asset.etag,
    Vary: 'Accept-Encoding',
  };
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const body = gzip ? asset.gzip : asset.body;
  if (gzip) headers['Content-Encoding'] = 'gzip';
  headers['Content-Length'] = String(body.length);
  res.writeHead(200, headers);
  res.end(req.method === 'HEAD' ? undefined : body);
}

function sendJson(req: IncomingMessage, res: ServerResponse, body: unknown): void {
  const text = Buffer.from(JSON.stringify(body));
  res.writeHead(200, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': String(text.length),
  });
  res.end(req.method === 'HEAD' ? undefined : text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string, cliCode?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = Buffer.from(JSON.stringify({ error: { code: cliCode ?? code, message } }));
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': String(text.length),
  });
  res.end(text);
}

class BadRequest extends Error {}

function badRequest(message: string): BadRequest {
  return new BadRequest(message);
}

function textParams<K extends string>(params: URLSearchParams, keys: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const key of keys) {
    const value = params.get(key);
    if (value !== null && value !== '') out[key] = value;
  }
  return out;
}

function intParams<K extends string>(params: URLSearchParams, keys: readonly K[]): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const key of keys) {
    const value = intParam(params, key);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function intParam(params: URLSearchParams, key: string): number | undefined {
  const value = params.get(key);
  if (value === null || value === '') return undefined;
  if (!/^\d{1,15}$/.test(value)) throw badRequest(`${key} must be a whole number, not "${value.slice(0, 40)}"`);
  return Number(value);
}

/** Loopback names and IP literals always; other names only when listed (DNS rebinding protection). */
export function hostAllowed(hostHeader: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (!hostHeader) return false;
  let host = hostHeader.toLowerCase();
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else if (host.includes(':')) host = host.slice(0, host.lastIndexOf(':'));
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host === 'localhost' || host.endsWith('.localhost') || isIP(host) !== 0 || allowed.has(host);
}
