/**
 * The probe a guarded script uses to try many operations in one process and report how each ended, so one
 * child process covers a whole table of cases. Written into the run's folder as `probe.cjs`; ESM scripts import
 * it too. Each outcome is `ok` / `ok:<value>` or the error's code (the cause's code for fetch's TypeError), or
 * its message when it has no code.
 */
export const PROBE_FILE = 'probe.cjs';

export const PROBE_SOURCE = `'use strict';
const results = {};
const errors = {};
exports.results = results;
exports.errors = errors;
exports.attempt = async function attempt(name, fn) {
  try {
    const value = await fn();
    results[name] = value === undefined ? 'ok' : 'ok:' + value;
  } catch (e) {
    errors[name] = { message: String(e && e.message), code: e && e.code, causeCode: e && e.cause && e.cause.code, name: e && e.name };
    results[name] = (e && (e.code || (e.cause && e.cause.code))) || String(e && e.message);
  }
};
/** Resolves with the status of a ClientRequest's response (body drained), rejects on its 'error'. */
exports.settle = function settle(req, body) {
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(res.statusCode));
    });
    if (!req.writableEnded) req.end(body);
  });
};
exports.report = function report() {
  process.stdout.write(JSON.stringify({ results, errors }) + '\\n');
};
`;

export interface ProbeReport {
  results: Record<string, string>;
  errors: Record<string, { message: string; code?: string; causeCode?: string; name?: string }>;
}

/** The last JSON line a probe script printed. */
export function readProbe(stdout: string): ProbeReport {
  const line = stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .at(-1);
  if (!line) throw new Error(`the guarded script printed no report; stdout was:\n${stdout}`);
  return JSON.parse(line);
}
