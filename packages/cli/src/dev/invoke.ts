/**
 * The client side of `perimeter invoke`: POSTs an event to a running `perimeter dev` at
 * `/_perimeter/invoke/<fn>` and returns what the function answered.
 */
import { cliError } from '../errors.js';
import type { InvokeResult } from './host.js';

export interface InvokeResponse extends InvokeResult {
  function: string;
}

export async function invokeRemote(
  baseUrl: string,
  name: string,
  event: unknown,
  timeoutMs = 15 * 60_000,
): Promise<InvokeResponse> {
  let url: URL;
  try {
    url = new URL(`/_perimeter/invoke/${encodeURIComponent(name)}`, baseUrl);
  } catch {
    throw cliError('ERR_PERIMETER_DEV_NOT_RUNNING', `${JSON.stringify(baseUrl)} is not a URL`, {
      hint: 'e.g. --url http://127.0.0.1:8788',
    });
  }
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; errors?: Array<{ code?: string }> } }).cause;
    const why = cause?.code ?? cause?.errors?.[0]?.code ?? (error as Error).message;
    throw cliError('ERR_PERIMETER_DEV_NOT_RUNNING', `nothing answers at ${url.origin} (${why})`, {
      hint: 'start it with `perimeter dev` (it prints its URL), or pass --url',
      cause: error,
    });
  }
  const text = await response.text();
  let body: any;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  if (response.status === 404 && body?.code === 'ERR_PERIMETER_DEV_UNKNOWN_FUNCTION') {
    const functions: string[] = Array.isArray(body.functions)
      ? body.functions.filter((f: unknown) => typeof f === 'string')
      : [];
    throw cliError('ERR_PERIMETER_DEV_UNKNOWN_FUNCTION', `no function is called ${JSON.stringify(name)}`, {
      hint: functions.length ? `functions: ${functions.join(', ')}` : 'the dev server has no functions',
    });
  }
  if (!response.ok || body === null || typeof body !== 'object' || typeof body.requestId !== 'string') {
    throw cliError(
      'ERR_PERIMETER_DEV_NOT_RUNNING',
      `${url.origin} is not a perimeter dev server (HTTP ${response.status} for ${url.pathname})`,
      {
        hint: 'check --url: it is the gateway URL `perimeter dev` prints',
      },
    );
  }
  return body as InvokeResponse;
}
