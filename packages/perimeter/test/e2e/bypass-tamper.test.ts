/**
 * Bypass suite, tamper resistance: a hostile package (node_modules/evil) that knows the guard is there tries to
 * restore originals, get a fresh copy of a built-in, redefine the patches, switch the guard off, or change the
 * guard's decisions by replacing the built-ins it might call (String/Array/Map/Set prototypes, the array
 * iterator, Function.prototype.call, Error.prepareStackTrace). Each test asserts the escape failed, the server
 * saw nothing, and the legitimate request beside it still worked.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixtureResults, PACKAGE_ROOT, runGuarded, startRecordingServer, tempDir } from '../helpers.js';

type Server = Awaited<ReturnType<typeof startRecordingServer>>;

/**
 * The fixture's helpers are captured before the hostile package runs, so that its prototype tampering cannot
 * break the test's own reporting.
 */
const REPORT = `
const log = console.log.bind(console);
const http = require('node:http');
function report(name, fn) {
  return Promise.resolve().then(fn).then(
    () => log('RESULT ' + name + ' ok'),
    (e) => log('RESULT ' + name + ' ' + (e && (e.code || e.message))),
  );
}
function get(getFn, url) {
  return new Promise((resolve, reject) => {
    const req = getFn(url, (res) => { res.resume(); res.on('end', resolve); });
    req.on('error', reject);
  });
}
module.exports = { report, get, httpGet: http.get };
`;

function evil(source: string): Record<string, string> {
  return {
    'node_modules/evil/package.json': '{"name":"evil","version":"1.0.0","main":"index.js"}',
    'node_modules/evil/index.js': source,
    'report.js': REPORT,
  };
}

// Outside the function's folder: not readable under the default fs rules.
const SECRET_FILE = join(tempDir('perimeter-secret-'), 'secret.txt');
writeFileSync(SECRET_FILE, 'TOP SECRET');

let server: Server;
before(async () => {
  server = await startRecordingServer();
});
after(async () => {
  await server.close();
});

function policy(extra: Record<string, unknown> = {}) {
  return {
    mode: 'block',
    network: { allow: [`GET ${server.url}/allowed`] },
    env: { allow: ['SECRET_FILE', 'PATH', 'HOME'] },
    ...extra,
  };
}

function deniedPaths(since: number): string[] {
  return server.requests
    .slice(since)
    .map((q) => q.url)
    .filter((u) => u !== '/allowed');
}

/** Runs main.js: the allowed request first, then the hostile package. */
async function attack(source: string, extra: Record<string, unknown> = {}, files: Record<string, string> = {}) {
  const since = server.requests.length;
  const run = await runGuarded({
    policy: policy(extra),
    script: 'main.js',
    env: { SECRET_FILE },
    files: {
      ...evil(source),
      ...files,
      'main.js': `const { report, get, httpGet } = require('./report.js');
(async () => {
  await report('allowed', () => get(httpGet, '${server.url}/allowed'));
  await require('evil')('${server.url}');
  await report('allowed-after', () => get(httpGet, '${server.url}/allowed'));
})();`,
    },
  });
  const r = fixtureResults(run);
  assert.equal(r.allowed, 'ok', run.stdout + run.stderr);
  return { run, r, leaked: () => deniedPaths(since) };
}

describe('bypass suite: tamper resistance', () => {
  test('bypass: restore originals from references saved after the guard', async () => {
    const { r, leaked } = await attack(`const { report, get } = require('../../report.js');
const http = require('node:http');
const net = require('node:net');
const fs = require('node:fs');
const cp = require('node:child_process');
const saved = { request: http.request, get: http.get, connect: net.Socket.prototype.connect,
  readFileSync: fs.readFileSync, execSync: cp.execSync };
module.exports = async (url) => {
  await report('assign-back', () => { http.get = saved.get; net.Socket.prototype.connect = saved.connect; });
  await report('saved-get', () => get(saved.get, url + '/saved-get'));
  await report('reassigned-get', () => get(http.get, url + '/reassigned-get'));
  await report('saved-connect', () => new Promise((resolve, reject) => {
    const s = new net.Socket();
    s.on('error', reject);
    saved.connect.call(s, 1, '127.0.0.1', resolve);
  }));
  await report('saved-is-wrapper', () => { if (saved.readFileSync !== fs.readFileSync) throw new Error('differs'); });
  await report('saved-readFileSync', () => saved.readFileSync(process.env.SECRET_FILE, 'utf8'));
  await report('saved-execSync', () => saved.execSync('touch ' + process.env.SECRET_FILE + '.pwned'));
};`);
    assert.equal(r['saved-get'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['reassigned-get'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['saved-connect'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['saved-is-wrapper'], 'ok');
    assert.equal(r['saved-readFileSync'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['saved-execSync'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(existsSync(`${SECRET_FILE}.pwned`), false);
    assert.equal(r['allowed-after'], 'ok');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: delete or redefine the patched functions', async () => {
    const { r, leaked } = await attack(`'use strict';
const { report, get } = require('../../report.js');
const http = require('node:http');
const net = require('node:net');
module.exports = async (url) => {
  await report('delete', () => { delete net.Socket.prototype.connect; });
  await report('define', () => Object.defineProperty(http.Agent.prototype, 'addRequest', { value: function () {} }));
  await report('reflect-set', () => { if (!Reflect.set(net.Socket.prototype, 'connect', function () { return this; })) throw new Error('refused'); });
  await report('define-proto', () => Object.defineProperty(net.Socket.prototype, 'connect', { get: () => () => 1 }));
  await report('after', () => get(http.get, url + '/after-redefine'));
  await report('socket-after', () => new Promise((resolve, reject) => {
    new net.Socket().on('error', reject).connect(1, '127.0.0.1', resolve);
  }));
};`);
    assert.equal(r.delete, "Cannot delete property 'connect' of #<Socket>");
    assert.match(r.define ?? '', /Cannot redefine property: addRequest/);
    assert.match(r['define-proto'] ?? '', /Cannot redefine property: connect/);
    assert.equal(r.after, 'ERR_PERIMETER_BLOCKED');
    // Reflect.set goes through the guard's setter, which keeps the check in front of the new function.
    assert.equal(r['socket-after'], 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: prototype swapping around the patched prototypes', async () => {
    const { r, leaked } = await attack(`const { report, get } = require('../../report.js');
const http = require('node:http');
const net = require('node:net');
const stream = require('node:stream');
module.exports = async (url) => {
  // A socket whose prototype chain skips net.Socket.prototype.connect cannot connect at all: Duplex has none.
  await report('swap-instance', () => new Promise((resolve, reject) => {
    const s = new net.Socket();
    const fake = Object.create(stream.Duplex.prototype);
    for (const k of Object.getOwnPropertyNames(net.Socket.prototype)) if (k !== 'connect') {
      Object.defineProperty(fake, k, Object.getOwnPropertyDescriptor(net.Socket.prototype, k));
    }
    Object.setPrototypeOf(s, fake);
    if (typeof s.connect !== 'function') throw Object.assign(new Error('no connect'), { code: 'NO_CONNECT' });
    s.on('error', reject); s.connect(1, '127.0.0.1', resolve);
  }));
  await report('swap-agent', () => {
    Object.setPrototypeOf(http.Agent.prototype, { createConnection: (o, cb) => net.connect(o, cb) });
    return get(http.get, url + '/swapped-agent');
  });
  await report('subclass', () => new Promise((resolve, reject) => {
    class Sneaky extends net.Socket {}
    new Sneaky().on('error', reject).connect(1, '127.0.0.1', resolve);
  }));
};`);
    assert.equal(r['swap-instance'], 'NO_CONNECT');
    assert.equal(r['swap-agent'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r.subclass, 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: re-require a fresh copy of a built-in', async () => {
    const { r, leaked } = await attack(`const { report, get } = require('../../report.js');
const Module = require('node:module');
module.exports = async (url) => {
  for (const key of Object.keys(require.cache)) delete require.cache[key];
  const ways = {
    'cache-cleared': () => require('node:http'),
    'module-load': () => Module._load('http', null, true),
    'get-builtin': () => process.getBuiltinModule('node:http'),
    'create-require': () => Module.createRequire('/nonexistent/x.js')('http'),
    'builtin-modules': () => require(Module.builtinModules.find((m) => m === 'http')),
    'import-query': async () => (await import('node:http?fresh=1')).default,
    'import-plain': async () => (await import('node:http')).default,
  };
  for (const [name, load] of Object.entries(ways)) {
    await report(name, async () => get((await load()).get, url + '/' + name));
  }
};`);
    assert.equal(r['cache-cleared'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['module-load'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['get-builtin'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['create-require'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(r['builtin-modules'], 'ERR_PERIMETER_BLOCKED');
    // A query string is not a built-in at all: the import fails instead of handing out a second copy.
    assert.notEqual(r['import-query'], 'ok');
    assert.equal(r['import-plain'], 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: turn the guard off through its API, its marker or its env vars', async () => {
    const { run, r, leaked } = await attack(
      `const { report, get } = require('../../report.js');
const http = require('node:http');
module.exports = async (url) => {
  const perimeter = require(${JSON.stringify(join(PACKAGE_ROOT, 'dist/perimeter.js'))});
  // A forged JSON.stringify would make any two policies look the same to a naive comparison.
  const realStringify = JSON.stringify;
  JSON.stringify = () => '{}';
  await report('guard-again', () => perimeter.guard({ mode: 'allow' }));
  JSON.stringify = realStringify;
  for (const key of Object.keys(require.cache)) delete require.cache[key];
  const fresh = require(${JSON.stringify(join(PACKAGE_ROOT, 'dist/perimeter.js'))});
  await report('fresh-copy-guard', () => fresh.guard({ mode: 'allow' }));
  const marker = Symbol.for('perimeter.guard');
  await report('marker-overwrite', () => { 'use strict'; globalThis[marker] = undefined; });
  await report('marker-delete', () => { if (!delete globalThis[marker]) throw Object.assign(new Error('kept'), { code: 'KEPT' }); });
  process.env.PERIMETER_POLICY = require('node:path').resolve('wide.json');
  process.env.PERIMETER_MODE = 'allow';
  await report('after', () => get(http.get, url + '/after-off'));
};`,
      {},
      { 'wide.json': '{"mode":"allow"}' },
    );
    assert.equal(r['guard-again'], 'ERR_PERIMETER_ALREADY_GUARDED');
    assert.equal(r['fresh-copy-guard'], 'ERR_PERIMETER_ALREADY_GUARDED');
    assert.match(r['marker-overwrite'] ?? '', /Cannot assign to read only property/);
    assert.equal(r['marker-delete'], 'KEPT');
    assert.equal(r.after, 'ERR_PERIMETER_BLOCKED');
    assert.ok(run.events.some((e) => e.type === 'tamper' && e.reason === 'already-guarded'));
    assert.deepEqual(leaked(), []);
  });

  test('bypass: PERIMETER_POLICY rewritten before starting a worker', async () => {
    const { r, leaked } = await attack(
      `const { report } = require('../../report.js');
const { Worker } = require('node:worker_threads');
module.exports = (url) => report('worker', () => new Promise((resolve, reject) => {
  process.env.PERIMETER_POLICY = require('node:path').resolve('wide.json');
  const code = "fetch(" + JSON.stringify(url + '/worker-wide') + ").then(() => 'reached', (e) => e.cause?.code || e.code)" +
    ".then((m) => require('node:worker_threads').parentPort.postMessage(m))";
  const w = new Worker(code, { eval: true, env: { ...process.env, PERIMETER_POLICY: require('node:path').resolve('wide.json') } });
  w.on('message', (m) => (m === 'reached' ? resolve() : reject(Object.assign(new Error(m), { code: m }))));
  w.on('error', reject);
}));`,
      { worker: { allow: true } },
      { 'wide.json': '{"mode":"allow"}' },
    );
    assert.equal(r.worker, 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: Error.prepareStackTrace made read-only to blind attribution', async () => {
    const { run, r, leaked } = await attack(
      `const { report, get } = require('../../report.js');
const http = require('node:http');
module.exports = async (url) => {
  Object.defineProperty(Error, 'prepareStackTrace', { value: undefined, writable: false, configurable: false });
  Object.defineProperty(Error, 'stackTraceLimit', { value: 0, writable: false, configurable: false });
  await report('blinded', () => get(http.get, url + '/allowed'));
};`,
      { packages: { '*': { network: { allow: ['https://only.example.com'] } } } },
    );
    // The function may reach /allowed, but the caller can no longer be identified: it is judged as an
    // untrusted package, so packages["*"] applies and denies it.
    assert.equal(r.blinded, 'ERR_PERIMETER_BLOCKED');
    assert.ok(
      run.events.some((e) => e.type === 'tamper' && e.capability === 'attribution'),
      JSON.stringify(run.events),
    );
    const denial = run.events.find((e) => e.type === 'violation' && e.package === '<unknown>');
    assert.ok(denial, JSON.stringify(run.events));
    assert.deepEqual(leaked(), []);
  });

  test('bypass: Map.prototype.get forged to hand the guard a matching rule', async () => {
    const { run, r, leaked } = await attack(`const { report, get } = require('../../report.js');
const http = require('node:http');
module.exports = async (url) => {
  const realGet = Map.prototype.get;
  const forged = { scheme: 'http', methods: null, port: null, host: { kind: 'any' }, path: { kind: 'any' } };
  Map.prototype.get = function (key) {
    const v = realGet.call(this, key);
    return v === undefined && typeof key === 'string' && key.startsWith('127.') ? [forged] : v;
  };
  await report('forged-rule', () => get(http.get, url + '/forged-map'));
  // Left in place: detection happens at the next integrity check (at the latest at exit); a package that
  // restores the original within the check interval is not reported (docs/threat-model.md).
};`);
    assert.equal(r['forged-rule'], 'ERR_PERIMETER_BLOCKED');
    assert.ok(run.events.some((e) => e.type === 'tamper' && e.target === 'Map.prototype.get'));
    assert.deepEqual(leaked(), []);
  });

  test('bypass: array iterator forged to skip package rules and fake platform endpoints', async () => {
    const { r, leaked } = await attack(
      `const { report, get } = require('../../report.js');
const http = require('node:http');
module.exports = async (url) => {
  const ArrayIterator = Object.getPrototypeOf([][Symbol.iterator]());
  const realNext = ArrayIterator.next;
  const port = Number(new URL(url).port);
  ArrayIterator.next = function () {
    const step = realNext.call(this);
    // Every loop sees one forged platform endpoint and no package names.
    return step.done ? step : { done: false, value: { host: '127.0.0.1', port } };
  };
  try {
    await report('iterator', () => get(http.get, url + '/forged-iterator'));
  } finally {
    ArrayIterator.next = realNext;
  }
};`,
      { packages: { evil: { network: { allow: ['https://only.example.com'] } } } },
    );
    assert.equal(r.iterator, 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: String.prototype methods forged to widen wildcard and prefix matches', async () => {
    const { r, leaked } = await attack(
      `const { report, get } = require('../../report.js');
const http = require('node:http');
module.exports = async (url) => {
  const saved = {};
  for (const m of ['startsWith', 'endsWith', 'includes', 'indexOf', 'lastIndexOf', 'slice', 'split', 'toLowerCase', 'trim', 'charCodeAt']) {
    saved[m] = String.prototype[m];
  }
  // With these, a naive host matcher reads 127.0.0.1 as "something.io" and a prefix glob as matching.
  // (charCodeAt and friends are left alone: Node's own header validation uses them and would fail first.)
  String.prototype.startsWith = () => true;
  String.prototype.endsWith = () => true;
  try {
    await report('strings', () => get(http.get, url + '/allowed-but-not/this'));
  } finally {
    Object.assign(String.prototype, saved);
  }
};`,
      { network: { allow: [`GET ${server.url}/allowed`, 'GET http://**.io/**'] } },
    );
    assert.equal(r.strings, 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: Set.prototype.has forged so a built-in is handed out unpatched', async () => {
    // dgram has no lower layer the guard also watches: its own patch is the only check, so a module handed out
    // unpatched would send. A UDP socket here sees whether anything arrived.
    const receiver = createSocket('udp4');
    const received: string[] = [];
    receiver.on('message', (m) => received.push(String(m)));
    await new Promise<void>((done) => receiver.bind(0, '127.0.0.1', done));
    const udpPort = receiver.address().port;
    try {
      const { r } = await attack(`const { report } = require('../../report.js');
module.exports = async () => {
  const realHas = Set.prototype.has;
  Set.prototype.has = function () { return true; };
  let dgram;
  try { dgram = require('node:dgram'); } finally { Set.prototype.has = realHas; }
  await report('dgram', () => new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.on('error', reject);
    s.send('leaked', ${udpPort}, '127.0.0.1', (err) => { s.close(); err ? reject(err) : resolve(); });
  }));
};`);
      assert.equal(r.dgram, 'ERR_PERIMETER_BLOCKED');
      await sleep(100);
      assert.deepEqual(received, []);
    } finally {
      receiver.close();
    }
  });

  test('bypass: Function.prototype.call/apply/bind and Reflect.apply replaced to capture originals', async () => {
    const { r, leaked } = await attack(`const { report, get } = require('../../report.js');
const http = require('node:http');
const net = require('node:net');
module.exports = async (url) => {
  const FP = Function.prototype;
  const saved = { call: FP.call, apply: FP.apply, bind: FP.bind, rapply: Reflect.apply, rconstruct: Reflect.construct };
  const captured = new Set();
  // A naive guard calls the original through original.apply(this, args): this records every such function.
  FP.apply = function (...a) { captured.add(this); return saved.rapply(saved.apply, this, a); };
  FP.call = function (...a) { captured.add(this); return saved.rapply(saved.call, this, a); };
  Reflect.apply = function (fn, self, args) { captured.add(fn); return saved.rapply(fn, self, args); };
  Reflect.construct = function (fn, args, nt) { captured.add(fn); return saved.rconstruct(fn, args, nt); };
  try {
    await report('while-replaced', () => get(http.get, url + '/while-replaced'));
  } finally {
    FP.apply = saved.apply; FP.call = saved.call; Reflect.apply = saved.rapply; Reflect.construct = saved.rconstruct;
  }
  let tried = 0;
  for (const fn of captured) {
    if (typeof fn !== 'function' || fn === http.get || fn === http.request) continue;
    if (fn.name === 'get' || fn.name === 'request') {
      tried++;
      await report('captured-' + tried, () => get(fn, url + '/captured-original'));
    }
    if (fn.name === 'connect' && fn !== net.Socket.prototype.connect) {
      tried++;
      await report('captured-' + tried, () => new Promise((resolve, reject) => {
        const s = new net.Socket(); s.on('error', reject); fn.call(s, 1, '127.0.0.1', resolve);
      }));
    }
  }
};`);
    assert.equal(r['while-replaced'], 'ERR_PERIMETER_BLOCKED');
    for (const [name, outcome] of Object.entries(r)) {
      if (name.startsWith('captured-')) assert.notEqual(outcome, 'ok', name);
    }
    assert.deepEqual(leaked(), []);
  });

  test('bypass: getters that show the check one port and the connection another', async () => {
    const { r, leaked } = await attack(
      `const { report } = require('../../report.js');
const net = require('node:net');
module.exports = async (url) => {
  const port = Number(new URL(url).port);
  let reads = 0;
  const options = { host: '127.0.0.1', get port() { return reads++ === 0 ? 7 : port; } };
  await report('getter', () => new Promise((resolve, reject) => {
    const s = new net.Socket();
    s.on('error', reject);
    s.connect(options, () => { s.end('GET /getter-toctou HTTP/1.0\\r\\n\\r\\n'); resolve(); });
  }));
};`,
      { network: { allow: [`GET ${server.url}/allowed`, 'tcp://127.0.0.1:7'] } },
    );
    // Judged as 127.0.0.1:7 (allowed) and connected there too: refused by the OS, never the server's port.
    assert.equal(r.getter, 'ECONNREFUSED');
    assert.deepEqual(leaked(), []);
  });

  test('bypass: a WebSocket URL whose toString answers the check and the connection differently', {
    skip: typeof (globalThis as any).WebSocket !== 'function' ? 'no global WebSocket on this Node' : false,
  }, async () => {
    const wsUrl = server.url.replace('http:', 'ws:');
    const { r, leaked } = await attack(
      `const { report } = require('../../report.js');
module.exports = (url) => report('websocket', () => new Promise((resolve) => {
  let n = 0;
  const base = url.replace('http:', 'ws:');
  const target = { toString: () => (n++ === 0 ? base + '/allowed-ws' : base + '/secret-ws') };
  const ws = new WebSocket(target);
  ws.onerror = () => resolve();
  ws.onclose = () => resolve();
  setTimeout(resolve, 500);
}));`,
      { network: { allow: [`GET ${server.url}/allowed`, `${wsUrl}/allowed-ws`] } },
    );
    assert.equal(r.websocket, 'ok');
    // The upgrade request, if any, went to the path that was judged; never to the other one.
    assert.deepEqual(
      leaked().filter((u) => u !== '/allowed-ws'),
      [],
    );
  });

  test('bypass: a call laundered through new Function to escape package rules', async () => {
    const { run, r, leaked } = await attack(
      `const { report } = require('../../report.js');
module.exports = (url) => report('laundered', () => new Promise((resolve, reject) => {
  // Built from a string and run from a timer: no frame of this package is on the stack when it connects.
  globalThis.__done = (e) => (e ? reject(e) : resolve());
  const fn = new Function('url', "process.getBuiltinModule('node:http').get(url, (res) => { res.resume(); __done(); }).on('error', __done)");
  setTimeout(fn, 0, url + '/allowed');
}));`,
      { packages: { '*': { network: { allow: ['https://only.example.com'] } } } },
    );
    assert.equal(r.laundered, 'ERR_PERIMETER_BLOCKED');
    assert.ok(run.events.some((e) => e.type === 'violation' && e.package === '<unknown>'));
    assert.deepEqual(leaked(), []);
  });
});
