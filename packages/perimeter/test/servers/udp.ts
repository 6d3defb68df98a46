/** A UDP listener on 127.0.0.1 that keeps every datagram it receives. */
import dgram from 'node:dgram';
import { once } from 'node:events';

export interface UdpListener {
  port: number;
  packets: string[];
  close(): Promise<void>;
}

export async function startUdpListener(): Promise<UdpListener> {
  const packets: string[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message) => packets.push(String(message)));
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    port: socket.address().port,
    packets,
    close: () => new Promise<void>((done) => socket.close(() => done())),
  };
}
