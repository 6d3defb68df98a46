/**
 * What the child-process guard needs from the moment the guard starts. The guard itself (intercept/child_process.ts
 * and policy/process.ts) is a separate chunk loaded when child_process is first handed to user code, which is after
 * the fs guard wrapped `fs` and after dependencies ran: what must be as it was at start is captured here, in the
 * main bundle.
 */
import { getBuiltinModule, processEnvRaw } from '../pristine.js';

const fs = getBuiltinModule('fs') as typeof import('node:fs');
// The originals, taken before the fs guard wraps them: writing the guard's own policy copy is not the code's write.
// (`fs.writeFileSync` would call the wrapped `fs.openSync` through the module object.)
export const fsMkdtempSync = fs.mkdtempSync;
export const fsCloseSync = fs.closeSync;
export const ObjectKeys = Object.keys;
export const fileURLToPathPristine = (getBuiltinModule('url') as typeof import('node:url')).fileURLToPath;

/** PERIMETER_* as the process started: what every child gets, whatever a dependency set since. */
export const startupPerimeterVars: ReadonlyArray<[string, string]> = (() => {
  const vars: Array<[string, string]> = [];
  for (const name of ObjectKeys(processEnvRaw)) {
    if (name.startsWith('PERIMETER_') && name !== 'PERIMETER_POLICY') vars.push([name, String(processEnvRaw[name])]);
  }
  return vars;
})();
