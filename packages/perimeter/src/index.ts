/**
 * Perimeter's public API. Everything not exported here is internal.
 */

export type { PerimeterError, PerimeterErrorCode } from './errors.js';
export { codes, isPerimeterError, PERIMETER_ERROR } from './errors.js';
export type { PerimeterEvent } from './events.js';
export { flushEvents, onEvent } from './events.js';

import { emit } from './events.js';

/**
 * Reports what the event inspector found (type `attack`) or a body that failed the adapter's schema (type
 * `validation`) through the event sink, so they share its dedup, rate cap, redaction and invocation naming. The target
 * names a class and a field path, never the payload.
 */
export function reportAttack(report: {
  type: 'attack' | 'validation';
  action: 'blocked' | 'alerted';
  target: string;
  reason?: string;
}): void {
  emit({
    type: report.type,
    capability: 'inspector',
    action: report.action,
    target: report.target,
    package: 'app',
    reason: report.reason,
  });
}
export type { Mode, PolicyDocument } from './policy/compile.js';
export { findPolicyFile, parsePolicy as loadPolicyFromObject, readPolicyFile as loadPolicy } from './policy/load.js';
export { policySchema } from './policy/schema.js';
export type { GuardInfo, GuardOptions } from './runtime.js';
export { guard, startFromEnvironment } from './runtime.js';
export type { InvocationOptions, PreparedPolicy } from './scope.js';
export { enterInvocation, preparePolicy, runInInvocationScope as withInvocation, withPolicy } from './scope.js';
