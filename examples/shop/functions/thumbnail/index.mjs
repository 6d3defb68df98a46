// POST /api/thumbnail: renders a product thumbnail (a real PNG, drawn here: no image tools, no child process)
// and writes it under /tmp/perimeter-shop/thumbnails, the one place its policy lets it write.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { createLogger } from 'log-beacon';

const log = createLogger('thumbnail');
const OUT_DIR = '/tmp/perimeter-shop/thumbnails';

export async function handler(event) {
  let request;
  try {
    request = JSON.parse(event?.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event?.body);
  } catch {
    request = null;
  }
  const sku = typeof request?.sku === 'string' && /^[a-z0-9-]{1,40}$/.test(request.sku) ? request.sku : null;
  const size = Number.isInteger(request?.size) && request.size >= 8 && request.size <= 512 ? request.size : null;
  if (!sku || !size) return json(400, { error: 'expected { "sku": "a-z0-9-", "size": 8..512 }' });

  const png = render(size, colourOf(sku));
  mkdirSync(OUT_DIR, { recursive: true });
  const file = path.join(OUT_DIR, `${sku}-${size}.png`);
  writeFileSync(file, png);
  log.info('thumbnail written', { sku, file, bytes: png.length });
  return json(201, { sku, file, bytes: png.length });
}

/** A stable colour per product, so the same sku always gets the same thumbnail. */
function colourOf(sku) {
  let hash = 2166136261;
  for (const char of sku) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619) >>> 0;
  return [hash & 0xff, (hash >>> 8) & 0xff, (hash >>> 16) & 0xff];
}

/** An RGB PNG (RFC 2083): a diagonal fade from the colour to white. */
function render(size, [r, g, b]) {
  const raw = Buffer.alloc((size * 3 + 1) * size);
  for (let y = 0; y < size; y++) {
    const row = y * (size * 3 + 1);
    raw[row] = 0; // filter: none
    for (let x = 0; x < size; x++) {
      const t = (x + y) / (2 * size);
      const at = row + 1 + x * 3;
      raw[at] = Math.round(r + (255 - r) * t);
      raw[at + 1] = Math.round(g + (255 - g) * t);
      raw[at + 2] = Math.round(b + (255 - b) * t);
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // colour type: RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

let table;
function crc32(bytes) {
  table ??= Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let crc = 0xffffffff;
  for (const byte of bytes) crc = table[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function json(statusCode, body) {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}
