/**
 * The adapters' `inspect` and `schema` options: the event inspector and a schema check in front of the handler.
 *
 * The inspector is reached through `require('../inspector/index.js')`, which the build points at dist/inspector.js
 * (the self-contained inspector bundle) rather than inlining it: the inspector holds no state, so sharing that file is
 * only about size, and requiring it when an adapter is wrapped with `inspect` or `schema` means functions that use
 * neither never load it. Events go through the runtime's sink (reportAttack, from the public API).
 */
import { reportAttack } from '../index.js';
import type { InspectPolicy, Trigger } from '../inspector/index.js';

type Inspector = typeof import('../inspector/index.js');

export interface AdapterInspectOptions extends Omit<InspectPolicy, 'mode'> {
  /** block: rejected events never reach the handler; alert: findings are reported and the handler runs. */
  mode: 'block' | 'alert';
}

/** Structural Standard Schema (https://standardschema.dev): zod, valibot, arktype, … implement it. */
export interface StandardSchemaLike {
  readonly '~standard': {
    validate(value: unknown): StandardResult | PromiseLike<StandardResult>;
  };
}
type StandardIssue = { message: string; path?: ReadonlyArray<PropertyKey | { key: PropertyKey }> };
type StandardResult = { value?: unknown; issues?: ReadonlyArray<StandardIssue> };

/** A plain validator, e.g. `(value) => ({ valid: validate(value), errors: validate.errors })` around `ajv.compile`. */
export type ValidatorFunction = (value: unknown) => { valid: boolean; errors?: unknown };

export type SchemaOption = StandardSchemaLike | ValidatorFunction;

export interface ScreenOptions {
  inspect?: AdapterInspectOptions;
  schema?: SchemaOption;
}

export interface HttpRejection {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** What to do with one event: call the handler (with records removed), answer instead of it, or fail. */
export type Screened =
  | { kind: 'pass'; event: unknown; failedIds: string[] }
  | { kind: 'respond'; response: HttpRejection | { batchItemFailures: Array<{ itemIdentifier: string }> } }
  | { kind: 'fail'; error: Error };

export type Screen = (event: unknown, trigger?: Trigger) => Screened | PromiseLike<Screened>;

const HTTP_TRIGGERS = new Set<Trigger>(['apigateway-v1', 'apigateway-v2', 'function-url', 'alb', 'netlify-v1']);

interface Issue {
  path: string;
  message: string;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  );
}

function rejection(error: string, code: string): Error {
  return Object.assign(new Error(error), { code });
}

function recordId(record: any, trigger: Trigger): string | undefined {
  const id =
    trigger === 'sqs'
      ? record?.messageId
      : trigger === 'kinesis'
        ? record?.kinesis?.sequenceNumber
        : record?.dynamodb?.SequenceNumber;
  return typeof id === 'string' ? id : undefined;
}

/** Issues of a Standard Schema result or of a validator's `errors` (ajv's `instancePath`, or anything with a message). */
function issuesOf(list: unknown): Issue[] {
  if (!Array.isArray(list)) return [{ path: '', message: 'invalid' }];
  return list.map((issue: any) => {
    let path = '';
    if (Array.isArray(issue?.path))
      path = issue.path
        .map((segment: any) => String(typeof segment === 'object' && segment !== null ? segment.key : segment))
        .join('.');
    else if (typeof issue?.instancePath === 'string') path = issue.instancePath.replace(/^\//, '').replace(/\//g, '.');
    return { path, message: typeof issue?.message === 'string' ? issue.message : 'invalid' };
  });
}

function prepareValidator(schema: SchemaOption): (value: unknown) => Issue[] | PromiseLike<Issue[]> {
  if (typeof schema === 'function')
    return (value) => {
      const outcome = schema(value);
      return outcome?.valid === true ? [] : issuesOf(outcome?.errors);
    };
  const standard = (schema as StandardSchemaLike | undefined)?.['~standard'];
  if (typeof standard?.validate !== 'function')
    throw new TypeError('perimeter: `schema` must be a Standard Schema (zod, valibot, …) or a function');
  const fromResult = (result: StandardResult) => (result.issues ? issuesOf(result.issues) : []);
  return (value) => {
    const result = standard.validate(value);
    return isThenable(result) ? result.then(fromResult) : fromResult(result);
  };
}

function httpBody(event: any): { ok: true; value: unknown } | { ok: false } {
  if (typeof event?.body !== 'string' || event.body === '') return { ok: true, value: undefined };
  const text = event.isBase64Encoded === true ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

function badRequest(body: object): HttpRejection {
  return { statusCode: 400, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

/**
 * Prepares the screening for one wrapped handler, at wrap time: the inspector is loaded and the schema option
 * checked once, so a wrong option fails the function's init rather than an invocation. Undefined when there is
 * nothing to screen.
 */
export function prepareScreen(options: ScreenOptions): Screen | undefined {
  const { inspect, schema } = options;
  if (inspect === undefined && schema === undefined) return undefined;
  if (inspect !== undefined && inspect.mode !== 'block' && inspect.mode !== 'alert')
    throw new TypeError("perimeter: `inspect.mode` must be 'block' or 'alert'");
  const inspector = require('../inspector/index.js') as Inspector;
  const validate = schema === undefined ? undefined : prepareValidator(schema);

  const validateStep = (event: unknown, trigger: Trigger, failedIds: string[]): Screened | PromiseLike<Screened> => {
    if (validate === undefined) return { kind: 'pass', event, failedIds };
    const http = HTTP_TRIGGERS.has(trigger);
    let value = event;
    if (http) {
      const body = httpBody(event);
      if (!body.ok) {
        reportAttack({ type: 'validation', action: 'blocked', target: 'body', reason: 'not-json' });
        return {
          kind: 'respond',
          response: badRequest({ error: 'request body is not valid JSON', code: 'ERR_PERIMETER_VALIDATION' }),
        };
      }
      value = body.value;
    }
    const judge = (issues: Issue[]): Screened => {
      if (issues.length === 0) return { kind: 'pass', event, failedIds };
      const fields = [...new Set(issues.map((issue) => issue.path || '(root)'))];
      reportAttack({
        type: 'validation',
        action: 'blocked',
        target: `${http ? 'body' : 'event'} ${fields.join(', ')}`,
      });
      const summary = issues.map((issue) => `${issue.path || '(root)'}: ${issue.message}`).join('; ');
      return http
        ? {
            kind: 'respond',
            response: badRequest({
              error: `request body failed schema validation: ${summary}`,
              code: 'ERR_PERIMETER_VALIDATION',
              issues,
            }),
          }
        : { kind: 'fail', error: rejection(`event failed schema validation: ${summary}`, 'ERR_PERIMETER_VALIDATION') };
    };
    const issues = validate(value);
    return isThenable(issues) ? issues.then(judge) : judge(issues);
  };

  return (event, triggerOverride) => {
    const trigger = triggerOverride ?? inspect?.trigger ?? inspector.recognizeTrigger(event);
    if (inspect === undefined) return validateStep(event, trigger, []);
    const verdict = inspector.decide(inspector.inspectEvent(event, { ...inspect, trigger }), inspect);
    const action = verdict.action === 'block' ? 'blocked' : 'alerted';
    for (const attack of verdict.attacks)
      reportAttack({ type: 'attack', action, target: `${attack.class} ${attack.path}`, reason: attack.confidence });
    if (verdict.action !== 'block') return validateStep(event, trigger, []);
    if (verdict.response) return { kind: 'respond', response: verdict.response };
    if (verdict.failedRecords) {
      const records: unknown[] = (event as { Records: unknown[] }).Records;
      const failed = new Set(verdict.failedRecords[0] === -1 ? records.keys() : verdict.failedRecords);
      const failedIds: string[] = [];
      for (const index of failed) {
        const id = recordId(records[index], trigger);
        // A record the platform could not name cannot be reported alone: fail the batch rather than lose it.
        if (id === undefined)
          return { kind: 'fail', error: rejection('request rejected by input inspection', 'ERR_PERIMETER_INSPECTION') };
        failedIds.push(id);
      }
      const kept = records.filter((_, index) => !failed.has(index));
      if (kept.length === 0)
        return {
          kind: 'respond',
          response: { batchItemFailures: failedIds.map((itemIdentifier) => ({ itemIdentifier })) },
        };
      return validateStep({ ...(event as object), Records: kept }, trigger, failedIds);
    }
    const classes = [...new Set(verdict.attacks.map((attack) => attack.class))].join(', ');
    return {
      kind: 'fail',
      error: rejection(`event rejected by input inspection (${classes})`, 'ERR_PERIMETER_INSPECTION'),
    };
  };
}

/** The handler's partial batch response with the records the screening removed added to its failures. */
export function withBatchFailures(result: unknown, failedIds: readonly string[]): unknown {
  if (failedIds.length === 0) return result;
  const base = typeof result === 'object' && result !== null ? (result as Record<string, unknown>) : {};
  const existing = Array.isArray(base.batchItemFailures) ? base.batchItemFailures : [];
  const known = new Set(existing.map((failure: any) => failure?.itemIdentifier));
  const added = failedIds.filter((id) => !known.has(id)).map((itemIdentifier) => ({ itemIdentifier }));
  return { ...base, batchItemFailures: [...existing, ...added] };
}

/** Runs the screening, then `onScreened` with its outcome: synchronously when the screening was synchronous. */
export function afterScreening<T>(screened: Screened | PromiseLike<Screened>, onScreened: (s: Screened) => T): T {
  return (isThenable(screened) ? Promise.resolve(screened).then(onScreened) : onScreened(screened)) as T;
}

/**
 * A Lambda-style invocation (perimeter/lambda, Netlify v1): the rejection is the handler's result (a promise, or
 * through the callback for callback-style handlers), the removed records are merged into the handler's result.
 */
export function screenLambdaStyle(
  screen: Screen,
  args: unknown[],
  callbackIndex: number | undefined,
  call: () => unknown,
): unknown {
  const callback = callbackIndex === undefined ? undefined : (args[callbackIndex] as (...r: unknown[]) => unknown);
  return afterScreening(screen(args[0]), (screened) => {
    if (screened.kind === 'respond') {
      if (callback) return void callback(null, screened.response);
      return Promise.resolve(screened.response);
    }
    if (screened.kind === 'fail') {
      if (callback) return void callback(screened.error);
      return Promise.reject(screened.error);
    }
    args[0] = screened.event;
    const ids = screened.failedIds;
    if (callback && ids.length > 0)
      args[callbackIndex!] = (error: unknown, result: unknown) =>
        error ? callback(error) : callback(null, withBatchFailures(result, ids));
    const result = call();
    if (ids.length === 0) return result;
    return isThenable(result) ? Promise.resolve(result).then((value) => withBatchFailures(value, ids)) : result;
  });
}
