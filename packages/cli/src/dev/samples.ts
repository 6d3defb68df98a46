/**
 * Sample events for non-HTTP triggers (`perimeter invoke fn --sample sqs`), shipped in packages/cli/samples/: the
 * shapes AWS delivers, so a handler written against them works unchanged when deployed.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliError } from '../errors.js';

/** packages/cli/samples, from dist/dev/samples.js. */
export const SAMPLES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'samples');

export function sampleNames(): string[] {
  try {
    return readdirSync(SAMPLES_DIR)
      .filter((name) => name.endsWith('.json'))
      .map((name) => name.slice(0, -5))
      .sort();
  } catch {
    return [];
  }
}

export function loadSample(name: string): unknown {
  const names = sampleNames();
  if (!names.includes(name)) {
    throw cliError('ERR_PERIMETER_DEV_EVENT', `there is no sample event called ${JSON.stringify(name)}`, {
      hint: `samples: ${names.join(', ') || `(none found in ${SAMPLES_DIR})`}; or pass your own with --event file.json`,
    });
  }
  return JSON.parse(readFileSync(path.join(SAMPLES_DIR, `${name}.json`), 'utf8'));
}

/** An event file: JSON, any shape (it is handed to the function as it is). */
export function loadEventFile(file: string): unknown {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (error) {
    throw cliError(
      'ERR_PERIMETER_DEV_EVENT',
      `cannot read the event file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      {
        file: absolute,
        hint: 'pass a JSON file, or --sample <name> for a built-in one',
        cause: error,
      },
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    const at = /position (\d+)/.exec((error as Error).message);
    const line = at ? text.slice(0, Number(at[1])).split('\n').length : undefined;
    throw cliError('ERR_PERIMETER_DEV_EVENT', `the event file is not JSON: ${(error as Error).message}`, {
      file: absolute,
      ...(line !== undefined ? { line } : {}),
      hint: 'an event is one JSON value, usually an object',
      cause: error,
    });
  }
}
