// What the two demos (examples/quickstart/demo.mjs, examples/shop/demo.mjs) share: the loopback servers that
// play Stripe and the attacker, a child node with a deadline, and the terminal output. Plain ESM with no
// dependencies, and no package.json here: this folder is not an npm workspace, only a file the demos import.
//
// The demos import it by a path relative to themselves. They never run from the temporary copies they make
// (both leave demo.mjs out of the copy), so the import always resolves from the checked-in tree.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';

// ---------------------------------------------------------------------------------------------------------------
// The terminal

/**
 * `say` for the story and `expect` for its checks, whose failures the demo lists at the end: the exit code
 * comes from `problems`, never from what was printed.
 */
export function storyteller() {
  const paint = colours();
  // `demo.mjs | head` closes stdout early; the demo still finishes, so its exit code still tells the story.
  let stdoutOpen = true;
  process.stdout.on('error', (error) => {
    if (error.code !== 'EPIPE') throw error;
    stdoutOpen = false;
  });
  const problems = [];
  return {
    paint,
    problems,
    stdoutIsOpen: () => stdoutOpen,
    say: (line = '') => stdoutOpen && process.stdout.write(`${line}\n`),
    expect: (condition, message) => {
      if (!condition) problems.push(message);
      return Boolean(condition);
    },
  };
}

export function colours() {
  const env = process.env;
  const enabled = env.FORCE_COLOR ? env.FORCE_COLOR !== '0' : Boolean(process.stdout.isTTY) && !env.NO_COLOR;
  const wrap = (open, close) => (text) => (enabled ? `\u001b[${open}m${text}\u001b[${close}m` : String(text));
  return {
    enabled,
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}

/**
 * Secrets shown the way a careful log shows them: prefix and last four, the rest dotted out. The lower-case
 * spelling too, since DNS names travel in lower case and a mask that only knew the original would let it through.
 */
export function mask(text, secrets, { dots = 8 } = {}) {
  let out = String(text);
  for (const secret of [secrets].flat()) {
    const visible = `${secret.slice(0, 8)}${'•'.repeat(dots)}${secret.slice(-4)}`;
    out = out
      .split(secret)
      .join(visible)
      .split(encodeURIComponent(secret))
      .join(visible)
      .split(secret.toLowerCase())
      .join(visible.toLowerCase());
  }
  return out;
}

export function randomBase62(length) {
  const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let out = '';
  // 248 is the largest multiple of 62 below 256: bytes above it would favour the first letters.
  for (const byte of randomBytes(length * 2)) {
    if (byte < 248) out += alphabet[byte % 62];
    if (out.length === length) break;
  }
  return out.padEnd(length, '0');
}

export function safeJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Processes

/**
 * Runs this node's binary with only the given environment, so that the function sees what a platform would give
 * it and nothing of the demo's own. A hung child is killed at the deadline rather than left to hang the demo.
 */
export function runNode(args, { cwd, env, timeoutMs }) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      stderr += String(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The loopback servers
//
// Each takes the port the checked-in policies and packages name when it is free, and any port when it is not:
// the demo then runs a copy of its example that knows the port actually in use. Port 0 means any from the start.

function listen(server, port) {
  return new Promise((resolve, reject) => {
    const onError = (error) => {
      server.off('listening', onListening);
      reject(error);
    };
    const onListening = () => {
      server.off('error', onError);
      resolve(server.address().port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, '127.0.0.1');
  });
}

async function listenPreferring(server, port) {
  try {
    return await listen(server, port);
  } catch (error) {
    if (error.code !== 'EADDRINUSE' && error.code !== 'EACCES') throw error;
    return listen(server, 0);
  }
}

export async function portIsFree(port) {
  const probe = net.createServer();
  try {
    await listen(probe, port);
    return true;
  } catch {
    return false;
  } finally {
    await new Promise((resolve) => probe.close(() => resolve()));
  }
}

function readBody(request) {
  return new Promise((resolve) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => {
      body += chunk;
    });
    request.on('end', () => resolve(body));
  });
}

// Closing idle keep-alive connections too: otherwise `close` waits for them and the demo cannot exit.
function closeHttp(server) {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

// Every response closes its connection, so that no keep-alive socket in a function's HTTP agent outlives its
// request: the function process can exit as soon as its work is done.
async function recordingServer(port, handle) {
  const records = [];
  const server = http.createServer(async (request, response) => {
    const body = await readBody(request);
    response.setHeader('connection', 'close');
    handle({ request, body, response, record: (entry) => records.push(entry) });
  });
  const bound = await listenPreferring(server, port);
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    // Hands over what arrived since the last call, so each run of a demo checks only its own traffic.
    take: () => records.splice(0),
    close: () => closeHttp(server),
  };
}

/**
 * A fake Stripe: POST /v1/charges with `key` as the bearer gets a charge object, anything else an error. Every
 * charge attempt is recorded with its Authorization header, so the demo can check the function's own key got
 * through.
 */
export function startStripe({ key, port }) {
  return recordingServer(port, ({ request, body, response, record }) => {
    response.setHeader('content-type', 'application/json');
    if (request.method !== 'POST' || request.url !== '/v1/charges') {
      response.statusCode = 404;
      return response.end(JSON.stringify({ error: { message: `no route ${request.method} ${request.url}` } }));
    }
    record({ authorization: request.headers.authorization ?? '', body });
    if (request.headers.authorization !== `Bearer ${key}`) {
      response.statusCode = 401;
      return response.end(JSON.stringify({ error: { message: 'invalid API key' } }));
    }
    const form = new URLSearchParams(body);
    response.end(
      JSON.stringify({
        id: `ch_${randomBase62(14)}`,
        object: 'charge',
        amount: Number(form.get('amount')),
        currency: form.get('currency'),
        status: 'succeeded',
      }),
    );
  });
}

/** The attacker's collector: records whatever arrives. */
export function startAttackerHttp({ port = 0 } = {}) {
  return recordingServer(port, ({ request, body, response, record }) => {
    record({ method: request.method, url: request.url, body });
    response.statusCode = 204;
    response.end();
  });
}

/** The attacker's name server: records every name it is asked for and answers NXDOMAIN. */
export async function startAttackerDns({ port = 0 } = {}) {
  const queries = [];
  // A socket whose bind failed cannot bind again, hence a fresh one for each try.
  const bind = (wanted) =>
    new Promise((resolve, reject) => {
      const socket = dgram.createSocket('udp4');
      socket.once('error', reject);
      socket.bind(wanted, '127.0.0.1', () => {
        socket.off('error', reject);
        resolve(socket);
      });
    });
  let socket;
  try {
    socket = await bind(port);
  } catch (error) {
    if (port === 0) throw error;
    socket = await bind(0);
  }
  socket.on('message', (packet, from) => {
    const name = questionName(packet);
    if (name === null) return;
    queries.push(name);
    socket.send(nxdomain(packet), from.port, from.address);
  });
  const bound = socket.address().port;
  return {
    port: bound,
    address: `127.0.0.1:${bound}`,
    take: () => queries.splice(0),
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

/** The first question's name in a DNS query (RFC 1035 §4.1), or null for anything malformed. */
function questionName(packet) {
  if (packet.length < 12 || packet.readUInt16BE(4) < 1) return null;
  const labels = [];
  let offset = 12;
  while (offset < packet.length) {
    const length = packet[offset];
    if (length === 0) return labels.join('.');
    if (length > 63 || offset + 1 + length > packet.length) return null;
    labels.push(packet.toString('latin1', offset + 1, offset + 1 + length));
    offset += 1 + length;
  }
  return null;
}

/**
 * The query sent back as a response with RCODE 3 (name error), question included, no answers: a prompt answer,
 * so the resolver in the function does not sit out its timeouts and retries.
 */
function nxdomain(query) {
  const response = Buffer.from(query);
  const flags = query.readUInt16BE(2);
  // QR=1, keep opcode and RD, RA=1, RCODE=3.
  response.writeUInt16BE(0x8000 | (flags & 0x7900) | 0x0080 | 0x0003, 2);
  response.writeUInt16BE(0, 6); // ANCOUNT
  response.writeUInt16BE(0, 8); // NSCOUNT
  response.writeUInt16BE(0, 10); // ARCOUNT (drops an EDNS OPT record, which a plain response may omit)
  const end = questionEnd(query);
  return end === null ? response : response.subarray(0, end);
}

function questionEnd(packet) {
  let offset = 12;
  while (offset < packet.length && packet[offset] !== 0) offset += 1 + packet[offset];
  const end = offset + 1 + 4; // the root label, QTYPE, QCLASS
  return end <= packet.length ? end : null;
}
