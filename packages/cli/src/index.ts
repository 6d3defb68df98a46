/**
 * @perimeter/cli as a library: the pieces `perimeter run` is made of, for tools that launch functions themselves
 * (a dev server, a test harness).
 */

export type { DevOptions, DevServer, DevSink, InvokeResult } from './dev/host.js';
export { startDev } from './dev/host.js';
export type {
  CountByName,
  EventQuery,
  EventRecord,
  EventStoreApi,
  EventStoreOptions,
  FunctionRecord,
  InvocationRecord,
  StoredEvent,
  Summary,
  SummaryQuery,
} from './dev/types.js';
export type { LaunchPlan, NodeCapabilities, PlanOptions } from './permission.js';
export { globToPermissionPath, planLaunch, probeNode } from './permission.js';
