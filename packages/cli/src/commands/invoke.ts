/**
 * `perimeter invoke <fn> [--event file.json | --sample name] [--url …]`: fires one event at a function of a
 * running `perimeter dev` (non-HTTP triggers: S3, SQS, SNS, EventBridge, DynamoDB streams, Kinesis) and prints
 * what it returned. Exit 0 when the function answered, 1 when it failed (threw, timed out, crashed).
 */

import { invokeRemote } from '../dev/invoke.js';
import { loadEventFile, loadSample, sampleNames } from '../dev/samples.js';
import { cliError } from '../errors.js';

export interface InvokeCommandOptions {
  event?: string;
  sample?: string;
  url?: string;
  json?: boolean;
  output?: NodeJS.WritableStream;
}

export const DEFAULT_DEV_URL = 'http://127.0.0.1:8788';

export async function invokeCommand(name: string, options: InvokeCommandOptions): Promise<number> {
  const output = options.output ?? process.stdout;
  if (options.event !== undefined && options.sample !== undefined) {
    throw cliError('ERR_PERIMETER_DEV_EVENT', '--event and --sample cannot be used together', { hint: 'pick one' });
  }
  const event =
    options.event !== undefined
      ? loadEventFile(options.event)
      : options.sample !== undefined
        ? loadSample(options.sample)
        : {};
  const response = await invokeRemote(options.url ?? process.env.PERIMETER_DEV_URL ?? DEFAULT_DEV_URL, name, event);
  if (options.json) {
    output.write(`${JSON.stringify(response)}\n`);
  } else if (response.error !== undefined) {
    output.write(`${name} failed (request ${response.requestId}):\n${response.error}\n`);
  } else {
    output.write(`${JSON.stringify(response.result, null, 2)}\n`);
  }
  return response.error !== undefined ? 1 : 0;
}

export { sampleNames };
