/**
 * `perimeter dev [dir]`: runs a project's functions locally, each in its own guarded Node process, behind an HTTP
 * gateway, with every event in the embedded store and the dashboard at /_perimeter/ (docs/dev.md).
 */
import { InvalidArgumentError } from 'commander';
import { type DevOptions, startDev } from '../dev/host.js';

export interface DevCommandOptions {
  port?: number;
  host?: string;
  db?: string;
  node?: string;
  /** commander's `--no-watch`. */
  watch?: boolean;
  json?: boolean;
  otlp?: string;
  otlpHeader?: string[];
  retention?: number;
  /** Resolves when the command should stop; default: SIGINT or SIGTERM. */
  until?: Promise<unknown>;
  output?: NodeJS.WritableStream;
}

export function parseCount(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new InvalidArgumentError('a whole number above 0');
  return Number(text);
}

/** `name=value` → a header for the OTLP endpoint. */
function headers(list: string[] | undefined): Record<string, string> | undefined {
  if (!list?.length) return undefined;
  const out: Record<string, string> = {};
  for (const entry of list) {
    const at = entry.indexOf('=');
    if (at < 1) throw new InvalidArgumentError(`--otlp-header takes name=value, not ${JSON.stringify(entry)}`);
    out[entry.slice(0, at).trim()] = entry.slice(at + 1).trim();
  }
  return out;
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve(signal);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export async function devCommand(dir: string | undefined, options: DevCommandOptions): Promise<number> {
  const output = options.output ?? process.stdout;
  const otlpHeaders = headers(options.otlpHeader);
  const devOptions: DevOptions = {
    dir: dir ?? '.',
    output,
    json: options.json === true,
    watch: options.watch !== false,
    ...(options.port !== undefined ? { port: options.port } : {}),
    ...(options.host !== undefined ? { host: options.host } : {}),
    ...(options.db !== undefined ? { db: options.db } : {}),
    ...(options.node !== undefined ? { node: options.node } : {}),
    ...(options.retention !== undefined ? { retention: options.retention } : {}),
    ...(options.otlp !== undefined
      ? { otlp: { endpoint: options.otlp, ...(otlpHeaders ? { headers: otlpHeaders } : {}) } }
      : {}),
  };
  // Listen for the signal before starting: a Ctrl-C during start-up still closes what was started.
  const stop = options.until ?? untilSignal();
  const dev = await startDev(devOptions);
  const signal = await stop;
  if (!options.json && typeof signal === 'string') output.write('\nstopping…\n');
  await dev.close();
  return 0;
}
