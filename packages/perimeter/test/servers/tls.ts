/**
 * TLS material and TLS-speaking loopback servers for the end-to-end tests. The certificate is generated when the
 * tests run (nothing secret is checked in) and names every loopback spelling a test connects with, so clients
 * verify it normally by passing it as `ca` instead of turning verification off.
 */
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { generate } from 'selfsigned';
import type { RecordedRequest } from '../helpers.js';

export interface TestCertificate {
  key: string;
  cert: string;
}

let certificate: Promise<TestCertificate> | undefined;

/** One self-signed certificate per test process, for localhost, 127.0.0.1 and ::1; it is its own CA. */
export function testCertificate(): Promise<TestCertificate> {
  certificate ??= generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      { name: 'basicConstraints', cA: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  } as any).then((pems) => ({ key: pems.private, cert: pems.cert }));
  return certificate;
}

export interface CountingServer {
  port: number;
  /** TCP (or TLS) connections accepted, whether or not a request followed. */
  readonly connections: number;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** An HTTPS server on 127.0.0.1 that records requests and counts connections. */
export async function startHttpsServer(): Promise<CountingServer> {
  const { key, cert } = await testCertificate();
  const requests: RecordedRequest[] = [];
  let connections = 0;
  const server = https.createServer({ key, cert }, (req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', body, headers: req.headers });
      res.end(JSON.stringify({ ok: true, url: req.url }));
    });
  });
  // Long enough that a keep-alive client keeps its socket (Node's agent drops sockets the server hints will
  // close within a second); close() ends them anyway.
  server.keepAliveTimeout = 5000;
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    requests,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

/** An HTTP/2 (TLS) server on 127.0.0.1 that records request paths and counts connections. */
export async function startHttp2Server(): Promise<CountingServer> {
  const { key, cert } = await testCertificate();
  const requests: RecordedRequest[] = [];
  let connections = 0;
  const server = http2.createSecureServer({ key, cert });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('connection', () => connections++);
  server.on('stream', (stream, headers) => {
    requests.push({
      method: String(headers[':method']),
      url: String(headers[':path']),
      body: '',
      headers: headers as any,
    });
    stream.respond({ ':status': 200 });
    stream.end('h2 ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    requests,
    close: () =>
      new Promise<void>((done) => {
        for (const session of sessions) session.destroy();
        server.close(() => done());
      }),
  };
}

export interface TlsEchoServer {
  port: number;
  readonly connections: number;
  /** The SNI name of every handshake (`false` when the client sent none). */
  servernames: Array<string | false>;
  close(): Promise<void>;
}

/** A raw TLS server that answers each line with `echo:<line>`. */
export async function startTlsEchoServer(): Promise<TlsEchoServer> {
  const { key, cert } = await testCertificate();
  const servernames: Array<string | false> = [];
  const sockets = new Set<tls.TLSSocket>();
  let connections = 0;
  const server = tls.createServer({ key, cert }, (socket) => {
    servernames.push((socket as any).servername ?? false);
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (d) => socket.write(`echo:${d}`));
  });
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    servernames,
    close: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}
