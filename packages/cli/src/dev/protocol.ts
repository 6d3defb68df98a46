/**
 * The messages between the host (host.ts) and a function's runner process (runner.ts), over Node's IPC channel.
 * Kept apart from runner.ts, whose import starts a runner.
 */

export type Format = 'lambda' | 'netlify-v1' | 'netlify-v2';

export interface RunnerSpec {
  name: string;
  handler: string;
  export?: string;
  format?: Format;
  netlify: boolean;
}

/** An invocation, before the host adds its id and deadline. */
export type InvokePayload =
  | { type: 'invoke'; event: unknown }
  | {
      type: 'invoke';
      request: { method: string; url: string; headers: Array<[string, string]>; body: string | null; ip: string };
      params?: Record<string, string>;
    };

/** host → runner */
export type HostMessage =
  /** First, before the handler loads: what to run, and the token `ready` and `load-error` must carry. */
  | { type: 'init'; spec: RunnerSpec; token: string }
  | (InvokePayload & { id: string; deadline: number })
  /** Flush events and exit: the host is reloading or stopping the function. */
  | { type: 'stop' };

/** runner → host */
export type RunnerMessage =
  | { type: 'ready'; token: string; format: Format; export: string; paths?: string[]; methods?: string[] }
  | { type: 'load-error'; token: string; message: string }
  | { type: 'result'; id: string; ok: true; value: unknown }
  | { type: 'result'; id: string; ok: false; error: { type: string; message: string; stack?: string } };

/** A serialised Fetch Response (netlify-v2). */
export interface SerialisedResponse {
  status: number;
  headers: Array<[string, string]>;
  body: string;
}

/** Lambda's own limit on a synchronous response, also what the host accepts. */
export const MAX_RESULT_BYTES = 6 * 1024 * 1024;
