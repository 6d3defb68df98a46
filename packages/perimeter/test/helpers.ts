/**
 * Shared test harness. Every end-to-end test runs the guard in a fresh Node process (the same binary the
 * suite runs on, see PERIMETER_TEST_NODE), against real loopback servers, and reads the JSON event lines the
 * guard writes to a file.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

export const PACKAGE_ROOT = resolve(__dirname, '../../');
export const REGISTER = join(PACKAGE_ROOT, 'dist/register.js');
/** What `--import perimeter/register` resolves to (the exports map's "import" condition): it requires REGISTER. */
export const REGISTER_IMPORT = join(PACKAGE_ROOT, 'dist/register.mjs');
export const FIXTURES = join(PACKAGE_ROOT, 'test/fixtures');
export const NODE = process.env.PERIMETER_TEST_NODE || process.execPath;
export const NODE_MAJOR = Number(process.versions.node.split('.')[0]);

export function tempDir(prefix = 'perimeter-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** Writes a tree of files ({ 'a/b.js': '…' }) under `root`. */
export function writeTree(root: string, files: Record<string, string>): void {
  for (const [name, content] of Object.entries(files)) {
    const path = join(root, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
}

export interface GuardedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The JSON events the guard wrote (from PERIMETER_EVENTS_FILE). */
  events: Array<Record<string, any>>;
  dir: string;
}

export interface RunOptions {
  /** The policy, written to perimeter.json in the run's folder (omit to write none). */
  policy?: unknown;
  /** The entry script, relative to the run's folder. */
  script: string;
  /** Files to create in the run's folder (fixtures, node_modules packages…). */
  files?: Record<string, string>;
  /** How the guard is loaded. `none` runs without it (the baseline). */
  preload?: 'import' | 'require' | 'node-options' | 'none';
  args?: string[];
  env?: Record<string, string>;
  /** Reuse a folder instead of a new temp one. */
  dir?: string;
  timeoutMs?: number;
}

export async function runGuarded(options: RunOptions): Promise<GuardedRun> {
  const dir = options.dir ?? tempDir();
  if (options.files) writeTree(dir, options.files);
  if (options.policy !== undefined) writeFileSync(join(dir, 'perimeter.json'), JSON.stringify(options.policy, null, 2));
  const eventsFile = join(dir, 'events.jsonl');
  const preload = options.preload ?? 'import';
  const nodeArgs: string[] = [];
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    PERIMETER_EVENTS_FILE: eventsFile,
    ...options.env,
  };
  if (preload === 'import') nodeArgs.push('--import', REGISTER_IMPORT);
  if (preload === 'require') nodeArgs.push('--require', REGISTER);
  if (preload === 'node-options') env.NODE_OPTIONS = `--import ${REGISTER_IMPORT}`;
  const child = spawn(NODE, [...nodeArgs, options.script, ...(options.args ?? [])], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
    child.on('close', (c, s) => done([c, s])),
  );
  clearTimeout(timer);
  return { code, signal, stdout, stderr, events: readEvents(eventsFile), dir };
}

export function readEvents(file: string): Array<Record<string, any>> {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line));
}

export interface RecordedRequest {
  method: string;
  url: string;
  body: string;
  headers: http.IncomingHttpHeaders;
}

/** A loopback HTTP server that records every request it sees. `handler` may answer specially (redirects…). */
export async function startRecordingServer(
  handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean | undefined,
  host = '127.0.0.1',
): Promise<{
  port: number;
  url: string;
  requests: RecordedRequest[];
  /** TCP connections accepted, so a test can tell "no request" from "not even a connection". */
  readonly connections: number;
  close(): Promise<void>;
}> {
  const requests: RecordedRequest[] = [];
  let connections = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body, headers: req.headers });
      if (handler?.(req, res, body)) return;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ok: true, url: req.url }));
    });
  });
  server.keepAliveTimeout = 100;
  server.on('connection', () => connections++);
  await new Promise<void>((done) => server.listen(0, host, done));
  const { port } = server.address() as AddressInfo;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    port,
    url: `http://${shown}:${port}`,
    requests,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections?.();
        server.close(() => done());
      }),
  };
}

/** The `RESULT <name> <outcome>` lines a fixture printed (outcome `ok` or an error code), by name. */
export function fixtureResults(run: GuardedRun): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of run.stdout.split('\n')) {
    const m = /^RESULT (\S+) (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
