/**
 * The dashboard page: totals, the function → package → destination graph, the events-over-time chart, the
 * functions with their policies and what `perimeter learn` would change, and the live event table.
 *
 * Everything shown comes from events, and event fields (targets, package names, function names) are written by
 * the code being watched, which may be hostile: it is rendered as text by Preact only, never as HTML.
 */
import { render } from 'preact';
import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import {
  type FunctionRecord,
  filterParams,
  getEvents,
  readView,
  type StoredEvent,
  type Summary,
  type ViewState,
  viewSearch,
} from './api.js';
import { Chart } from './chart.js';
import { EventTable } from './events.js';
import { FunctionDetail, FunctionList } from './functions.js';
import { Graph } from './graph.js';
import './style.css';

/** Events kept in the table; older ones are one "Load older" away. */
const MAX_ROWS = 1000;
const PAGE = 200;

type LiveState = 'connecting' | 'live' | 'offline';

function App() {
  const [view, setView] = useState<ViewState>(() => readView(location.search));
  const [functions, setFunctions] = useState<FunctionRecord[]>([]);
  const [summary, setSummary] = useState<Summary | null>(null);
  const [events, setEvents] = useState<StoredEvent[]>([]);
  const [hasOlder, setHasOlder] = useState(false);
  const [live, setLive] = useState<LiveState>('connecting');
  const [error, setError] = useState('');
  /** Bumped on every streamed batch for the selected function, so its suggestion is fetched again. */
  const [selectedActivity, setSelectedActivity] = useState(0);
  const selectedRef = useRef(view.selected);
  selectedRef.current = view.selected;

  const changeView = useCallback((patch: Partial<ViewState>) => {
    setView((previous) => {
      const next = { ...previous, ...patch };
      const search = viewSearch(next);
      if (search !== location.search) history.pushState(null, '', `${location.pathname}${search}`);
      return next;
    });
  }, []);

  useEffect(() => {
    const onPop = () => setView(readView(location.search));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  // One load plus one stream per filter: the stream starts right after the last event the load returned, so
  // nothing is missed or shown twice, and the server filters what it pushes.
  useEffect(() => {
    const controller = new AbortController();
    let source: EventSource | null = null;
    setLive('connecting');
    getEvents(view, {}, controller.signal)
      .then((response) => {
        setError('');
        setEvents(response.events);
        setHasOlder(response.events.length >= PAGE);
        source = new EventSource(`api/stream?${filterParams(view, { afterId: response.lastId })}`);
        source.addEventListener('open', () => setLive('live'));
        source.addEventListener('error', () =>
          setLive(source?.readyState === EventSource.CLOSED ? 'offline' : 'connecting'),
        );
        source.addEventListener('events', (message) => {
          const batch = JSON.parse((message as MessageEvent<string>).data) as StoredEvent[];
          setEvents((previous) => mergeNewest(batch, previous));
          if (batch.some((item) => item.event.function === selectedRef.current)) setSelectedActivity((n) => n + 1);
        });
        source.addEventListener('summary', (message) => {
          setSummary(JSON.parse((message as MessageEvent<string>).data) as Summary);
        });
        source.addEventListener('failure', (message) => {
          // The server could not read the store any more and ended the stream; retrying will not help.
          source?.close();
          setLive('offline');
          setError(
            `Live updates stopped: ${(JSON.parse((message as MessageEvent<string>).data) as { message: string }).message}`,
          );
        });
        source.addEventListener('functions', (message) => {
          setFunctions(JSON.parse((message as MessageEvent<string>).data) as FunctionRecord[]);
        });
      })
      .catch((reason: unknown) => {
        if (controller.signal.aborted) return;
        setLive('offline');
        setError(`Could not load events: ${(reason as Error).message}`);
      });
    return () => {
      controller.abort();
      source?.close();
    };
  }, [view.function, view.package, view.action]);

  const loadOlder = useCallback(() => {
    const oldest = events.at(-1);
    if (!oldest) return;
    getEvents(view, { beforeId: oldest.id })
      .then((response) => {
        setEvents((previous) => [...previous, ...response.events.filter((item) => item.id < oldest.id)]);
        setHasOlder(response.events.length >= PAGE);
      })
      .catch((reason: unknown) => setError(`Could not load older events: ${(reason as Error).message}`));
  }, [events, view]);

  const functionNames = useMemo(
    () => unique([...functions.map((f) => f.name), ...(summary?.functions.map((f) => f.name) ?? [])]),
    [functions, summary],
  );
  const packageNames = useMemo(() => unique(summary?.packages.map((p) => p.name) ?? []), [summary]);

  return (
    <>
      <header class="top">
        <h1>
          Perimeter <span class="sub">dashboard</span>
        </h1>
        <Totals summary={summary} scope={view.function} />
        <LiveIndicator state={live} />
      </header>
      {error && (
        <p class="error-banner" role="alert" data-testid="error">
          {error}
        </p>
      )}
      <main>
        <div class="row two">
          <section class="panel" aria-labelledby="graph-title">
            <h2 id="graph-title">Who reaches what</h2>
            <p class="hint">Function → package → destination. Red: blocked, amber: alerted; wider: more often.</p>
            <Graph
              edges={summary?.edges ?? []}
              onFunction={(name) => changeView({ function: name })}
              onPackage={(name) => changeView({ package: name })}
            />
          </section>
          <section class="panel" aria-labelledby="functions-title">
            <h2 id="functions-title">Functions</h2>
            <FunctionList
              functions={functions}
              counts={summary?.functions ?? []}
              filter={view.function}
              selected={view.selected}
              onSelect={(name) => changeView({ selected: name === view.selected ? '' : name })}
            />
          </section>
        </div>
        <section class="panel" aria-labelledby="chart-title">
          <h2 id="chart-title">Events over time</h2>
          <Chart timeline={summary?.timeline ?? null} />
        </section>
        <FunctionDetail
          name={view.selected}
          record={functions.find((f) => f.name === view.selected)}
          activity={selectedActivity}
          onClose={() => changeView({ selected: '' })}
        />
        <section class="panel" aria-labelledby="events-title">
          <h2 id="events-title">Events</h2>
          <EventTable
            events={events}
            view={view}
            functionNames={functionNames}
            packageNames={packageNames}
            hasOlder={hasOlder}
            onFilter={changeView}
            onLoadOlder={loadOlder}
          />
        </section>
      </main>
    </>
  );
}

function Totals({ summary, scope }: { summary: Summary | null; scope: string }) {
  const value = (n: number | undefined) => (n === undefined ? '–' : n.toLocaleString('en'));
  return (
    <dl class="totals" aria-label={scope ? `Totals for ${scope}` : 'Totals'}>
      <div>
        <dt>Events{scope ? ` (${scope})` : ''}</dt>
        <dd data-testid="total-events">{value(summary?.total)}</dd>
      </div>
      <div class="blocked">
        <dt>Blocked</dt>
        <dd data-testid="total-blocked">{value(summary?.blocked)}</dd>
      </div>
      <div class="alerted">
        <dt>Alerted</dt>
        <dd data-testid="total-alerted">{value(summary?.alerted)}</dd>
      </div>
      <div>
        <dt>Invocations</dt>
        <dd data-testid="total-invocations">
          {value(summary?.invocations.total)}
          {summary && summary.invocations.errors > 0 && (
            <span class="errors"> ({summary.invocations.errors.toLocaleString('en')} failed)</span>
          )}
        </dd>
      </div>
    </dl>
  );
}

function LiveIndicator({ state }: { state: LiveState }) {
  const label = state === 'live' ? 'live' : state === 'connecting' ? 'connecting…' : 'offline';
  return (
    <p class={`live ${state}`} data-testid="live" data-state={state} role="status" aria-live="polite">
      <span class="dot" aria-hidden="true" />
      {label}
    </p>
  );
}

/** Puts a streamed batch (oldest first) on top of the table (newest first), without duplicates. */
function mergeNewest(batch: StoredEvent[], previous: StoredEvent[]): StoredEvent[] {
  const top = previous[0]?.id ?? 0;
  const fresh = batch.filter((item) => item.id > top).reverse();
  if (fresh.length === 0) return previous;
  return [...fresh, ...previous].slice(0, MAX_ROWS);
}

function unique(names: string[]): string[] {
  return [...new Set(names)].sort((a, b) => a.localeCompare(b));
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
