/**
 * What the page knows about the server: the JSON shapes of /_perimeter/api/* (the server's own types, imported
 * as types only so nothing of the CLI is bundled), the filter state kept in the URL, and small fetch helpers.
 */
import type { EventsResponse, FunctionsResponse, Suggestion } from '../../cli/src/dev/dashboard-server.js';
import type { EventRecord, FunctionRecord, StoredEvent, Summary } from '../../cli/src/dev/types.js';

export type { EventRecord, EventsResponse, FunctionRecord, StoredEvent, Suggestion, Summary };

/** The view a link reproduces: the event table's filters and the function whose policy is open. */
export interface ViewState {
  function: string;
  package: string;
  /** '' (all), 'blocked' or 'alerted'. */
  action: string;
  /** The function selected in the list ('' = none). */
  selected: string;
}

const VIEW_KEYS = ['function', 'package', 'action', 'selected'] as const;

export function readView(search: string): ViewState {
  const params = new URLSearchParams(search);
  const action = params.get('action') ?? '';
  return {
    function: params.get('function') ?? '',
    package: params.get('package') ?? '',
    action: action === 'blocked' || action === 'alerted' ? action : '',
    selected: params.get('selected') ?? '',
  };
}

export function viewSearch(view: ViewState): string {
  const params = new URLSearchParams();
  for (const key of VIEW_KEYS) if (view[key]) params.set(key, view[key]);
  const text = params.toString();
  return text ? `?${text}` : '';
}

/** Query string for the API: only the event filters (not `selected`). */
export function filterParams(view: ViewState, extra: Record<string, string | number> = {}): string {
  const params = new URLSearchParams();
  if (view.function) params.set('function', view.function);
  if (view.package) params.set('package', view.package);
  if (view.action) params.set('action', view.action);
  for (const [key, value] of Object.entries(extra)) params.set(key, String(value));
  return params.toString();
}

export function matchesView(event: EventRecord, view: ViewState): boolean {
  return (
    (!view.function || event.function === view.function) &&
    (!view.package || event.package === view.package) &&
    (!view.action || event.action === view.action)
  );
}

export async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(url, { signal, headers: { accept: 'application/json' } });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const body = (await response.json()) as { error?: { message?: string } };
      if (body.error?.message) message = body.error.message;
    } catch {}
    throw new Error(message);
  }
  return (await response.json()) as T;
}

export function getFunctions(signal?: AbortSignal): Promise<FunctionsResponse> {
  return getJson<FunctionsResponse>('api/functions', signal);
}

export function getEvents(view: ViewState, extra: Record<string, number>, signal?: AbortSignal) {
  return getJson<EventsResponse>(`api/events?${filterParams(view, { limit: 200, ...extra })}`, signal);
}

export function getSuggestion(name: string, signal?: AbortSignal): Promise<Suggestion> {
  return getJson<Suggestion>(`api/functions/${encodeURIComponent(name)}/suggestion`, signal);
}

/** On a repeat summary (docs/events.md#repeats): how many more times the event before it happened. */
export function repeatsOf(event: EventRecord): number {
  return typeof event.repeats === 'number' && event.repeats > 0 ? event.repeats : 0;
}
