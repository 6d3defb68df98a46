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
/** Every URL in a text (a detail can hold several), up to the first character that cannot be part of one. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi;

let secretValues: string[] = [];

/** Remembers the values of secret-looking variables so they can be scrubbed wherever they appear. */
export function rememberSecretValues(env: Record<string, string | undefined>): void {
  const values = new Set<string>();
  // Names first: reading a value out of process.env costs a call into the environment, and few names qualify.
  for (const name of Object.keys(env)) {
    if (!/(KEY|SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE|SESSION|AUTH|DSN)/i.test(name)) continue;
    const value = env[name];
    if (value && value.length >= 8) values.add(value);
  }
  // Longest first, so a value that contains another is scrubbed whole.
  secretValues = [...values].sort((a, b) => b.length - a.length);
}

export function redact(text: string): string {
  let out = text;
  if (out.includes('://')) out = out.replace(URL_IN_TEXT, redactUrl);
  for (const value of secretValues) {
    if (out.includes(value)) out = out.split(value).join(MASK);
    const encoded = encodeURIComponent(value);
    if (encoded !== value && out.includes(encoded)) out = out.split(encoded).join(MASK);
  }
  for (const shape of TOKEN_SHAPES) out = out.replace(shape, MASK);
  return out;
}

function redactUrl(text: string): string {
  let url: URL;
  try {
    url = new URLCtor(text);
  } catch {
    return text;
  }
  let changed = false;
  if (url.password) {
    url.password = MASK;
    changed = true;
  } else if (url.username) {
    // A lone user name in a URL is usually a token (`https://<token>@github.com/…`).
    url.username = MASK;
    changed = true;
  }
  for (const name of [...url.searchParams.keys()]) {
    if (SECRET_NAME.test(name) || /^x-amz-(credential|signature|security-token)$/i.test(name)) {
      url.searchParams.set(name, MASK);
      changed = true;
    }
  }
  // The URL serialiser percent-encodes the brackets; the mask reads the same everywhere.
  return changed ? url.href.split(ENCODED_MASK).join(MASK) : text;
}

const ENCODED_MASK = encodeURIComponent(MASK);
