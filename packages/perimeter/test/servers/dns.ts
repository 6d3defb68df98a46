/**
 * A tiny DNS server on 127.0.0.1 (UDP). It answers every A query with 127.0.0.1, every other type with an empty
 * answer, and records each query name, so a test can prove a name never left the process: a denied lookup
 * must leave no trace here, because encoding data in the queried name is itself the exfiltration.
 */
import dgram from 'node:dgram';
import { once } from 'node:events';

export interface DnsServer {
  port: number;
  /** `<lower-case name> <type>` for each query received, e.g. `api.allowed.test A`. */
  queries: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_NAMES: Record<number, string> = { 1: 'A', 28: 'AAAA', 16: 'TXT', 15: 'MX', 255: 'ANY' };

export async function startDnsServer(): Promise<DnsServer> {
  const queries: string[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, remote) => {
    const question = parseQuestion(message);
    if (!question) return;
    queries.push(`${question.name.toLowerCase()} ${TYPE_NAMES[question.type] ?? question.type}`);
    socket.send(answer(message, question), remote.port, remote.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    port: socket.address().port,
    queries,
    close: () => new Promise<void>((done) => socket.close(() => done())),
  };
}

interface Question {
  name: string;
  type: number;
  /** Offset just past the question section. */
  end: number;
}

function parseQuestion(message: Buffer): Question | null {
  if (message.length < 12 || message.readUInt16BE(4) < 1) return null;
  const labels: string[] = [];
  let offset = 12;
  while (offset < message.length) {
    const length = message[offset]!;
    offset++;
    if (length === 0) break;
    labels.push(message.toString('latin1', offset, offset + length));
    offset += length;
  }
  if (offset + 4 > message.length) return null;
  return { name: labels.join('.'), type: message.readUInt16BE(offset), end: offset + 4 };
}

function answer(query: Buffer, question: Question): Buffer {
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // the id
  header.writeUInt16BE(0x8180 | (query.readUInt16BE(2) & 0x0100), 2); // response, recursion available/desired
  header.writeUInt16BE(1, 4);
  const isA = question.type === TYPE_A;
  header.writeUInt16BE(isA ? 1 : 0, 6);
  const questionSection = query.subarray(12, question.end);
  if (!isA) return Buffer.concat([header, questionSection]);
  const record = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
  return Buffer.concat([header, questionSection, record]);
}
