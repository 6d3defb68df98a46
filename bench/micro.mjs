// Per-operation costs of the guard's hot path, in-process, in ns/op: the network decision for allowed URLs,
// host normalisation, pattern matching, event emission under a flood (deduplicated), and call-stack capture.
// These read the compiled internals in packages/perimeter/dist directly (white-box): they explain the warm
// numbers, they are not a user-visible ratio. `new URL()` of the same URL is measured alongside for scale: it is
// what every fetch pays anyway.
//
// Runs in a child process of the Node under test (`<node> bench/micro.mjs --child`), so each major measures its
// own V8. Each operation is calibrated to ~20 ms per sample; the median of the samples is reported.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { childStdout, DIST, fixed, isMain, median, quantile, requireBuiltGuard, runAlone, tempTree } from './lib.mjs';

const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------------------------
// Parent side: run the child on the requested Node and turn its JSON into a table.

export default {
  id: 'micro',
  title: 'Hot-path operations (ns/op)',
  method: [
    'In-process loops over the compiled internals (`packages/perimeter/dist/*.js`, white-box) in a child process of each Node; each sample runs the operation for ~20 ms, the table shows the median and the p10–p90 of the samples.',
    'Decisions use a 20-rule block policy (exact hosts, `*.` and `**.` wildcards, paths, methods). "flood" = the same denied operation repeated: one event line, then counted as repeats (events go to /dev/null here).',
    '`callerPackages()` is called from inside a fake npm package at the given stack depth; it is what every network decision pays once a `packages` rule exists for network.',
  ],

  async run(node, { quick }) {
    requireBuiltGuard();
    const args = [SELF, '--child', ...(quick ? ['--quick'] : [])];
    const output = await childStdout('micro', node.bin, args, { env: { ...process.env, NODE_OPTIONS: '' } });
    const results = JSON.parse(output);
    return {
      tables: [
        {
          title: 'ns per operation',
          columns: [{ title: 'operation', align: 'left' }, { title: 'ns/op' }, { title: 'p10 … p90' }],
          rows: results.map((r) => [r.name, fixed(r.median, 1), `${fixed(r.p10, 1)} … ${fixed(r.p90, 1)}`]),
        },
      ],
    };
  },
};

// ---------------------------------------------------------------------------------------------------------------
// Child side: the measurements.

let blackhole; // results go here, and are read once at the end, so that V8 cannot drop the work

function timeLoop(operation, iterations) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) blackhole = operation(i);
  return Number(process.hrtime.bigint() - started);
}

function measure(name, operation, { quick }) {
  const sampleNs = quick ? 5e6 : 20e6;
  const samples = quick ? 3 : 15;
  let iterations = 64;
  timeLoop(operation, iterations); // first calls: lazy compilation, caches
  while (timeLoop(operation, iterations) < sampleNs / 4) iterations *= 2;
  iterations = Math.max(1, Math.round((iterations * sampleNs) / Math.max(1, timeLoop(operation, iterations))));
  const perOp = [];
  for (let s = 0; s < samples; s++) perOp.push(timeLoop(operation, iterations) / iterations);
  return { name, median: median(perOp), p10: quantile(perOp, 0.1), p90: quantile(perOp, 0.9) };
}

const POLICY = {
  mode: 'block',
  network: {
    allow: [
      'POST https://api.stripe.com/v1/**',
      'GET https://api.github.com/repos/*/*/releases',
      'https://hooks.slack.com/services/**',
      'https://*.amazonaws.com',
      'https://**.googleapis.com',
      'https://sqs.*.amazonaws.com/123456789012/*',
      'https://api-*.example.com/v2/**',
      'tcp://db.internal:5432',
      'tls://cache.internal:6380',
      'udp://statsd.internal:8125',
      'http://127.0.0.1:8080/orders/**',
      'https://auth0.example.com/oauth/token',
      'https://login.microsoftonline.com/**',
      'https://www.googleapis.com/oauth2/v4/token',
      'https://api.openai.com/v1/**',
      'https://api.sendgrid.com/v3/mail/send',
      'https://o123.ingest.sentry.io/api/**',
      'https://api.segment.io/v1/**',
      'wss://stream.example.com/feed',
      'https://cdn.example.net/assets/**',
    ],
  },
};

// A package in node_modules whose function recurses to a given depth and then runs the callback: the stack the
// attribution code walks looks like a real dependency calling out.
const FAKE_PACKAGE = `'use strict';
exports.callAtDepth = function callAtDepth(depth, callback) {
  return depth <= 1 ? callback() : callAtDepth(depth - 1, callback);
};
`;

function httpTarget(method, scheme, host, port, path) {
  return { kind: 'http', method, scheme, host, port, path };
}

async function child(quick) {
  const require = createRequire(path.join(DIST, 'index.js'));
  const { parsePolicy } = require('./policy/load.js');
  const guard = require('./guard.js');
  const { normalizeHost } = require('./policy/host.js');
  const { compileNetworkPattern, matchHost } = require('./policy/pattern.js');
  const { findRule } = require('./policy/evaluate.js');
  const { compileGlob, matchGlob } = require('./policy/glob.js');
  const { configureSink, emit } = require('./events.js');
  const { callerPackages } = require('./attribution.js');
  const { urlTarget } = require('./intercept/fetch.js');

  const dir = tempTree('perimeter-bench-micro-', {
    'node_modules/deep-client/package.json': { name: 'deep-client', version: '1.0.0', main: 'index.js' },
    'node_modules/deep-client/index.js': FAKE_PACKAGE,
  });
  const { callAtDepth } = createRequire(path.join(dir, 'index.js'))('deep-client');

  configureSink({ functionName: 'bench', stderr: false, eventsFile: '/dev/null' });
  const env = {};
  const compiled = parsePolicy(POLICY, '/bench/perimeter.json');
  const withPackages = parsePolicy(
    { ...POLICY, packages: { 'deep-client': { network: { allow: ['https://api.stripe.com/v1/**'] } } } },
    '/bench/perimeter.json',
  );
  const alerting = parsePolicy({ ...POLICY, mode: 'alert' }, '/bench/perimeter.json');

  const o = { quick };
  const results = [];
  const stripe = httpTarget('POST', 'https', 'api.stripe.com', 443, '/v1/charges');
  const s3 = httpTarget('GET', 'https', 'my-bucket.amazonaws.com', 443, '/key');
  const denied = httpTarget('GET', 'https', 'attacker.example', 443, '/exfil');
  const stripeUrl = 'https://api.stripe.com/v1/charges?expand=balance';

  // Decisions.
  results.push(measure('new URL() of a typical API URL (for scale)', () => new URL(stripeUrl), o));
  guard.setActivePolicy(compiled, env);
  results.push(measure('checkNetwork allowed, exact host (POST api.stripe.com)', () => guard.checkNetwork(stripe), o));
  results.push(measure('checkNetwork allowed, wildcard host (*.amazonaws.com)', () => guard.checkNetwork(s3), o));
  results.push(
    measure(
      'URL string → target → decision (what fetch does per call)',
      () => {
        const judged = urlTarget(new URL(stripeUrl), 'POST');
        return guard.checkNetwork(judged.target, judged.query);
      },
      o,
    ),
  );
  guard.setActivePolicy(withPackages, env);
  results.push(
    measure(
      'checkNetwork allowed, packages rule, from a package at depth 10',
      () => callAtDepth(10, () => guard.checkNetwork(stripe)),
      o,
    ),
  );
  results.push(measure('  (the depth-10 call alone, without a decision)', () => callAtDepth(10, () => null), o));

  // Denials under a flood: one line written, the rest counted.
  guard.setActivePolicy(alerting, env);
  results.push(measure('checkNetwork denied, alert mode, flood (deduped event)', () => guard.checkNetwork(denied), o));
  guard.setActivePolicy(compiled, env);
  results.push(
    measure('checkNetwork denied, block mode, flood (event + error object)', () => guard.checkNetwork(denied), o),
  );
  const event = {
    type: 'violation',
    capability: 'network',
    action: 'alerted',
    target: 'GET https://attacker.example/exfil',
    package: 'evil',
    reason: 'no-rule',
  };
  results.push(measure('emit() the same event, flood (deduped)', () => emit(event), o));

  // Host normalisation.
  results.push(measure('normalizeHost, cached', () => normalizeHost('API.Stripe.com'), o));
  const names = Array.from({ length: 4096 }, (_, i) => `Host-${i}.Example.COM.`);
  results.push(measure('normalizeHost, uncached DNS name', (i) => normalizeHost(names[i & 4095]), o));
  const mapped = Array.from({ length: 4096 }, (_, i) => `[::ffff:127.0.${i >> 8}.${i & 255}]`);
  results.push(measure('normalizeHost, uncached IPv4-mapped IPv6', (i) => normalizeHost(mapped[i & 4095]), o));

  // Pattern matching.
  const rule = (source) => compileNetworkPattern(source, 'network.allow[0]', '/bench/perimeter.json');
  const exact = rule('https://api.stripe.com');
  const oneLabel = rule('https://*.amazonaws.com');
  const manyLabels = rule('https://**.googleapis.com');
  const labels = rule('https://sqs.*.amazonaws.com');
  results.push(measure('matchHost exact', () => matchHost(exact.host, 'api.stripe.com'), o));
  results.push(measure('matchHost *.suffix', () => matchHost(oneLabel.host, 'my-bucket.amazonaws.com'), o));
  results.push(measure('matchHost **.suffix', () => matchHost(manyLabels.host, 'a.b.storage.googleapis.com'), o));
  results.push(
    measure(
      'matchHost label pattern (sqs.*.amazonaws.com)',
      () => matchHost(labels.host, 'sqs.eu-west-1.amazonaws.com'),
      o,
    ),
  );
  const glob = compileGlob('/v1/customers/*/sources/**');
  results.push(
    measure(
      'matchGlob /v1/customers/*/sources/**',
      () => matchGlob(glob, '/v1/customers/cus_1/sources/src_2/verify'),
      o,
    ),
  );
  results.push(
    measure('findRule, 20 rules, no match (scans all wildcards)', () => findRule(compiled.network, denied), o),
  );

  // Call-stack capture.
  results.push(measure('callerPackages() at depth 10', () => callAtDepth(10, callerPackages), o));
  results.push(measure('callerPackages() at depth 50', () => callAtDepth(50, callerPackages), o));

  process.stdout.write(JSON.stringify(results));
  if (blackhole === timeLoop) process.exitCode = 1; // never true; makes the stores observable
}

if (process.argv.includes('--child')) {
  await child(process.argv.includes('--quick'));
} else if (isMain(import.meta.url)) {
  runAlone('micro');
}
