/** A plain TCP echo server on loopback or on a unix socket path, counting every connection it accepts. */
import { once } from 'node:events';
import net from 'node:net';

export interface TcpEchoServer {
  /** The TCP port, or 0 for a unix socket. */
  port: number;
  readonly connections: number;
  /** Everything clients sent, in order. */
  received: string[];
  close(): Promise<void>;
}

export async function startTcpEchoServer(listenOn: { host?: string; path?: string } = {}): Promise<TcpEchoServer> {
  const received: string[] = [];
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.on('data', (d) => {
      received.push(String(d));
      socket.write(`echo:${d}`);
    });
  });
  if (listenOn.path) server.listen(listenOn.path);
  else server.listen(0, listenOn.host ?? '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    get connections() {
      return connections;
    },
    received,
    close: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}
