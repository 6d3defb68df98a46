/**
 * The CLI's compiled modules, for unit tests. Tests run from build/test, so the code under test is loaded from
 * dist/ (what ships), with its types taken from src/.
 */
import type * as Errors from '../src/errors.js';
import type * as Events from '../src/learn/events.js';
import type * as Generalise from '../src/learn/generalise.js';
import type * as Learn from '../src/learn/learn.js';
import type * as Lint from '../src/learn/lint.js';
import type * as Policy from '../src/learn/policy.js';
import type * as Rules from '../src/learn/rules.js';
import type * as Static from '../src/learn/static.js';

const load = async <T>(relative: string): Promise<T> =>
  (await import(new URL(`../../dist/${relative}`, import.meta.url).href)) as T;

export const BIN = new URL('../../dist/bin.js', import.meta.url).pathname;
export const errors = await load<typeof Errors>('errors.js');
export const events = await load<typeof Events>('learn/events.js');
export const generalise = await load<typeof Generalise>('learn/generalise.js');
export const learn = await load<typeof Learn>('learn/learn.js');
export const lint = await load<typeof Lint>('learn/lint.js');
export const policy = await load<typeof Policy>('learn/policy.js');
export const rules = await load<typeof Rules>('learn/rules.js');
export const staticPass = await load<typeof Static>('learn/static.js');
