/**
 * A minimal WebSocket server (RFC 6455) on 127.0.0.1: completes the upgrade, echoes text frames, and records
 * every upgrade request path, so a test can prove a denied WebSocket never reached the handshake.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

const HANDSHAKE_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface WebSocketServer {
  port: number;
  /** Request paths of every upgrade attempt. */
  upgrades: string[];
  /** Text messages received. */
  messages: string[];
  readonly connections: number;
  close(): Promise<void>;
}

export async function startWebSocketServer(): Promise<WebSocketServer> {
  const upgrades: string[] = [];
  const messages: string[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = http.createServer((_req, res) => {
    res.statusCode = 426;
    res.end();
  });
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req, socket) => {
    upgrades.push(req.url ?? '');
    const key = String(req.headers['sec-websocket-key'] ?? '');
    const accept = createHash('sha1')
      .update(key + HANDSHAKE_GUID)
      .digest('base64');
    socket.write(
      `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    );
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      for (;;) {
        const frame = readFrame(buffered);
        if (!frame) return;
        buffered = buffered.subarray(frame.size);
        if (frame.opcode === 0x8) {
          socket.end(Buffer.from([0x88, 0]));
          return;
        }
        if (frame.opcode === 0x1) {
          const text = frame.payload.toString('utf8');
          messages.push(text);
          socket.write(textFrame(`echo:${text}`));
        }
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    upgrades,
    messages,
    get connections() {
      return connections;
    },
    close: () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => done());
      }),
  };
}

function readFrame(data: Buffer): { opcode: number; payload: Buffer; size: number } | null {
  if (data.length < 2) return null;
  const opcode = data[0]! & 0x0f;
  const masked = (data[1]! & 0x80) !== 0;
  let length = data[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (data.length < 4) return null;
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return null;
    length = Number(data.readBigUInt64BE(2));
    offset = 10;
  }
  const maskOffset = offset;
  if (masked) offset += 4;
  if (data.length < offset + length) return null;
  const payload = Buffer.from(data.subarray(offset, offset + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= data[maskOffset + (i % 4)]!;
  return { opcode, payload, size: offset + length };
}

function textFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  if (payload.length >= 126) throw new Error('the test server only sends short frames');
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}
