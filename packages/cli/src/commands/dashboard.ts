/**
 * `perimeter dashboard --db <file>`: the dashboard of `perimeter dev`, over a store on its own: a past run's
 * events.db, or the live one of a `perimeter dev` running elsewhere (the store is opened read-only, and SQLite's
 * WAL lets it read while dev writes, so the page stays live).
 */
import { createServer, type Server } from 'node:http';
import { InvalidArgumentError } from 'commander';
import { createDashboard, DASHBOARD_PREFIX } from '../dev/dashboard-server.js';
import { EventStore } from '../dev/store.js';
import { cliError } from '../errors.js';

export interface DashboardCommandOptions {
  db?: string;
  /** Default 8789; 0 = any free port. */
  port?: number;
  host?: string;
  /** Poll interval of the live stream, ms (tests use a short one). */
  pollMs?: number;
  /** Resolves when the command should stop; default: SIGINT or SIGTERM. */
  until?: Promise<unknown>;
  /** Where the URL line goes; default stdout. */
  output?: NodeJS.WritableStream;
}

export const DEFAULT_DASHBOARD_PORT = 8789;

export async function dashboardCommand(options: DashboardCommandOptions): Promise<number> {
  if (!options.db) {
    throw cliError('ERR_PERIMETER_STORE_OPEN', 'No event store given', {
      hint: 'pass --db <file>, e.g. --db .perimeter/events.db (written by `perimeter dev`)',
    });
  }
  const port = options.port ?? DEFAULT_DASHBOARD_PORT;
  const host = options.host ?? '127.0.0.1';
  const store = EventStore.open(options.db, { readonly: true });
  let dashboard: ReturnType<typeof createDashboard>;
  try {
    dashboard = createDashboard({ store, pollMs: options.pollMs });
  } catch (error) {
    store.close();
    throw error;
  }
  const server = createServer((req, res) => {
    if (dashboard.handle(req, res)) return;
    // Only the dashboard lives here; the bare root is where people type first.
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (pathname === '/') {
      res.writeHead(302, { Location: DASHBOARD_PREFIX }).end();
    } else {
      res
        .writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
        .end(`Not found; the dashboard is at ${DASHBOARD_PREFIX}\n`);
    }
  });
  try {
    await listen(server, port, host);
  } catch (error) {
    dashboard.close();
    store.close();
    throw error;
  }
  const address = server.address();
  const actualPort = typeof address === 'object' && address ? address.port : port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${actualPort}${DASHBOARD_PREFIX}`;
  (options.output ?? process.stdout).write(
    `perimeter dashboard: ${url}  (events from ${store.file}; Ctrl-C to stop)\n`,
  );

  await (options.until ?? untilSignal());
  dashboard.close();
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  store.close();
  return 0;
}

/** commander option parser for --port. */
export function parsePortOption(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new InvalidArgumentError('a port number from 0 to 65535 (0 = any free port)');
  }
  return Number(text);
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      if (error.code === 'EADDRINUSE') {
        reject(
          cliError('ERR_PERIMETER_DEV_PORT_IN_USE', `Port ${port} on ${host} is already in use`, {
            hint: `pass --port <another port> (or --port 0 for any free one)`,
            cause: error,
          }),
        );
      } else {
        // EADDRNOTAVAIL (--host is not an address of this machine), EACCES (a privileged port): not "in use".
        reject(new Error(`Cannot listen on ${host}:${port}: ${error.code ?? error.message}; check --host and --port`));
      }
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
