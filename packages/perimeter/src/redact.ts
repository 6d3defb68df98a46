/**
 * Secrets never reach an event. A target is scrubbed of: credentials in URLs, values of query parameters with
 * secret-looking names, well-known token shapes, and the literal values of secret-looking environment
 * variables (so an exfiltration attempt that puts STRIPE_API_KEY in a URL is reported without the key).
 */
import { URLCtor } from './pristine.js';

const SECRET_NAME =
  /(pass(word|wd)?|secret|token|api[-_]?key|apikey|auth|credential|private|session|signature|sig|jwt|cookie|key)$/i;
const TOKEN_SHAPES: readonly RegExp[] = [
  /\b(AKIA|ASIA)[0-9A-Z]{16}\b/g, // AWS access key ids
  /\b[sr]k_(live|test)_[0-9A-Za-z]{8,}\b/g, // Stripe
  /\bgh[pousr]_[0-9A-Za-z]{20,}\b/g, // GitHub
  /\bxox[abprs]-[0-9A-Za-z-]{10,}\b/g, // Slack
  /\bnpm_[0-9A-Za-z]{30,}\b/g, // npm
  /\beyJ[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}\.[0-9A-Za-z_-]{8,}\b/g, // JWT
];
const MASK = '[REDACTED]';

let secretValues: string[] = [];

/** Remembers the values of secret-looking variables so they can be scrubbed wherever they appear. */
export function rememberSecretValues(env: Record<string, string | undefined>): void {
  const values = new Set<string>();
  for (const [name, value] of Object.entries(env)) {
    if (
      value &&
      value.length >= 8 &&
      /(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|SESSION|AUTH|DSN)/i.test(name)
    ) {
      values.add(value);
    }
  }
  // Longest first, so a value that contains another is scrubbed whole.
  secretValues = [...values].sort((a, b) => b.length - a.length);
}

export function redact(text: string): string {
  let out = text;
  if (out.includes('://')) out = redactUrl(out);
  for (const value of secretValues) {
    if (out.includes(value)) out = out.split(value).join(MASK);
    const encoded = encodeURIComponent(value);
    if (encoded !== value && out.includes(encoded)) out = out.split(encoded).join(MASK);
  }
  for (const shape of TOKEN_SHAPES) out = out.replace(shape, MASK);
  return out;
}

function redactUrl(text: string): string {
  const start = text.indexOf('://');
  const schemeStart = text.lastIndexOf(' ', start) + 1;
  const prefix = text.slice(0, schemeStart);
  let url: URL;
  try {
    url = new URLCtor(text.slice(schemeStart));
  } catch {
    return text;
  }
  let changed = false;
  if (url.password) {
    url.password = MASK;
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_NAME.test(name) || /^x-amz-(credential|signature|security-token)$/i.test(name)) {
      url.searchParams.set(name, MASK);
      changed = true;
    }
  }
  return changed ? prefix + url.href : text;
}
