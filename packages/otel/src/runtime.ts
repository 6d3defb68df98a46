/**
 * `@perimeter/otel/runtime`: ships a guarded function's own events to a collector, in the function's process.
 * Kept apart from the main entry so that `@perimeter/otel` itself needs no `perimeter` installed (the dev host
 * exports from outside the functions).
 */
import { onEvent } from 'perimeter';
import type { OtlpExporter } from './exporter.js';

export interface AttachOptions {
  /** Only these events (default: all). */
  filter?: (event: Parameters<Parameters<typeof onEvent>[0]>[0]) => boolean;
}

/**
 * Exports every event the guard reports in this process; returns a function that stops it.
 *
 * Events about the exporter's own requests are not exported: when the policy does not allow the collector, each
 * export attempt is blocked and reported, and exporting that report would cause the next attempt. They are
 * recognised by package (`@perimeter/otel`) and, since a symlinked or bundled install may be attributed to the
 * function itself, by target: a POST under the collector's URL, or the DNS lookup of its host.
 */
export function attachToRuntime(exporter: OtlpExporter, options: AttachOptions = {}): () => void {
  const base = exporter.endpoint;
  const lookup = `dns:${new URL(base).hostname}`;
  const own = (event: { package: string; packages?: string[]; capability: string; target: string }) =>
    event.package === '@perimeter/otel' ||
    event.packages?.includes('@perimeter/otel') === true ||
    (event.capability === 'network' && (event.target.startsWith(`POST ${base}/`) || event.target === lookup));
  return onEvent((event) => {
    if (own(event)) return;
    if (options.filter && !options.filter(event)) return;
    exporter.exportEvent(event);
  });
}
