/**
 * From findings to an action, for the adapters' middleware (not wired into them yet): which findings count
 * (confidence threshold, per-field allow rules for fields that legitimately carry code or SQL), and what a blocked
 * event becomes per trigger — a 400 response for HTTP triggers, the failed records of an SQS/Kinesis/DynamoDB
 * partial batch response for batches (one bad message never drops the whole batch).
 */
import type { Attack, AttackClass, Confidence, InspectionResult, InspectOptions, Trigger } from './types.js';

export interface FieldAllowRule {
  /**
   * A field path as reported in findings, array indices written `[]`: `body.post.content`, `Records[].body.sql`.
   * `*` matches one dot-separated segment, `**` any number of segments.
   */
  path: string;
  /** Classes allowed in that field; all classes when omitted. */
  classes?: AttackClass[];
}

export interface InspectPolicy extends InspectOptions {
  /** block: act on findings; alert: report them only; off: do not inspect. Default block. */
  mode?: 'block' | 'alert' | 'off';
  /** Findings below this confidence are ignored. Default medium. */
  minConfidence?: Confidence;
  allow?: FieldAllowRule[];
  /** Whether a field too large to scan blocks the event. Default false: it is reported only. */
  blockOversize?: boolean;
}

export interface Verdict {
  action: 'allow' | 'alert' | 'block';
  trigger: Trigger;
  /** The findings that count under the policy. */
  attacks: Attack[];
  /** HTTP triggers, when blocked: the response to return instead of calling the handler. */
  response?: { statusCode: number; headers: Record<string, string>; body: string };
  /** Batch triggers, when blocked: the records to report as failed; the others go to the handler. */
  failedRecords?: number[];
}

const RANK: Record<Confidence, number> = { low: 0, medium: 1, high: 2 };
const HTTP_TRIGGERS = new Set<Trigger>(['apigateway-v1', 'apigateway-v2', 'function-url', 'alb']);
// The triggers with partial batch responses (ReportBatchItemFailures); SNS, S3 and EventBridge deliver no such thing.
const BATCH_TRIGGERS = new Set<Trigger>(['sqs', 'kinesis', 'dynamodb']);

function segmentsOf(path: string): string[] {
  return path.replace(/\[\d+\]/g, '[]').split('.');
}

function matches(pattern: readonly string[], path: readonly string[], p = 0, q = 0): boolean {
  // Iterative over `**` with one backtrack point: linear in practice, patterns are written by the developer.
  while (p < pattern.length) {
    const part = pattern[p]!;
    if (part === '**') {
      if (p === pattern.length - 1) return true;
      for (let k = q; k <= path.length; k++) if (matches(pattern, path, p + 1, k)) return true;
      return false;
    }
    if (q >= path.length || (part !== '*' && part !== path[q])) return false;
    p++;
    q++;
  }
  return q === path.length;
}

export function isAllowed(attack: Attack, rules: readonly FieldAllowRule[]): boolean {
  const path = segmentsOf(attack.path);
  return rules.some(
    (rule) =>
      (rule.classes === undefined || rule.classes.includes(attack.class)) && matches(segmentsOf(rule.path), path),
  );
}

/** The record index of a batch finding's path (`Records[3].body…` → 3), or -1. */
function recordIndex(path: string): number {
  if (!path.startsWith('Records[')) return -1;
  const close = path.indexOf(']');
  const index = Number(path.slice(8, close));
  return Number.isInteger(index) ? index : -1;
}

export function decide(result: InspectionResult, policy: InspectPolicy = {}): Verdict {
  const mode = policy.mode ?? 'block';
  const threshold = RANK[policy.minConfidence ?? 'medium'];
  // An inspection that did not finish counts like a finding (fail closed), whatever blockOversize says.
  const attacks = result.attacks.filter((attack) =>
    attack.class === 'oversize'
      ? policy.blockOversize === true ||
        (result.error !== undefined && attack.path === '' && attack.fragment === result.error)
      : RANK[attack.confidence] >= threshold && !isAllowed(attack, policy.allow ?? []),
  );
  if (mode === 'off' || attacks.length === 0) return { action: 'allow', trigger: result.trigger, attacks: [] };
  if (mode === 'alert') return { action: 'alert', trigger: result.trigger, attacks };
  const verdict: Verdict = { action: 'block', trigger: result.trigger, attacks };
  if (HTTP_TRIGGERS.has(result.trigger)) {
    const classes = [...new Set(attacks.map((attack) => attack.class))];
    verdict.response = {
      statusCode: 400,
      headers: { 'content-type': 'application/json' },
      // Classes and paths only: echoing the fragment back would reflect the payload.
      body: JSON.stringify({
        error: 'request rejected by input inspection',
        code: 'ERR_PERIMETER_INSPECTION',
        classes,
        fields: attacks.map((attack) => attack.path),
      }),
    };
  } else if (BATCH_TRIGGERS.has(result.trigger)) {
    const indices = new Set<number>();
    for (const attack of attacks) indices.add(recordIndex(attack.path));
    // A finding outside any record (the envelope itself) fails every record: -1 stands for all.
    verdict.failedRecords = indices.has(-1) ? [-1] : [...indices].sort((a, b) => a - b);
  }
  return verdict;
}
