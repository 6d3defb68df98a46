/**
 * The CLI's own coded errors (the runtime's ERR_PERIMETER_* table stays in packages/perimeter/src/errors.ts).
 * Codes are stable and never reused: scripts and CI match on `err.code`. Same shape as the runtime's errors:
 * message, then where (file:line), then a hint.
 */

export const cliCodes = {
  ERR_PERIMETER_EVENTS_READ: 'An events file or folder could not be read.',
  ERR_PERIMETER_EVENTS_JSON: 'A line of an events file is not JSON.',
  ERR_PERIMETER_EVENTS_TRUNCATED: 'The last line of an events file is cut off (the writer was killed mid-line).',
  ERR_PERIMETER_EVENTS_VERSION: 'An event has a `perimeter` format version this CLI does not read.',
  ERR_PERIMETER_EVENTS_INVALID: 'A line is JSON but not a Perimeter event (a required field is missing or mistyped).',
  ERR_PERIMETER_EVENTS_EMPTY: 'No usable events were found.',
  ERR_PERIMETER_LEARN_INPUT: 'learn was given nothing to learn from, or an input it cannot read.',
  ERR_PERIMETER_STORE_OPEN: 'The event store file could not be opened or created.',
  ERR_PERIMETER_STORE_CORRUPT: 'The event store file is not an SQLite database, or it is damaged.',
  ERR_PERIMETER_STORE_LOCKED: 'The event store file is locked by another process.',
  ERR_PERIMETER_DEV_CONFIG: 'perimeter.config.* is invalid.',
  ERR_PERIMETER_DEV_NO_FUNCTIONS: 'No functions were found to run.',
  ERR_PERIMETER_DEV_PORT_IN_USE: 'The gateway port is already in use.',
  ERR_PERIMETER_DEV_HANDLER: 'A function handler file is missing, does not load, or exports no handler.',
  ERR_PERIMETER_DEV_UNKNOWN_FUNCTION: 'No function has this name.',
  ERR_PERIMETER_DEV_NOT_RUNNING: 'No `perimeter dev` answers at this address.',
  ERR_PERIMETER_DEV_EVENT:
    'An event file for `perimeter invoke` is missing or not JSON, or the sample name is unknown.',
  ERR_PERIMETER_DASHBOARD_ASSETS: 'The dashboard assets are not built.',
} as const;

export type CliErrorCode = keyof typeof cliCodes;

export interface CliError extends Error {
  code: CliErrorCode;
  file?: string;
  line?: number;
  hint?: string;
}

export function cliError(
  code: CliErrorCode,
  message: string,
  details: { file?: string; line?: number; hint?: string; cause?: unknown } = {},
): CliError {
  const where = details.file ? `${details.file}${details.line ? `:${details.line}` : ''}` : '';
  const full = `${message}${where ? ` (${where})` : ''}${details.hint ? `\n  hint: ${details.hint}` : ''}`;
  const error = (details.cause === undefined ? new Error(full) : new Error(full, { cause: details.cause })) as CliError;
  error.code = code;
  if (details.file !== undefined) error.file = details.file;
  if (details.line !== undefined) error.line = details.line;
  if (details.hint !== undefined) error.hint = details.hint;
  return error;
}

export function isCliError(value: unknown): value is CliError {
  return value instanceof Error && typeof (value as CliError).code === 'string' && (value as CliError).code in cliCodes;
}
