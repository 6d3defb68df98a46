/**
 * The one table of Perimeter's coded errors. Codes are stable and never reused: users match on `err.code`.
 * Every error also carries a `Symbol.for` brand so that two copies of the library (a preloaded guard and a
 * bundled adapter) recognise each other's errors.
 */

export const PERIMETER_ERROR = Symbol.for('perimeter.error');

export const codes = {
  ERR_PERIMETER_BLOCKED: 'The policy denies this operation.',
  ERR_PERIMETER_POLICY_NOT_FOUND: 'No policy file was found.',
  ERR_PERIMETER_POLICY_READ: 'The policy file could not be read.',
  ERR_PERIMETER_POLICY_JSON: 'The policy file is not valid JSON.',
  ERR_PERIMETER_POLICY_INVALID: 'The policy does not match the policy schema.',
  ERR_PERIMETER_POLICY_PATTERN: 'A pattern in the policy cannot be understood.',
  ERR_PERIMETER_ALREADY_GUARDED: 'A guard with a different policy is already installed in this process.',
  ERR_PERIMETER_INTERNAL: 'Perimeter failed internally; the operation was denied (fail closed).',
  ERR_PERIMETER_NOT_GUARDED: 'A call that needs the guard (withPolicy) ran in a process the guard is not running in.',
  ERR_PERIMETER_INSPECTION: 'The event inspector found an attack in an event, or could not finish inspecting it.',
  ERR_PERIMETER_VALIDATION: "An event does not match the function's schema.",
} as const;

export type PerimeterErrorCode = keyof typeof codes;

export interface PerimeterErrorDetails {
  /** The policy file at fault, when there is one. */
  file?: string;
  /** JSON path of the key at fault, e.g. `network.allow[2]`. */
  key?: string;
  /** What to do about it. */
  hint?: string;
  /** For ERR_PERIMETER_BLOCKED: the capability and the target that was denied. */
  capability?: string;
  target?: string;
  package?: string;
  cause?: unknown;
}

export interface PerimeterError extends Error, PerimeterErrorDetails {
  code: PerimeterErrorCode;
}

/** Builds a coded error. `Base` lets a denial look like the error the operation normally fails with. */
export function perimeterError(
  code: PerimeterErrorCode,
  message: string,
  details: PerimeterErrorDetails = {},
  Base: ErrorConstructor | TypeErrorConstructor = Error,
): PerimeterError {
  const where = [details.file, details.key].filter(Boolean).join(': ');
  const full = `${message}${where ? ` (${where})` : ''}${details.hint ? `\n  hint: ${details.hint}` : ''}`;
  const err = (
    details.cause === undefined ? new Base(full) : new Base(full, { cause: details.cause })
  ) as PerimeterError;
  err.code = code;
  for (const k of ['file', 'key', 'hint', 'capability', 'target', 'package'] as const) {
    if (details[k] !== undefined) (err as any)[k] = details[k];
  }
  Object.defineProperty(err, PERIMETER_ERROR, { value: true });
  return err;
}

export function isPerimeterError(value: unknown): value is PerimeterError {
  return typeof value === 'object' && value !== null && (value as any)[PERIMETER_ERROR] === true;
}
