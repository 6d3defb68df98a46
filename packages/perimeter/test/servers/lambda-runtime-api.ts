/**
 * A loopback AWS Lambda Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html): hands out the
 * queued events on `GET /2018-06-01/runtime/invocation/next` with the request id, deadline, ARN and trace id headers,
 * and records what comes back on `/invocation/{id}/response`, `/invocation/{id}/error` and `/init/error`. When the
 * queue is empty, `next` answers 410 so that the runtime loop ends (Lambda would freeze the process instead; both
 * our test loop and AWS's runtime interface client exit on it).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RuntimeReply {
  id: string;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface RuntimeApi {
  /** host:port, the value of AWS_LAMBDA_RUNTIME_API. */
  address: string;
  functionArn: string;
  responses: RuntimeReply[];
  errors: RuntimeReply[];
  initErrors: RuntimeReply[];
  /** Every request, `METHOD path`, in order: a test checks nobody else polled. */
  log: string[];
  /** Resolves when every queued event has been answered (response or error). */
  allAnswered(): Promise<void>;
  close(): Promise<void>;
}

export async function startRuntimeApi(
  events: Array<{ id: string; event: unknown }>,
  options: { functionName?: string } = {},
): Promise<RuntimeApi> {
  const queue = [...events];
  const functionArn = `arn:aws:lambda:us-east-1:123456789012:function:${options.functionName ?? 'fn'}`;
  const responses: RuntimeReply[] = [];
  const errors: RuntimeReply[] = [];
  const initErrors: RuntimeReply[] = [];
  const log: string[] = [];
  let answered: () => void = () => {};
  const done = new Promise<void>((resolve) => (answered = resolve));
  const check = () => {
    if (responses.length + errors.length >= events.length) answered();
  };
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const path = req.url ?? '';
      log.push(`${req.method} ${path}`);
      if (req.method === 'GET' && path === '/2018-06-01/runtime/invocation/next') {
        const next = queue.shift();
        if (!next) {
          res.writeHead(410).end();
          return;
        }
        res.writeHead(200, {
          'content-type': 'application/json',
          'lambda-runtime-aws-request-id': next.id,
          'lambda-runtime-deadline-ms': String(Date.now() + 30_000),
          'lambda-runtime-invoked-function-arn': functionArn,
          'lambda-runtime-trace-id': `Root=1-00000000-${next.id.padStart(24, '0').slice(-24)};Sampled=0`,
        });
        res.end(JSON.stringify(next.event));
        return;
      }
      const reply = /^\/2018-06-01\/runtime\/invocation\/([^/]+)\/(response|error)$/.exec(path);
      if (req.method === 'POST' && reply) {
        (reply[2] === 'response' ? responses : errors).push({ id: reply[1]!, body, headers: req.headers });
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
        check();
        return;
      }
      if (req.method === 'POST' && path === '/2018-06-01/runtime/init/error') {
        initErrors.push({ id: '', body, headers: req.headers });
        res.writeHead(202, { 'content-type': 'application/json' }).end('{"status":"OK"}');
        answered();
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    functionArn,
    responses,
    errors,
    initErrors,
    log,
    allAnswered: () => done,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections?.();
        server.close(() => resolve());
      }),
  };
}
