/**
 * The event table, newest first, with its filters. The filters live in the URL (see api.ts), so a copied link
 * shows the same rows.
 */
import { repeatsOf, type StoredEvent, type ViewState } from './api.js';

export function EventTable(props: {
  events: StoredEvent[];
  view: ViewState;
  functionNames: string[];
  packageNames: string[];
  hasOlder: boolean;
  onFilter(patch: Partial<ViewState>): void;
  onLoadOlder(): void;
}) {
  const { view } = props;
  const filtered = Boolean(view.function || view.package || view.action);
  return (
    <>
      <form class="filters" aria-label="Filter events" onSubmit={(event) => event.preventDefault()}>
        <Select
          id="filter-function"
          label="Function"
          value={view.function}
          options={props.functionNames}
          onChange={(value) => props.onFilter({ function: value })}
        />
        <Select
          id="filter-package"
          label="Package"
          value={view.package}
          options={props.packageNames}
          onChange={(value) => props.onFilter({ package: value })}
        />
        <Select
          id="filter-action"
          label="Action"
          value={view.action}
          options={['blocked', 'alerted']}
          onChange={(value) => props.onFilter({ action: value })}
        />
        <button
          type="button"
          class="small"
          disabled={!filtered}
          onClick={() => props.onFilter({ function: '', package: '', action: '' })}
        >
          Clear filters
        </button>
        <span class="count" data-testid="row-count" aria-live="polite">
          {props.events.length} event{props.events.length === 1 ? '' : 's'} shown
        </span>
      </form>
      <div class="table-wrap">
        <table class="events" data-testid="events">
          <caption class="visually-hidden">Events, newest first</caption>
          <colgroup>
            <col class="c-time" />
            <col class="c-function" />
            <col class="c-package" />
            <col class="c-action" />
            <col class="c-capability" />
            <col class="c-target" />
            <col class="c-reason" />
          </colgroup>
          <thead>
            <tr>
              <th scope="col">Time</th>
              <th scope="col">Function</th>
              <th scope="col">Package</th>
              <th scope="col">Action</th>
              <th scope="col">Capability</th>
              <th scope="col">Target</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {props.events.length === 0 && (
              <tr>
                <td colSpan={7} class="empty">
                  {filtered ? 'No events match these filters.' : 'No events yet.'}
                </td>
              </tr>
            )}
            {props.events.map(({ id, event }) => (
              <tr key={id} class={event.action} data-testid="event-row" data-id={id}>
                <td class="mono" title={event.time}>
                  {formatTime(event.time)}
                </td>
                <td>{event.function}</td>
                <td title={event.packages?.join(' → ')}>{event.package}</td>
                <td>
                  <span class={`badge ${event.action}`}>{event.action}</span>
                </td>
                <td>{event.type === 'violation' ? event.capability : `${event.capability} (${event.type})`}</td>
                <td class="target mono" title={event.detail ?? event.target}>
                  {event.target}
                  {repeatsOf(event) > 0 && (
                    <span class="repeats">
                      {' '}
                      (repeated {repeatsOf(event)} more time{repeatsOf(event) === 1 ? '' : 's'})
                    </span>
                  )}
                </td>
                <td>{event.deniedBy ? `${event.reason ?? ''} (${event.deniedBy})` : (event.reason ?? '')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {props.hasOlder && (
        <button type="button" class="small older" onClick={props.onLoadOlder}>
          Load older events
        </button>
      )}
    </>
  );
}

function Select(props: { id: string; label: string; value: string; options: string[]; onChange(value: string): void }) {
  // The current value stays selectable even before the data that names it has arrived (a link opened cold).
  const options = props.value && !props.options.includes(props.value) ? [props.value, ...props.options] : props.options;
  return (
    <label for={props.id}>
      {props.label}
      <select
        id={props.id}
        data-testid={props.id}
        value={props.value}
        onChange={(event) => props.onChange((event.currentTarget as HTMLSelectElement).value)}
      >
        <option value="">all</option>
        {options.map((option) => (
          <option key={option} value={option}>
            {option}
          </option>
        ))}
      </select>
    </label>
  );
}

function formatTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  const today = new Date().toDateString() === date.toDateString();
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
  return today ? time : `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}
