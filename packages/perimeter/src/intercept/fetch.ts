/**
 * `fetch` (undici inside Node), `WebSocket` and `EventSource`.
 *
 * fetch is judged by method and URL before undici sees the request. Redirects are followed by the guard itself
 * (undici is asked for `redirect: 'manual'`) so every hop is judged, whatever dispatcher the caller passed:
 * an allowed host that answers `302 Location: https://attacker.example/?k=…` does not carry the request there.
 * Redirect handling follows the Fetch standard: at most 20 hops; 303, and 301/302 after POST, become GET
 * without a body; a stream body cannot be replayed; credentials headers are dropped when the origin changes.
 */
import { type CapturedStack, captureCallers, packagesOf } from '../attribution.js';
import { activePolicy, allowedForAnyCaller, checkNetwork } from '../guard.js';
import type { NetworkTarget } from '../policy/evaluate.js';
import { normalizeHost } from '../policy/host.js';
import { DEFAULT_PORT } from '../policy/pattern.js';
import {
  ArrayIsArray,
  MapClear,
  MapGet,
  MapSet,
  MapSize,
  ObjectDefineProperty,
  PromiseReject,
  ReflectApply,
  ReflectConstruct,
  SafeMap,
  StringSlice,
  StringToUpperCase,
  URLCtor,
} from '../pristine.js';
import { scopePolicies } from '../scope.js';
import { splitPath } from './http.js';
import { disguise, guardProperty } from './patch.js';

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location'];
const CROSS_ORIGIN_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];

export function urlTarget(url: URL, method: string): { target: NetworkTarget; query: string } | null {
  const scheme = url.protocol.slice(0, -1);
  if (!(scheme in DEFAULT_PORT)) return null;
  const { path, query } = splitPath(url.pathname + url.search);
  return {
    target: {
      kind: 'http',
      method,
      scheme,
      host: normalizeHost(url.hostname) ?? url.hostname,
      port: Number(url.port) || DEFAULT_PORT[scheme]!,
      path,
    },
    query,
  };
}

/** fetch rejects with `TypeError: fetch failed`; the denial is its cause, and its code is on both. */
function fetchFailed(cause: Error & { code?: string }): TypeError {
  const err = new TypeError('fetch failed', { cause }) as TypeError & { code?: string };
  err.code = cause.code;
  return err;
}

function checkUrl(url: URL, method: string, packages: readonly string[] | undefined): Error | null {
  return checkJudged(urlTarget(url, method), packages);
}

function checkJudged(
  judged: ReturnType<typeof urlTarget>,
  packages: readonly string[] | undefined,
  seen?: { packages?: readonly string[] },
): Error | null {
  // data:, blob: and file: never leave the process (undici rejects file:), so only http(s) is judged.
  if (judged === null) return null;
  return checkNetwork(judged.target, judged.query, packages, seen);
}

interface Shape {
  url: URL;
  method: string;
  redirect: string;
}

function shapeOf(input: unknown, init: RequestInit | undefined): Shape | null {
  try {
    if (typeof Request === 'function' && input instanceof Request) {
      return {
        url: new URLCtor(input.url),
        method: (init?.method ?? input.method).toUpperCase(),
        redirect: init?.redirect ?? input.redirect,
      };
    }
    const href = input instanceof URLCtor ? input.href : String(input);
    return {
      url: new URLCtor(href),
      method: (init?.method ?? 'GET').toUpperCase(),
      redirect: init?.redirect ?? 'follow',
    };
  } catch {
    return null; // not a URL: let fetch reject it exactly as it would.
  }
}

/**
 * `METHOD url` strings that a rule allows for any caller. Only used while the answer cannot depend on anything
 * else: no package rules, no `withPolicy` scope, never for a target that was only alerted, and never for the
 * platform's endpoints (their allowance depends on who calls). Bounded; the policy never changes under a running guard, so entries never go stale.
 */
const allowedFetches = new SafeMap<string, true>();
const ALLOWED_FETCHES_LIMIT = 512;

function decisionsAreCacheable(): boolean {
  const policy = activePolicy();
  return policy !== null && !policy.packageNetworkRules && scopePolicies() === undefined;
}

function rememberIfAllowedByRule(input: string, method: string, judged: ReturnType<typeof urlTarget>): void {
  if (judged === null || !decisionsAreCacheable() || !allowedForAnyCaller(judged.target)) return;
  if (MapSize(allowedFetches) >= ALLOWED_FETCHES_LIMIT) MapClear(allowedFetches);
  MapSet(allowedFetches, `${method} ${input}`, true);
}

let fetchPatched = false;

export function patchFetch(onFirstUse: () => void): void {
  if (fetchPatched) return;
  fetchPatched = true;
  guardProperty(
    globalThis,
    'fetch',
    (original) =>
      function fetch(this: unknown, input: unknown, init?: RequestInit) {
        onFirstUse();
        // Hot path: the same URL string fetched again, already judged allowed by a rule.
        if (typeof input === 'string' && decisionsAreCacheable()) {
          const method = init?.method;
          const key = `${typeof method === 'string' ? StringToUpperCase(method) : 'GET'} ${input}`;
          if (MapGet(allowedFetches, key) === true) {
            const redirect = init?.redirect ?? 'follow';
            if (redirect !== 'follow') return ReflectApply(original, this, [input, init]);
            return followRedirects(original, input, init, null, null);
          }
        }
        const shape = shapeOf(input, init);
        if (shape === null) return ReflectApply(original, this, [input, init]);
        // The stack is read lazily inside the decision, only if some package's rules could deny this URL.
        const judged = urlTarget(shape.url, shape.method);
        const seen: { packages?: readonly string[] } = {};
        const denied = checkJudged(judged, undefined, seen);
        if (denied) return PromiseReject(fetchFailed(denied));
        if (typeof input === 'string') rememberIfAllowedByRule(input, shape.method, judged);
        if (shape.redirect !== 'follow') return ReflectApply(original, this, [input, init]);
        // With package rules, a redirect hop must be judged for whoever called: the callers the decision already
        // read, or else the frames, kept unread until a redirect needs them.
        const callers =
          seen.packages !== undefined ? seen.packages : activePolicy()?.packageNetworkRules ? captureCallers() : null;
        return followRedirects(original, input, init, shape, callers);
      },
  );
}

/** Who called fetch: already read by the first decision, frames still to read, or null (no package rules). */
type Callers = readonly string[] | CapturedStack | null;

/** `shape` is null on the cached hot path (no package rules there); it is worked out again if a redirect needs it. */
async function followRedirects(
  original: Function,
  input: unknown,
  init: RequestInit | undefined,
  shape: Shape | null,
  callers: Callers,
): Promise<Response> {
  const isRequest = typeof Request === 'function' && input instanceof Request;
  // A Request body is consumed by the first hop; keep a copy in case a 307/308 must replay it.
  const replay = isRequest && (input as Request).body !== null ? (input as Request).clone() : null;
  const response: Response = await original(input, { ...init, redirect: 'manual' });
  if (!REDIRECT_STATUSES.has(response.status) || !response.headers.has('location')) return response;
  return followHops(original, input, init, shape ?? shapeOf(input, init)!, replay, response, callers);
}

async function followHops(
  original: Function,
  input: unknown,
  init: RequestInit | undefined,
  shape: Shape,
  replay: Request | null,
  firstResponse: Response,
  callers: Callers,
): Promise<Response> {
  // Who asked: read from the frames captured when fetch was called (async frames are not enough: a caller
  // that uses `.then()` leaves none, and whoever awaits further up would be taken for it).
  const packages =
    callers === null ? undefined : ArrayIsArray(callers) ? callers : packagesOf(callers as CapturedStack);
  const isRequest = typeof Request === 'function' && input instanceof Request;
  let response = firstResponse;
  let url = shape.url;
  let method = shape.method;
  let hops = 0;
  let headers: Headers | null = null;
  let body: BodyInit | null | undefined = init?.body;
  while (REDIRECT_STATUSES.has(response.status)) {
    const location = response.headers.get('location');
    if (location === null) break;
    let next: URL;
    try {
      next = new URLCtor(location, url);
    } catch (cause) {
      throw new TypeError('fetch failed', { cause });
    }
    if (++hops > MAX_REDIRECTS) throw new TypeError('fetch failed', { cause: new Error('redirect count exceeded') });
    if (next.protocol !== 'http:' && next.protocol !== 'https:')
      throw new TypeError('fetch failed', { cause: new Error('URL scheme must be a HTTP(S) scheme') });
    headers ??= new Headers(init?.headers ?? (isRequest ? (input as Request).headers : undefined));
    const status = response.status;
    if (
      ((status === 301 || status === 302) && method === 'POST') ||
      (status === 303 && method !== 'GET' && method !== 'HEAD')
    ) {
      method = 'GET';
      body = null;
      for (const name of BODY_HEADERS) headers.delete(name);
    } else if (body === undefined && replay) {
      body = replay.body;
    } else if (body instanceof ReadableStream || isAsyncIterable(body)) {
      throw new TypeError('fetch failed', { cause: new Error('cannot follow a redirect with a stream body') });
    }
    if (next.origin !== url.origin) for (const name of CROSS_ORIGIN_HEADERS) headers.delete(name);
    const denied = checkUrl(next, method, packages);
    await response.body?.cancel().catch(() => {});
    if (denied) throw fetchFailed(denied);
    url = next;
    const hopInit: RequestInit & { duplex?: string } = {
      ...init,
      method,
      headers,
      body: body ?? null,
      redirect: 'manual',
    };
    if (body instanceof ReadableStream) hopInit.duplex = 'half';
    response = await original(url.href, hopInit);
  }
  if (hops > 0) {
    ObjectDefineProperty(response, 'redirected', { value: true });
    ObjectDefineProperty(response, 'url', { value: url.href });
  }
  return response;
}

function isAsyncIterable(value: unknown): boolean {
  return value !== null && typeof value === 'object' && Symbol.asyncIterator in value && !(value instanceof Blob);
}

/** WebSocket / EventSource: judged as GET of their URL (ws/wss for WebSocket). A denial throws from the constructor, as a browser does for a blocked port. */
export function patchConstructor(name: 'WebSocket' | 'EventSource', onFirstUse: () => void): void {
  const descriptor = Object.getOwnPropertyDescriptor(globalThis, name);
  if (!descriptor) return;
  guardProperty(globalThis, name, (original) => {
    const Guarded = function (this: unknown, url: unknown, ...rest: unknown[]) {
      if (new.target === undefined) return ReflectApply(original, this, [url, ...rest]);
      onFirstUse();
      // Converted once, and the string is what the real constructor gets: an object whose toString answers an
      // allowed URL to the check and another one to the constructor must not pass (tamper suite).
      let text: string;
      try {
        text = typeof url === 'string' ? url : `${url}`;
      } catch {
        return ReflectConstruct(original, [url, ...rest], new.target);
      }
      let parsed: URL | null = null;
      try {
        parsed = new URLCtor(text);
      } catch {
        // Invalid URL: the real constructor throws its own SyntaxError.
      }
      if (parsed) {
        if (name === 'WebSocket' && (parsed.protocol === 'http:' || parsed.protocol === 'https:')) {
          // "http…" → "ws…" without String.prototype.replace, which a dependency can replace.
          parsed = new URLCtor(`ws${StringSlice(parsed.href, 4)}`);
        }
        const denied = checkUrl(parsed, 'GET', undefined);
        if (denied) throw denied;
      }
      return ReflectConstruct(original, [text, ...rest], new.target);
    };
    Guarded.prototype = original.prototype;
    return disguise(Guarded, original);
  });
}
