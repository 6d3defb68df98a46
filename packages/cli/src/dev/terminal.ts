/**
 * What `perimeter dev` prints: a banner, one line per request, one per blocked or alerted event, function status
 * changes and the functions' own output with a `[name]` prefix. With `--json`, the same things as one JSON object
 * per line (docs/dev.md, "--json").
 */
import type { EventRecord, FunctionRecord, InvocationRecord } from './types.js';

export interface Colours {
  green(text: string): string;
  red(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  dim(text: string): string;
  bold(text: string): string;
}

/** Colour when the stream is a terminal, unless NO_COLOR; FORCE_COLOR wins both ways (as learn/report.ts). */
export function terminalColours(stream: NodeJS.WritableStream | null, env: NodeJS.ProcessEnv = process.env): Colours {
  const on = env.FORCE_COLOR
    ? env.FORCE_COLOR !== '0'
    : (stream as NodeJS.WriteStream | null)?.isTTY === true && !env.NO_COLOR;
  const wrap = (open: number, close: number) => (text: string) => (on ? `\x1b[${open}m${text}\x1b[${close}m` : text);
  return {
    green: wrap(32, 39),
    red: wrap(31, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
    dim: wrap(2, 22),
    bold: wrap(1, 22),
  };
}

/** Control characters from a function's output or an event would otherwise reach the terminal as escapes. */
export function printable(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    const control = (code < 0x20 && code !== 0x09) || (code >= 0x7f && code <= 0x9f);
    out += control ? `\\x${code.toString(16).padStart(2, '0')}` : char;
  }
  return out;
}

function clip(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export class Terminal {
  readonly c: Colours;
  constructor(
    private readonly out: NodeJS.WritableStream | null,
    private readonly json: boolean,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.c = terminalColours(json ? null : out, env);
  }

  private write(text: string): void {
    this.out?.write(text);
  }

  private record(kind: string, fields: Record<string, unknown>): void {
    this.write(`${JSON.stringify({ kind, time: new Date().toISOString(), ...fields })}\n`);
  }

  banner(info: {
    url: string;
    dashboardUrl: string;
    db: string;
    functions: FunctionRecord[];
    warnings: string[];
  }): void {
    if (this.json) {
      this.record('ready', { url: info.url, dashboardUrl: info.dashboardUrl, db: info.db, functions: info.functions });
      return;
    }
    const { c } = this;
    const lines = [
      ``,
      `  ${c.bold('perimeter dev')}  ${c.dim(`${info.functions.length} function${info.functions.length === 1 ? '' : 's'}`)}`,
      ``,
    ];
    for (const fn of info.functions) {
      const status =
        fn.status === 'ready' ? c.green('ready') : fn.status === 'failed' ? c.red('failed') : c.yellow(fn.status);
      const policy = fn.policyFile ? c.dim(fn.policyFile) : c.yellow('no policy: alert mode (learn)');
      lines.push(`  ${c.bold(fn.name)}  ${c.dim(fn.format)}  ${status}  ${policy}`);
      const routes = fn.routes.length
        ? fn.routes.join('  ')
        : c.dim(`${fn.trigger} trigger: perimeter invoke ${fn.name} --sample ${sampleFor(fn.trigger)}`);
      lines.push(`    ${routes}`);
      if (fn.status === 'failed' && fn.error)
        lines.push(
          ...fn.error
            .split('\n')
            .slice(0, 6)
            .map((line) => `    ${c.red(printable(line))}`),
        );
    }
    lines.push(
      '',
      `  gateway    ${c.cyan(info.url)}`,
      `  dashboard  ${c.cyan(info.dashboardUrl)}`,
      `  events     ${c.dim(info.db)}`,
    );
    for (const warning of info.warnings) lines.push(`  ${c.yellow('!')} ${warning}`);
    lines.push('', c.dim('  Ctrl-C to stop'), '');
    this.write(`${lines.join('\n')}\n`);
  }

  request(invocation: InvocationRecord): void {
    if (this.json) {
      this.record('invocation', { ...invocation });
      return;
    }
    const { c } = this;
    const code = invocation.statusCode;
    const status =
      code === undefined
        ? invocation.outcome === 'ok'
          ? c.green('ok')
          : c.red(invocation.outcome)
        : code >= 500
          ? c.red(String(code))
          : code >= 400
            ? c.yellow(String(code))
            : c.green(String(code));
    const error = invocation.error ? `  ${c.dim(clip(printable(invocation.error.split('\n')[0] ?? ''), 120))}` : '';
    this.write(
      `${printable(clip(invocation.request))} ${c.dim('→')} ${invocation.function} ${status} ${c.dim(`${Math.round(invocation.durationMs)}ms`)}${error}\n`,
    );
  }

  /** A request no route matched: not an invocation, but worth a line (a typo in a URL or a route). */
  unrouted(method: string, rawPath: string): void {
    if (this.json) this.record('unrouted', { method, path: rawPath, statusCode: 404 });
    else
      this.write(
        `${printable(clip(`${method} ${rawPath}`))} ${this.c.dim('→')} ${this.c.yellow('404')} ${this.c.dim('no route')}\n`,
      );
  }

  event(event: EventRecord): void {
    if (this.json) {
      this.record('event', { event });
      return;
    }
    // `drift` repeats, once per new behaviour, what the `violation` beside it says.
    if ((event.action !== 'blocked' && event.action !== 'alerted') || event.type === 'drift') return;
    const { c } = this;
    const mark = event.action === 'blocked' ? c.red('✖ blocked') : c.yellow('⚠ alerted');
    const kind = event.type === 'violation' ? event.capability : `${event.type} ${event.capability}`;
    const repeats = typeof event.repeats === 'number' ? c.dim(` ×${event.repeats + 1}`) : '';
    this.write(
      `${mark} ${event.function} ${c.bold(printable(clip(event.package, 60)))} ${kind} ${printable(clip(event.target))}${repeats}\n`,
    );
  }

  /** The last settled status shown per function, so that a recovery is announced and a plain restart is not. */
  private readonly shown = new Map<string, FunctionRecord['status']>();

  status(fn: FunctionRecord): void {
    if (this.json) {
      this.record('function', { function: fn });
      return;
    }
    if (fn.status === 'starting') return;
    const before = this.shown.get(fn.name);
    this.shown.set(fn.name, fn.status);
    const { c } = this;
    if (fn.status === 'failed') {
      const [first, ...rest] = (fn.error ?? 'failed').split('\n');
      this.write(`${c.red('✖')} ${fn.name} failed: ${printable(first ?? '')}\n`);
      for (const line of rest.slice(0, 8)) this.write(`    ${c.dim(printable(line))}\n`);
    } else if (fn.status === 'ready' && before === 'failed') {
      this.write(`${c.green('✔')} ${fn.name} ready\n`);
    }
  }

  /** What the banner showed counts as shown. */
  shownInBanner(functions: FunctionRecord[]): void {
    for (const fn of functions) this.shown.set(fn.name, fn.status);
  }

  reload(name: string, why: string): void {
    if (this.json) this.record('reload', { function: name, reason: why });
    else this.write(`${this.c.cyan('↻')} ${name} ${this.c.dim(`reloaded (${why})`)}\n`);
  }

  log(name: string, stream: 'stdout' | 'stderr', line: string): void {
    if (this.json) this.record('log', { function: name, stream, line });
    else this.write(`${this.c.dim(`[${name}]`)} ${printable(line)}\n`);
  }

  note(message: string): void {
    if (this.json) this.record('note', { message });
    else this.write(`${this.c.dim(message)}\n`);
  }

  warn(message: string): void {
    if (this.json) this.record('warning', { message });
    else this.write(`${this.c.yellow('!')} ${message}\n`);
  }
}

export function sampleFor(trigger: string): string {
  return trigger === 's3' ? 's3-put' : trigger === 'http' ? 'sqs' : trigger;
}
