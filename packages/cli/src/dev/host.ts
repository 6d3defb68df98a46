/**
 * `perimeter dev`'s function host: every function in its own Node process (guard preloaded, its own policy, a
 * minimal environment), the HTTP gateway in front, the event store behind, hot reload around.
 *
 * Trust: the host runs no function code. A function process is treated as hostile: its IPC messages are checked
 * for shape and size, its stderr is parsed line by line with a length cap, and whatever it does (hang, crash,
 * exit, flood) costs that function only; the others keep serving.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { type FSWatcher, mkdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliError, isCliError } from '../errors.js';
import { guardLocation } from '../permission.js';
import { checkRoute, FORMATS } from './config.js';
import { createDashboard, type Dashboard, hostAllowed } from './dashboard-server.js';
import { type DevProject, discover, type FunctionSpec } from './discover.js';
import {
  apiGatewayV2Event,
  type CompiledRoute,
  compileRoute,
  fetchRequestOf,
  type GatewayRequest,
  gatewayRequestOf,
  InvalidResponseError,
  listen,
  MAX_BODY_BYTES,
  matchRoute,
  netlifyV1Event,
  readBody,
  responseOf,
  send,
  sendJson,
  sortRoutes,
} from './gateway.js';
import {
  type Format,
  type HostMessage,
  type InvokePayload,
  MAX_RESULT_BYTES,
  type RunnerMessage,
  type RunnerSpec,
} from './protocol.js';
import { EventStore } from './store.js';
import { Terminal } from './terminal.js';
import type { EventRecord, EventStoreApi, FunctionRecord, InvocationRecord } from './types.js';

/**
 * Where events and invocations go besides the store and the terminal. The OpenTelemetry exporter is one
 * (`--otlp`, see `otlpSink`); tools embedding `startDev` can add their own.
 */
export interface DevSink {
  onEvent?(event: EventRecord): void;
  onInvocation?(invocation: InvocationRecord): void;
  onFunction?(record: FunctionRecord): void;
  /** Called on close, after the functions have stopped: deliver what is queued. */
  close?(): void | Promise<void>;
}

export interface DevOptions {
  /** A project folder or a single handler file. */
  dir: string;
  /** Default: the config's `port`, else 8788; 0 takes any free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default `<dir>/.perimeter/events.db`. */
  db?: string;
  /** Node binary the functions run on; default the one running the host. */
  node?: string;
  /** Hot reload; default true. */
  watch?: boolean;
  /** Terminal summary lines; null = silent. Default: nothing (the `dev` command passes stdout). */
  output?: NodeJS.WritableStream | null;
  /** One JSON object per line on `output` instead of coloured text. */
  json?: boolean;
  /** OTLP/HTTP export of events and invocation spans (through `@perimeter/otel`). */
  otlp?: { endpoint: string; headers?: Record<string, string> };
  /** Events the store keeps (oldest go first). */
  retention?: number;
  /** More sinks for events, invocations and function status changes. */
  sinks?: DevSink[];
  /** How long a function may take to load before it is marked failed. Default 10 s (Lambda's init limit). */
  startTimeoutMs?: number;
  /** The environment colours are decided from (NO_COLOR, FORCE_COLOR); default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Default true. False runs the functions without the guard preloaded: only for measuring what the guard costs
   * (bench/dev-gateway.mjs) or showing what it prevents; nothing is enforced then.
   */
  guard?: boolean;
}

export interface InvokeResult {
  statusCode?: number;
  result: unknown;
  error?: string;
  requestId: string;
}

export interface DevServer {
  /** The gateway's base URL, e.g. http://127.0.0.1:8788. */
  url: string;
  /** `url + '/_perimeter/'`. */
  dashboardUrl: string;
  store: EventStoreApi;
  functions(): FunctionRecord[];
  /** Calls a function with a raw event, as `perimeter invoke` does. Throws ERR_PERIMETER_DEV_UNKNOWN_FUNCTION. */
  invoke(name: string, event: unknown): Promise<InvokeResult>;
  close(): Promise<void>;
}

const RUNNER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'runner.js');

/**
 * What a function process gets from the host's environment: enough for Node and tools to behave (paths, locale,
 * time zone, temp dir), never the host's secrets (tokens, cloud credentials, NODE_OPTIONS). The config's `env`
 * comes on top (docs/dev.md, "Environment").
 */
export const PASSED_ENV = [
  'PATH',
  'HOME',
  'USER',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'TERM',
  'NODE_ENV',
  'PERIMETER_CODE_CACHE',
] as const;

/** The longest stderr/stdout line kept; longer ones are cut (a flood must not grow the host's memory). */
const MAX_LINE = 64 * 1024;
/** The IPC messages a runner legitimately sends are a result (≤ 6 MB of JSON) plus a little framing. */
const MAX_MESSAGE = MAX_RESULT_BYTES + 64 * 1024;
const TAIL_LINES = 40;

function functionEnv(spec: FunctionSpec, policyFile: string, hostEnv: NodeJS.ProcessEnv): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of PASSED_ENV) {
    const value = hostEnv[name];
    if (value !== undefined) env[name] = value;
  }
  env.NODE_ENV ??= 'development';
  Object.assign(env, {
    AWS_LAMBDA_FUNCTION_NAME: spec.name,
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '1024',
    ...(spec.netlify ? { NETLIFY_DEV: 'true' } : {}),
  });
  Object.assign(env, spec.env);
  // Last, so the config cannot point a function at another function's policy by accident.
  env.PERIMETER_POLICY = policyFile;
  env.PERIMETER_FUNCTION = spec.name;
  return env;
}

/** Splits a stream into lines, cutting any line longer than MAX_LINE (the rest of it is dropped). */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string, cut: boolean) => void): void {
  let buffer = '';
  let skipping = false;
  stream.setEncoding?.('utf8');
  stream.on('data', (chunk: string) => {
    let start = 0;
    for (let at = chunk.indexOf('\n'); at !== -1; at = chunk.indexOf('\n', start)) {
      const piece = chunk.slice(start, at);
      start = at + 1;
      if (skipping) {
        skipping = false;
        buffer = '';
        continue;
      }
      const line = buffer + piece;
      buffer = '';
      onLine(line.endsWith('\r') ? line.slice(0, -1) : line, false);
    }
    if (skipping) return;
    buffer += chunk.slice(start);
    if (buffer.length > MAX_LINE) {
      onLine(buffer.slice(0, MAX_LINE), true);
      buffer = '';
      skipping = true;
    }
  });
  stream.on('end', () => {
    if (buffer && !skipping) onLine(buffer, false);
    buffer = '';
  });
}

interface Pending {
  resolve(outcome: Outcome): void;
  timer: NodeJS.Timeout;
}

type Outcome =
  | { kind: 'ok'; value: unknown }
  | { kind: 'error'; error: string; errorType: string }
  | { kind: 'timeout'; error: string }
  | { kind: 'crashed'; error: string }
  | { kind: 'failed'; error: string };

interface HostContext {
  project: DevProject;
  node: string;
  register: string;
  guard: boolean;
  hostEnv: NodeJS.ProcessEnv;
  startTimeoutMs: number;
  terminal: Terminal;
  appendEvent(event: EventRecord): void;
  statusChanged(record: FunctionRecord, previous: FunctionRecord['status'] | undefined): void;
  routesChanged(): void;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max = 8192): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function readPolicy(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // The function's own start reports what is wrong with it (exit 78 and the policy error).
    return null;
  }
}

/** What belongs to one process of a function (a function has a new one after each restart). */
interface ChildState {
  child: ChildProcess;
  /** What its runner's `ready` and `load-error` must carry (see runner.ts). */
  token: string;
  /** The last lines of its stderr that were not events: why it failed, when it fails. */
  tail: string[];
  policyError: string | null;
  /** Why the host stopped it (a reload, a timeout, close): its exit is then not a failure. */
  stopReason: string | null;
  exited: Promise<void>;
}

/** One function and its process. */
class FunctionProcess {
  record: FunctionRecord;
  format: Format | undefined;
  /** The process requests go to; null while none runs (or the last one is being stopped). */
  private current: ChildState | null = null;
  /** The most recently started process: only it may change the record's status. */
  private latest: ChildState | null = null;
  private starting: Promise<void> | null = null;
  private readonly pending = new Map<string, Pending & { state: ChildState }>();
  private extraRoutes: string[] = [];

  constructor(
    public spec: FunctionSpec,
    private readonly ctx: HostContext,
  ) {
    this.format = spec.format;
    this.record = this.describe('stopped');
  }

  get name(): string {
    return this.spec.name;
  }

  routes(): string[] {
    if (this.spec.trigger !== 'http') return [];
    return [...this.spec.routes, ...this.extraRoutes];
  }

  private policyFile(): string {
    if (this.spec.policyFile) return this.spec.policyFile;
    // No policy: learn mode. Written where the function can read it and the user can find it.
    const file = path.join(this.ctx.project.dir, '.perimeter', 'policies', `${this.spec.name}.json`);
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, `${JSON.stringify({ mode: 'alert' }, null, 2)}\n`);
    return file;
  }

  private describe(status: FunctionRecord['status'], error?: string, pid?: number): FunctionRecord {
    const policyFile = this.spec.policyFile;
    return {
      name: this.spec.name,
      handler: this.spec.handler,
      format: this.format ?? (this.spec.netlify ? 'netlify-v1' : 'lambda'),
      trigger: this.spec.trigger,
      routes: this.routes(),
      policyFile,
      policy: policyFile ? readPolicy(policyFile) : { mode: 'alert' },
      status,
      ...(error !== undefined ? { error } : {}),
      ...(pid !== undefined ? { pid } : {}),
      updatedAt: new Date().toISOString(),
    };
  }

  private setStatus(status: FunctionRecord['status'], error?: string, pid?: number): void {
    const previous = this.record.status;
    this.record = this.describe(status, error, pid);
    this.ctx.statusChanged(this.record, previous);
  }

  /** Starts the process unless it runs or is starting; resolves when it is ready, rejects with why it is not. */
  ensure(): Promise<void> {
    if (this.current && this.record.status === 'ready') return Promise.resolve();
    if (this.starting) return this.starting;
    this.starting = this.start().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  private start(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let policyFile: string;
      try {
        policyFile = this.policyFile();
      } catch (error) {
        this.setStatus('failed', `cannot write the learn-mode policy: ${(error as Error).message}`);
        reject(new Error(this.record.error));
        return;
      }
      const spec: RunnerSpec = {
        name: this.spec.name,
        handler: this.spec.handler,
        netlify: this.spec.netlify,
        ...(this.spec.export !== undefined ? { export: this.spec.export } : {}),
        ...(this.spec.format !== undefined ? { format: this.spec.format } : {}),
      };
      const token = randomUUID();
      let child: ChildProcess;
      try {
        const preload = this.ctx.guard ? ['--import', this.ctx.register] : [];
        child = spawn(this.ctx.node, [...preload, RUNNER], {
          cwd: path.dirname(this.spec.handler),
          env: functionEnv(this.spec, policyFile, this.ctx.hostEnv),
          stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
          serialization: 'json',
          // Its own process group: Ctrl-C in the terminal reaches the host, which stops the functions in order
          // (a runner exits by itself when the host goes away: its IPC channel closes).
          detached: true,
        });
      } catch (error) {
        this.setStatus('failed', `cannot start ${this.ctx.node}: ${(error as Error).message}`);
        reject(new Error(this.record.error));
        return;
      }
      try {
        child.send({ type: 'init', spec, token } satisfies HostMessage);
      } catch {
        // The process died at once; its exit says why.
      }
      let resolveExited!: () => void;
      const state: ChildState = {
        child,
        token,
        tail: [],
        policyError: null,
        stopReason: null,
        exited: new Promise((r) => {
          resolveExited = r;
        }),
      };
      this.current = state;
      this.latest = state;
      this.extraRoutes = [];
      this.setStatus('starting', undefined, child.pid);
      let settled = false;
      const settle = (error?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(new Error(error));
      };
      const timer = setTimeout(() => {
        const error = `did not load within ${this.ctx.startTimeoutMs} ms`;
        void this.stopChild(state, error);
        settle(error);
      }, this.ctx.startTimeoutMs);

      lines(child.stdout!, (line) => this.ctx.terminal.log(this.name, 'stdout', line));
      lines(child.stderr!, (line, cut) => this.stderrLine(state, line, cut));

      child.on('message', (raw: unknown) => {
        const message = this.checkMessage(state, raw);
        if (message === null) return;
        if (message.type === 'ready') {
          if (this.latest !== state || this.record.status !== 'starting') return;
          this.format = message.format;
          this.extraRoutes = message.paths
            ? message.paths.flatMap((p) => (message.methods?.length ? message.methods.map((m) => `${m} ${p}`) : [p]))
            : [];
          this.setStatus('ready', undefined, child.pid);
          this.ctx.routesChanged();
          settle();
        } else if (message.type === 'load-error') {
          if (this.latest !== state || this.record.status !== 'starting') return;
          this.setStatus(
            'failed',
            `ERR_PERIMETER_DEV_HANDLER: the handler did not load: ${message.message}`,
            child.pid,
          );
          settle(this.record.error);
        } else if (message.type === 'result') {
          const pending = this.pending.get(message.id);
          if (!pending || pending.state !== state) return;
          this.pending.delete(message.id);
          clearTimeout(pending.timer);
          pending.resolve(
            message.ok
              ? { kind: 'ok', value: message.value }
              : {
                  kind: 'error',
                  error: message.error.stack ?? `${message.error.type}: ${message.error.message}`,
                  errorType: message.error.type,
                },
          );
        }
      });

      let exitCode: number | null = null;
      let exitSignal: NodeJS.Signals | null = null;
      let finished = false;
      const finish = () => {
        if (finished) return;
        finished = true;
        const reason = this.exitReason(state, exitCode, exitSignal);
        const stopped = state.stopReason;
        if (this.current === state) this.current = null;
        for (const [id, pending] of this.pending) {
          if (pending.state !== state) continue;
          clearTimeout(pending.timer);
          this.pending.delete(id);
          pending.resolve({ kind: 'crashed', error: stopped ?? reason });
        }
        if (this.latest === state) {
          if (this.record.status === 'starting') this.setStatus('failed', stopped ?? reason);
          else if (this.record.status === 'ready') {
            if (stopped !== null) this.setStatus('stopped', stopped);
            else this.setStatus('failed', reason);
          }
        }
        settle(stopped ?? reason);
        resolveExited();
      };
      child.on('error', (error) => {
        // Only a spawn failure (no pid) ends here without an exit; a failed kill or send is not fatal.
        if (child.pid !== undefined) return;
        state.tail.push(`cannot start ${this.ctx.node}: ${error.message}`);
        exitCode = 127;
        finish();
      });
      child.on('exit', (code, signal) => {
        exitCode = code;
        exitSignal = signal;
        // stdio normally closes right after; a grandchild holding the pipes must not keep this open.
        setTimeout(finish, 500).unref();
      });
      child.on('close', finish);
    });
  }

  private exitReason(state: ChildState, code: number | null, signal: NodeJS.Signals | null): string {
    if (code === 78) {
      const message = state.tail.filter((line) => line.startsWith('perimeter: ')).join('\n');
      return `policy error: ${message || state.policyError || `the policy ${this.spec.policyFile} is invalid`}`;
    }
    if (code === 127 && state.child.pid === undefined) return state.tail.join('\n');
    const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
    const tail = state.tail.slice(-12).join('\n');
    return `the process ${how}${tail ? `\n${tail}` : ''}`;
  }

  /** Shape and size checks on a message from the function process (which a dependency can forge). */
  private checkMessage(state: ChildState, raw: unknown): RunnerMessage | null {
    if (!isPlainObject(raw) || typeof raw.type !== 'string') return null;
    let size: number;
    try {
      size = JSON.stringify(raw).length;
    } catch {
      return null;
    }
    if ((raw.type === 'ready' || raw.type === 'load-error') && raw.token !== state.token) return null;
    if (raw.type === 'ready') {
      if (size > 64 * 1024 || !(FORMATS as readonly unknown[]).includes(raw.format) || typeof raw.export !== 'string') {
        return null;
      }
      const strings = (value: unknown, max: number) =>
        Array.isArray(value) &&
        value.length <= max &&
        value.every((item) => typeof item === 'string' && item.length <= 500);
      const paths = strings(raw.paths, 32)
        ? (raw.paths as string[]).filter((p) => p.startsWith('/') && checkRoute(p) === null)
        : undefined;
      const methods = strings(raw.methods, 8)
        ? (raw.methods as string[]).filter((m) => checkRoute(`${m} /`) === null)
        : undefined;
      return {
        type: 'ready',
        token: state.token,
        format: raw.format as Format,
        export: clip(raw.export, 100),
        ...(paths?.length ? { paths } : {}),
        ...(methods?.length ? { methods } : {}),
      };
    }
    if (raw.type === 'load-error') {
      const message = clip(typeof raw.message === 'string' ? raw.message : 'unknown error');
      return { type: 'load-error', token: state.token, message };
    }
    if (raw.type === 'result' && typeof raw.id === 'string' && this.pending.get(raw.id)?.state === state) {
      if (size > MAX_MESSAGE) {
        const message = `the response is larger than ${MAX_RESULT_BYTES} bytes`;
        return { type: 'result', id: raw.id, ok: false, error: { type: 'RangeError', message } };
      }
      if (raw.ok === true) {
        if (this.format === 'netlify-v2' && !isSerialisedResponse(raw.value)) {
          const message = 'malformed response from the function process';
          return { type: 'result', id: raw.id, ok: false, error: { type: 'TypeError', message } };
        }
        return { type: 'result', id: raw.id, ok: true, value: raw.value };
      }
      const error = isPlainObject(raw.error) ? raw.error : {};
      return {
        type: 'result',
        id: raw.id,
        ok: false,
        error: {
          type: clip(typeof error.type === 'string' ? error.type : 'Error', 200),
          message: clip(typeof error.message === 'string' ? error.message : 'unknown error'),
          ...(typeof error.stack === 'string' ? { stack: clip(error.stack) } : {}),
        },
      };
    }
    return null;
  }

  /**
   * One line of the function's stderr. Events are whatever line starts `{"perimeter":1`: the function's own
   * stderr is the channel, as on Lambda, so any code in the process (a hostile dependency too) can write one.
   * They are parsed defensively, pinned to this function, and never trusted for anything but display.
   */
  private stderrLine(state: ChildState, line: string, cut: boolean): void {
    if (line.startsWith('{"perimeter":1')) {
      if (cut) return;
      let event: unknown;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      if (!isPlainObject(event)) return;
      // A line claiming another function's name still came from this process.
      event.function = this.name;
      if (event.invocation === undefined) event.invocation = null;
      if (event.type === 'policy-error' && typeof event.detail === 'string') {
        state.policyError = clip(event.detail, 4000);
      }
      this.ctx.appendEvent(event as EventRecord);
      return;
    }
    state.tail.push(clip(line, 2000));
    if (state.tail.length > TAIL_LINES) state.tail.shift();
    this.ctx.terminal.log(this.name, 'stderr', line);
  }

  /** Stops one process: asks the runner to flush and exit, kills it a second later if it has not. */
  private stopChild(state: ChildState, reason: string): Promise<void> {
    if (state.stopReason === null) state.stopReason = reason;
    // Requests from now on go to a fresh process.
    if (this.current === state) this.current = null;
    const { child } = state;
    try {
      if (child.connected) child.send({ type: 'stop' } satisfies HostMessage);
    } catch {
      // The channel is gone; the signal below does it.
    }
    const kill = setTimeout(() => child.kill('SIGKILL'), 1000);
    kill.unref();
    return state.exited.finally(() => clearTimeout(kill));
  }

  async stop(reason: string): Promise<void> {
    const state = this.latest;
    if (state) await this.stopChild(state, reason);
    if (this.record.status !== 'stopped') this.setStatus('stopped', reason);
  }

  async restart(reason: string): Promise<void> {
    if (this.latest) await this.stopChild(this.latest, reason);
    try {
      await this.ensure();
    } catch {
      // Reported through the status; the next request tries again.
    }
  }

  /** Sends one invocation, starting the process first if needed. */
  async invoke(message: InvokePayload, id: string): Promise<Outcome> {
    try {
      await this.ensure();
    } catch (error) {
      return { kind: 'failed', error: (error as Error).message };
    }
    const state = this.current;
    if (!state?.child.connected) return { kind: 'crashed', error: this.record.error ?? 'the function process is gone' };
    const timeoutMs = this.spec.timeoutMs;
    return new Promise<Outcome>((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        const error = `timed out after ${timeoutMs / 1000} s`;
        resolve({ kind: 'timeout', error });
        // Lambda discards the sandbox of a timed-out invocation: the next request gets a fresh process.
        void this.stopChild(state, `restarted: invocation ${id} ${error}`);
      }, timeoutMs);
      this.pending.set(id, { resolve, timer, state });
      const unreachable = (error: Error) => {
        if (!this.pending.delete(id)) return;
        clearTimeout(timer);
        resolve({ kind: 'crashed', error: `could not reach the function process: ${error.message}` });
      };
      try {
        state.child.send({ ...message, id, deadline: Date.now() + timeoutMs } as HostMessage, (error) => {
          if (error) unreachable(error);
        });
      } catch (error) {
        unreachable(error as Error);
      }
    });
  }

  /** Files whose change means this function must restart. */
  owns(file: string): boolean {
    const folder = path.dirname(this.spec.handler);
    return file === this.spec.handler || file === this.spec.policyFile || file.startsWith(`${folder}${path.sep}`);
  }
}

function isSerialisedResponse(value: unknown): boolean {
  if (!isPlainObject(value)) return false;
  const { status, body, headers } = value;
  return (
    typeof status === 'number' &&
    Number.isInteger(status) &&
    status >= 100 &&
    status <= 599 &&
    typeof body === 'string' &&
    Array.isArray(headers) &&
    headers.every(
      (pair) => Array.isArray(pair) && pair.length === 2 && typeof pair[0] === 'string' && typeof pair[1] === 'string',
    )
  );
}

/** The `@perimeter/otel` exporter as a sink, when that package is installed. */
async function otlpSink(options: NonNullable<DevOptions['otlp']>): Promise<DevSink | null> {
  // A computed specifier: @perimeter/otel is optional, and the CLI must build and run without it.
  const specifier = '@perimeter/otel';
  let otel: {
    createOtlpExporter(options: { endpoint: string; headers?: Record<string, string> }): {
      exportEvent(event: unknown): void;
      exportSpan(invocation: unknown): void;
      shutdown(): Promise<void>;
    };
  };
  try {
    otel = await import(specifier);
  } catch {
    return null;
  }
  // A bad endpoint throws here, before anything starts: it is the user's input.
  const exporter = otel.createOtlpExporter({
    endpoint: options.endpoint,
    ...(options.headers ? { headers: options.headers } : {}),
  });
  return {
    onEvent: (event) => exporter.exportEvent(event),
    onInvocation: (invocation) => exporter.exportSpan(invocation),
    close: () => exporter.shutdown(),
  };
}

function loadDashboard(store: EventStoreApi, functions: () => FunctionRecord[], warnings: string[]): Dashboard | null {
  try {
    return createDashboard({ store, functions });
  } catch (error) {
    // Not built (ERR_PERIMETER_DASHBOARD_ASSETS): the functions still run; /_perimeter/ says why.
    warnings.push(`the dashboard is not available: ${(error as Error).message.split('\n')[0]}`);
    return null;
  }
}

function routeList(processes: Iterable<FunctionProcess>): Array<{ route: string; function: string }> {
  const list: Array<{ route: string; function: string }> = [];
  for (const fp of processes) for (const route of fp.routes()) list.push({ route, function: fp.name });
  return list;
}

export async function startDev(options: DevOptions): Promise<DevServer> {
  const hostEnv = options.env ?? process.env;
  const terminal = new Terminal(options.output ?? null, options.json === true, hostEnv);
  let project = await discover(options.dir);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? project.config?.port ?? 8788;
  const dbFile = path.resolve(options.db ?? path.join(project.dir, '.perimeter', 'events.db'));
  const sinks: DevSink[] = [...(options.sinks ?? [])];
  const warnings: string[] = [];
  const processes = new Map<string, FunctionProcess>();
  let routes: CompiledRoute[] = [];
  let closing = false;

  const callSinks = (method: 'onEvent' | 'onInvocation' | 'onFunction', value: any) => {
    for (const sink of sinks) {
      try {
        sink[method]?.(value);
      } catch {
        // A sink is an observer: its failure must not reach the gateway or the functions.
      }
    }
  };

  const ctx: HostContext = {
    get project() {
      return project;
    },
    node: options.node ?? process.execPath,
    register: guardLocation().register,
    guard: options.guard !== false,
    hostEnv,
    startTimeoutMs: options.startTimeoutMs ?? 10_000,
    terminal,
    appendEvent(event) {
      // The store refuses what is not an event (or too large): nothing to show then either.
      if (store.append(event) === false) return;
      terminal.event(event);
      callSinks('onEvent', event);
    },
    statusChanged(record) {
      store.upsertFunction(record);
      // Before the banner, the banner says it; at close, nobody needs to read it.
      if (bannerShown && !closing) terminal.status(record);
      callSinks('onFunction', record);
    },
    routesChanged() {
      const compiled: CompiledRoute[] = [];
      for (const fp of processes.values()) for (const route of fp.routes()) compiled.push(compileRoute(route, fp.name));
      routes = sortRoutes(compiled);
    },
  };
  let bannerShown = false;

  if (options.otlp) {
    const sink = await otlpSink(options.otlp);
    if (sink) sinks.push(sink);
    else warnings.push('--otlp: @perimeter/otel is not installed (npm install @perimeter/otel); nothing is exported');
  }

  for (const spec of project.functions) processes.set(spec.name, new FunctionProcess(spec, ctx));
  ctx.routesChanged();

  const recordInvocation = (invocation: InvocationRecord) => {
    store.recordInvocation(invocation);
    terminal.request(invocation);
    callSinks('onInvocation', invocation);
  };

  let dashboard: Dashboard | null = null;
  const functionRecords = () => [...processes.values()].map((fp) => fp.record);

  const invokeRaw = async (
    fp: FunctionProcess,
    event: unknown,
    requestId: string,
  ): Promise<{ outcome: Outcome; format: Format | undefined }> => {
    // A Netlify v2 function takes a Request: the event becomes a JSON POST, as a webhook would deliver it.
    try {
      await fp.ensure();
    } catch (error) {
      return { outcome: { kind: 'failed', error: (error as Error).message }, format: fp.format };
    }
    if (fp.format === 'netlify-v2') {
      const body = Buffer.from(JSON.stringify(event) ?? 'null');
      const outcome = await fp.invoke(
        {
          type: 'invoke',
          request: {
            method: 'POST',
            url: `${server.url}/.netlify/functions/${fp.name}`,
            headers: [
              ['content-type', 'application/json'],
              ['x-nf-request-id', requestId],
            ],
            body: body.toString('base64'),
            ip: '127.0.0.1',
          },
        },
        requestId,
      );
      return { outcome, format: fp.format };
    }
    return { outcome: await fp.invoke({ type: 'invoke', event }, requestId), format: fp.format };
  };

  const errorStatus = (outcome: Outcome) => (outcome.kind === 'timeout' ? 504 : 502);
  const outcomeName = (outcome: Outcome): InvocationRecord['outcome'] =>
    outcome.kind === 'ok'
      ? 'ok'
      : outcome.kind === 'timeout'
        ? 'timeout'
        : outcome.kind === 'crashed'
          ? 'crashed'
          : 'error';

  const invoke = async (name: string, event: unknown, requestId = randomUUID()): Promise<InvokeResult> => {
    const fp = processes.get(name);
    if (!fp) {
      throw cliError('ERR_PERIMETER_DEV_UNKNOWN_FUNCTION', `no function is called ${JSON.stringify(name)}`, {
        hint: `functions: ${[...processes.keys()].join(', ')}`,
      });
    }
    const startMs = Date.now();
    const started = performance.now();
    const { outcome, format } = await invokeRaw(fp, event, requestId);
    const durationMs = performance.now() - started;
    let result: InvokeResult;
    if (outcome.kind === 'ok') {
      if (format === 'netlify-v2') {
        const response = responseOf('netlify-v2', outcome.value);
        const text = response.body.toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: shown as text.
        }
        result = {
          statusCode: response.status,
          result: { statusCode: response.status, headers: Object.fromEntries(response.headers), body },
          requestId,
        };
      } else {
        const value = outcome.value as Record<string, unknown> | null;
        const statusCode =
          typeof value === 'object' && value !== null && typeof value.statusCode === 'number'
            ? value.statusCode
            : undefined;
        result = { ...(statusCode !== undefined ? { statusCode } : {}), result: outcome.value, requestId };
      }
    } else {
      result = { result: null, error: outcome.error, requestId };
    }
    recordInvocation({
      id: requestId,
      function: name,
      trigger: fp.spec.trigger,
      request: `invoke ${fp.spec.trigger}`,
      startMs,
      durationMs,
      outcome: outcomeName(outcome),
      ...(result.statusCode !== undefined ? { statusCode: result.statusCode } : {}),
      ...(outcome.kind !== 'ok' ? { error: clip(outcome.error, 2000) } : {}),
    });
    return result;
  };

  const notFound = (res: http.ServerResponse, request: GatewayRequest) => {
    const list = routeList(processes.values());
    const accept = request.headerPairs.find(([key]) => key === 'accept')?.[1] ?? '';
    if (accept.includes('application/json') && !accept.includes('text/html')) {
      sendJson(res, 404, { error: `no route for ${request.method} ${request.rawPath}`, routes: list });
      return;
    }
    const width = Math.max(0, ...list.map((entry) => entry.route.length));
    const text = [
      `404: no function serves ${request.method} ${request.rawPath}`,
      '',
      'Routes:',
      ...list.map((entry) => `  ${entry.route.padEnd(width)}  → ${entry.function}`),
      '',
      `Dashboard: ${server.url}/_perimeter/`,
      '',
    ].join('\n');
    send(res, 404, text, [['content-type', 'text/plain; charset=utf-8']]);
  };

  const handleInvokeEndpoint = async (req: http.IncomingMessage, res: http.ServerResponse, name: string) => {
    if (req.method !== 'POST') {
      req.resume();
      send(res, 405, 'POST an event (JSON) to /_perimeter/invoke/<function>\n', [['allow', 'POST']]);
      return;
    }
    // Like the dashboard: only loopback names (DNS rebinding), and only JSON, which a page on another origin
    // cannot send without a CORS preflight this server never answers.
    const type = req.headers['content-type'] ?? '';
    if (!hostAllowed(req.headers.host, new Set()) || !/^application\/json\b/i.test(type)) {
      req.resume();
      sendJson(res, 403, { error: 'the invoke API takes Content-Type: application/json on a loopback host name' });
      return;
    }
    const fp = processes.get(name);
    if (!fp) {
      req.resume();
      sendJson(res, 404, {
        error: `no function is called ${JSON.stringify(name)}`,
        code: 'ERR_PERIMETER_DEV_UNKNOWN_FUNCTION',
        functions: [...processes.keys()],
      });
      return;
    }
    const { body, tooLarge } = await readBody(req);
    if (tooLarge) {
      sendJson(res, 413, { error: `the event is larger than ${MAX_BODY_BYTES} bytes (Lambda's limit)` });
      return;
    }
    let event: unknown;
    try {
      event = body.length ? JSON.parse(body.toString('utf8')) : {};
    } catch (error) {
      sendJson(res, 400, {
        error: `the event is not JSON: ${(error as Error).message}`,
        code: 'ERR_PERIMETER_DEV_EVENT',
      });
      return;
    }
    const result = await invoke(name, event);
    sendJson(res, 200, { function: name, ...result });
  };

  const handleHttp = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const rawUrl = req.url ?? '/';
    const rawPath = rawUrl.split('?')[0]!;
    if (rawPath.startsWith('/_perimeter/invoke/')) {
      let name: string;
      try {
        name = decodeURIComponent(rawPath.slice('/_perimeter/invoke/'.length));
      } catch {
        req.resume();
        sendJson(res, 400, { error: 'the function name is not valid percent-encoding' });
        return;
      }
      await handleInvokeEndpoint(req, res, name);
      return;
    }
    if (rawPath === '/_perimeter' || rawPath.startsWith('/_perimeter/')) {
      if (dashboard?.handle(req, res)) return;
      req.resume();
      if (rawPath === '/_perimeter/api/functions') sendJson(res, 200, functionRecords());
      else
        send(res, 503, 'The dashboard is not available: its assets are not built (npm run build).\n', [
          ['content-type', 'text/plain; charset=utf-8'],
        ]);
      return;
    }
    const method = (req.method ?? 'GET').toUpperCase();
    const match = matchRoute(routes, method, rawPath);
    if (!match) {
      req.resume();
      terminal.unrouted(method, rawPath);
      notFound(res, gatewayRequestOf(req, Buffer.alloc(0)));
      return;
    }
    const fp = processes.get(match.route.function)!;
    const { body, tooLarge } = await readBody(req);
    const request = gatewayRequestOf(req, body);
    const label = `${request.method} ${request.rawPath}`;
    const startMs = request.time.getTime();
    const started = performance.now();
    const finish = (status: number, outcome: InvocationRecord['outcome'], error?: string) =>
      recordInvocation({
        id: request.requestId,
        function: fp.name,
        trigger: 'http',
        request: label,
        startMs,
        durationMs: performance.now() - started,
        outcome,
        statusCode: status,
        ...(error !== undefined ? { error: clip(error, 2000) } : {}),
      });
    if (tooLarge) {
      sendJson(res, 413, { message: 'Request Entity Too Large', limit: MAX_BODY_BYTES });
      finish(413, 'error', 'request body too large');
      return;
    }
    try {
      await fp.ensure();
    } catch (error) {
      const message = (error as Error).message;
      sendJson(res, 502, {
        message: 'Bad Gateway',
        error: `function ${fp.name} failed to start`,
        detail: message,
        requestId: request.requestId,
      });
      finish(502, 'error', `failed to start: ${message}`);
      return;
    }
    const format = fp.format ?? 'lambda';
    const outcome =
      format === 'netlify-v2'
        ? await fp.invoke({ type: 'invoke', request: fetchRequestOf(request), params: match.params }, request.requestId)
        : await fp.invoke(
            {
              type: 'invoke',
              event: format === 'netlify-v1' ? netlifyV1Event(request) : apiGatewayV2Event(request, match),
            },
            request.requestId,
          );
    if (outcome.kind !== 'ok') {
      const status = outcome.kind === 'failed' ? 502 : errorStatus(outcome);
      const message =
        outcome.kind === 'timeout'
          ? 'Gateway Timeout'
          : outcome.kind === 'crashed'
            ? 'Bad Gateway: the function process exited'
            : 'Bad Gateway';
      sendJson(res, status, {
        message,
        ...(outcome.kind === 'error' ? { errorType: outcome.errorType } : {}),
        error: outcome.error.split('\n')[0],
        requestId: request.requestId,
      });
      finish(status, outcomeName(outcome), outcome.error);
      return;
    }
    let response: ReturnType<typeof responseOf>;
    try {
      response = responseOf(format, outcome.value);
    } catch (error) {
      if (!(error instanceof InvalidResponseError)) throw error;
      sendJson(res, 502, {
        message: 'Bad Gateway: invalid response from the function',
        error: error.message,
        requestId: request.requestId,
      });
      finish(502, 'error', error.message);
      return;
    }
    send(res, response.status, response.body, response.headers);
    finish(response.status, 'ok');
  };

  const httpServer = http.createServer((req, res) => {
    handleHttp(req, res).catch((error: unknown) => {
      if (!res.headersSent)
        sendJson(res, 500, {
          message: 'perimeter dev: internal error',
          error: (error as Error)?.message ?? String(error),
        });
      else res.destroy();
    });
  });
  httpServer.keepAliveTimeout = 5000;

  // The port first: when it is taken (another dev running), the store is most likely that dev's too.
  const server = { url: await listen(httpServer, host, port) };
  let store: EventStore;
  try {
    store = EventStore.open(dbFile, options.retention !== undefined ? { retention: options.retention } : {});
  } catch (error) {
    httpServer.close();
    throw error;
  }

  dashboard = loadDashboard(store, functionRecords, warnings);

  for (const fp of processes.values()) {
    if (!fp.spec.policyFile)
      warnings.push(
        `${fp.name}: no perimeter.json found, running in learn mode (a generated { "mode": "alert" } policy)`,
      );
  }
  await Promise.all([...processes.values()].map((fp) => fp.ensure().catch(() => {})));

  // Hot reload: a change in a function's folder or to its policy restarts that function only; a change to the
  // config or the set of files in a layout folder re-reads the project.
  const watchers = new Map<string, FSWatcher>();
  const changed = new Set<string>();
  let debounce: NodeJS.Timeout | null = null;
  let reloading: Promise<void> = Promise.resolve();

  const applyChanges = async (files: string[]) => {
    if (closing) return;
    const projectFiles = files.some(
      (file) =>
        file === project.configFile ||
        path.basename(file).startsWith('perimeter.config.') ||
        (project.layout === 'netlify' && path.dirname(file) === path.join(project.dir, 'netlify', 'functions')),
    );
    const restart = new Map<string, string>();
    if (projectFiles) {
      let next: DevProject;
      try {
        next = await discover(options.dir);
      } catch (error) {
        terminal.warn(`not reloaded: ${isCliError(error) ? `${error.code}: ` : ''}${(error as Error).message}`);
        return;
      }
      const before = new Map([...processes.values()].map((fp) => [fp.name, JSON.stringify(fp.spec)]));
      project = next;
      for (const [name, fp] of processes) {
        if (!next.functions.some((spec) => spec.name === name)) {
          processes.delete(name);
          await fp.stop('removed from the project');
          terminal.reload(name, 'removed');
        }
      }
      for (const spec of next.functions) {
        const existing = processes.get(spec.name);
        if (!existing) {
          processes.set(spec.name, new FunctionProcess(spec, ctx));
          restart.set(spec.name, 'added');
        } else if (before.get(spec.name) !== JSON.stringify(spec)) {
          existing.spec = spec;
          restart.set(spec.name, 'config changed');
        }
      }
      ctx.routesChanged();
      syncWatchers();
    }
    for (const fp of processes.values()) {
      const file = files.find((f) => fp.owns(f));
      if (file && !restart.has(fp.name)) restart.set(fp.name, path.relative(project.dir, file) || path.basename(file));
    }
    await Promise.all(
      [...restart].map(async ([name, why]) => {
        const fp = processes.get(name)!;
        await fp.restart(why);
        terminal.reload(name, why);
      }),
    );
    ctx.routesChanged();
  };

  const onChange = (dir: string, filename: string | Buffer | null) => {
    if (closing || filename === null) return;
    const file = path.join(dir, filename.toString());
    const relative = file.split(path.sep);
    if (relative.includes('.perimeter') || relative.includes('.git') || /~$|\.swp$|\.tmp$/.test(file)) return;
    changed.add(file);
    if (debounce) clearTimeout(debounce);
    debounce = setTimeout(() => {
      debounce = null;
      const files = [...changed];
      changed.clear();
      reloading = reloading.then(() => applyChanges(files)).catch(() => {});
    }, 150);
  };

  const watchPaths = (): Array<{ dir: string; recursive: boolean }> => {
    const list = new Map<string, boolean>();
    list.set(project.dir, false);
    if (project.configFile)
      list.set(path.dirname(project.configFile), list.get(path.dirname(project.configFile)) ?? false);
    if (project.layout === 'netlify') list.set(path.join(project.dir, 'netlify', 'functions'), true);
    for (const spec of project.functions) {
      const folder = path.dirname(spec.handler);
      // The project root itself is watched flat: recursing into node_modules would cost a watch per folder.
      if (folder !== project.dir) list.set(folder, true);
      if (spec.policyFile) list.set(path.dirname(spec.policyFile), list.get(path.dirname(spec.policyFile)) ?? false);
    }
    return [...list].map(([dir, recursive]) => ({ dir, recursive }));
  };

  /** Watches what the project has now: folders of functions added by a config edit are watched from then on. */
  function syncWatchers(): void {
    if (options.watch === false || closing) return;
    const wanted = watchPaths();
    for (const [key, watcher] of watchers) {
      if (!wanted.some(({ dir, recursive }) => `${recursive ? 'r' : 'f'}:${dir}` === key)) {
        watcher.close();
        watchers.delete(key);
      }
    }
    for (const { dir, recursive } of wanted) {
      const key = `${recursive ? 'r' : 'f'}:${dir}`;
      if (watchers.has(key)) continue;
      try {
        const watcher = watch(dir, { recursive, persistent: false }, (_event, filename) => onChange(dir, filename));
        watcher.on('error', () => {});
        watchers.set(key, watcher);
      } catch (error) {
        const message = `cannot watch ${dir} (${(error as Error).message}): no hot reload there`;
        if (bannerShown) terminal.warn(message);
        else warnings.push(message);
      }
    }
  }
  syncWatchers();

  const url = server.url;
  const dashboardUrl = `${url}/_perimeter/`;
  terminal.banner({ url, dashboardUrl, db: store.file, functions: functionRecords(), warnings });
  terminal.shownInBanner(functionRecords());
  bannerShown = true;

  let closed: Promise<void> | null = null;
  return {
    url,
    dashboardUrl,
    store,
    functions: functionRecords,
    invoke: (name, event) => invoke(name, event),
    close() {
      closed ??= (async () => {
        closing = true;
        if (debounce) clearTimeout(debounce);
        for (const watcher of watchers.values()) watcher.close();
        await reloading;
        const serverClosed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
        httpServer.closeIdleConnections?.();
        await Promise.all([...processes.values()].map((fp) => fp.stop('perimeter dev stopped')));
        httpServer.closeAllConnections?.();
        await serverClosed;
        dashboard?.close();
        for (const sink of sinks) {
          try {
            await sink.close?.();
          } catch {
            // Best effort at exit.
          }
        }
        store.flush();
        store.close();
      })();
      return closed;
    },
  };
}
