/**
 * @perimeter/cli as a library: the pieces `perimeter run` is made of, for tools that launch functions themselves
 * (a dev server, a test harness).
 */
export type { LaunchPlan, NodeCapabilities, PlanOptions } from './permission.js';
export { globToPermissionPath, planLaunch, probeNode } from './permission.js';
