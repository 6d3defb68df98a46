/**
 * The functions (from the host's records, plus any only seen in events) with their status, and for the selected
 * one: the policy in effect and what `perimeter learn` would change in it, given the violations recorded so far.
 */
import { useEffect, useState } from 'preact/hooks';
import { type FunctionRecord, getSuggestion, type Suggestion, type Summary } from './api.js';

type Counts = Summary['functions'];

export function FunctionList(props: {
  functions: FunctionRecord[];
  counts: Counts;
  /** The function filter: the counts are of this function only. */
  filter: string;
  selected: string;
  onSelect(name: string): void;
}) {
  const byName = new Map(props.counts.map((count) => [count.name, count]));
  const names = [...new Set([...props.functions.map((f) => f.name), ...byName.keys()])].sort((a, b) =>
    a.localeCompare(b),
  );
  if (names.length === 0) return <p class="empty">No functions yet.</p>;
  return (
    <ul class="functions" data-testid="functions">
      {names.map((name) => {
        const record = props.functions.find((f) => f.name === name);
        const count = byName.get(name);
        const status = record?.status ?? 'unknown';
        return (
          <li key={name} data-testid="function" data-name={name} data-status={status}>
            <button
              type="button"
              class={`function${props.selected === name ? ' selected' : ''}`}
              aria-pressed={props.selected === name}
              onClick={() => props.onSelect(name)}
            >
              <span class="name">{name}</span>
              <span class={`status ${status}`} data-testid="function-status">
                {status}
              </span>
              <span class="counts">
                {props.filter && props.filter !== name ? (
                  'not in this view'
                ) : count ? (
                  <>
                    <span class="blocked">{count.blocked} blocked</span> ·{' '}
                    <span class="alerted">{count.alerted} alerted</span>
                  </>
                ) : (
                  'no events'
                )}
              </span>
              {record?.error && (
                <span class="function-error" data-testid="function-error">
                  {record.error}
                </span>
              )}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

type Loaded =
  | { state: 'idle' }
  | { state: 'loading' }
  | { state: 'error'; message: string }
  | { state: 'ok'; suggestion: Suggestion };

export function FunctionDetail(props: {
  name: string;
  record: FunctionRecord | undefined;
  /** Changes when new events of this function arrive: the suggestion is fetched again. */
  activity: number;
  onClose(): void;
}) {
  const [loaded, setLoaded] = useState<Loaded>({ state: 'idle' });
  const [debounced, setDebounced] = useState(props.activity);

  // A burst of events refreshes the suggestion once, not once per batch.
  useEffect(() => {
    const timer = setTimeout(() => setDebounced(props.activity), 1000);
    return () => clearTimeout(timer);
  }, [props.activity]);

  useEffect(() => {
    if (!props.name) {
      setLoaded({ state: 'idle' });
      return;
    }
    const controller = new AbortController();
    setLoaded((previous) =>
      previous.state === 'ok' && previous.suggestion.function === props.name ? previous : { state: 'loading' },
    );
    getSuggestion(props.name, controller.signal)
      .then((suggestion) => setLoaded({ state: 'ok', suggestion }))
      .catch((reason: unknown) => {
        if (!controller.signal.aborted) setLoaded({ state: 'error', message: (reason as Error).message });
      });
    return () => controller.abort();
  }, [props.name, debounced]);

  if (!props.name) {
    return (
      <section class="panel detail" aria-labelledby="detail-title" data-testid="detail">
        <h2 id="detail-title">Policy</h2>
        <p class="empty">
          Select a function to see the policy in effect and what <code>perimeter learn</code> would change.
        </p>
      </section>
    );
  }
  const suggestion = loaded.state === 'ok' ? loaded.suggestion : null;
  return (
    <section class="panel detail" aria-labelledby="detail-title" data-testid="detail" data-function={props.name}>
      <div class="detail-head">
        <h2 id="detail-title">
          Policy of <span class="mono">{props.name}</span>
        </h2>
        <button type="button" class="small" onClick={props.onClose} aria-label="Close the policy view">
          Close
        </button>
      </div>
      {props.record?.status === 'failed' && props.record.error && (
        <pre class="function-error block" data-testid="detail-error">
          {props.record.error}
        </pre>
      )}
      {loaded.state === 'loading' && <p class="empty">Loading…</p>}
      {loaded.state === 'error' && (
        <p class="error-banner" role="alert">
          {loaded.message}
        </p>
      )}
      {suggestion && (
        <div class="detail-grid">
          <div>
            <h3>In effect</h3>
            <p class="hint" data-testid="policy-file">
              {suggestion.policyFile ?? 'no policy file: a generated alert-mode policy (learn mode)'}
            </p>
            <pre class="json" data-testid="policy">
              {JSON.stringify(suggestion.policy, null, 2)}
            </pre>
          </div>
          <div>
            <h3>What learn would change</h3>
            <p class="hint">
              From {suggestion.violations} recorded violation(s); <code>perimeter learn</code> would write this.
            </p>
            <Changes suggestion={suggestion} />
            {suggestion.notes.length > 0 && (
              <ul class="notes">
                {suggestion.notes.map((note) => (
                  <li key={note}>{note}</li>
                ))}
              </ul>
            )}
            <details>
              <summary>Suggested policy</summary>
              <pre class="json" data-testid="suggested-policy">
                {JSON.stringify(suggestion.suggested, null, 2)}
              </pre>
            </details>
          </div>
        </div>
      )}
    </section>
  );
}

function Changes({ suggestion }: { suggestion: Suggestion }) {
  if (suggestion.changes.length === 0) {
    return (
      <p class="empty" data-testid="suggestion-none">
        Nothing: the policy already allows everything recorded.
      </p>
    );
  }
  return (
    <ul class="changes" data-testid="suggestion">
      {suggestion.changes.map((change) => (
        <li
          key={`${change.pointer}:${change.rule}`}
          class={`change ${change.kind}${change.widening ? ' widening' : ''}`}
          data-testid="suggestion-change"
        >
          <span class="sign" aria-hidden="true">
            {change.kind === 'removed' || change.kind === 'narrowed' ? '−' : change.kind === 'setting' ? '~' : '+'}
          </span>
          <span class="message">{change.message}</span>
        </li>
      ))}
    </ul>
  );
}
