/**
 * Perimeter's public API. Everything not exported here is internal.
 */

export type { PerimeterError, PerimeterErrorCode } from './errors.js';
export { codes, isPerimeterError, PERIMETER_ERROR } from './errors.js';
export type { PerimeterEvent } from './events.js';
export { flushEvents, onEvent } from './events.js';
export type { Mode, PolicyDocument } from './policy/compile.js';
export { findPolicyFile, parsePolicy as loadPolicyFromObject, readPolicyFile as loadPolicy } from './policy/load.js';
export { policySchema } from './policy/schema.js';
export type { GuardInfo, GuardOptions } from './runtime.js';
export { guard, startFromEnvironment } from './runtime.js';
export type { InvocationOptions, PreparedPolicy } from './scope.js';
export { enterInvocation, preparePolicy, runInInvocationScope as withInvocation, withPolicy } from './scope.js';
