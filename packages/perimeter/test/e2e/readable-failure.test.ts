import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runGuarded } from '../helpers.js';

// A denial nobody catches ends the process the way any uncaught error does; what it prints lands in the
// function's logs. It must be short and readable: the code, the hint, named frames, never a wall of bundle.
test('an uncaught denial prints a short, readable error', async () => {
  const run = await runGuarded({
    policy: { mode: 'block' },
    script: 'main.cjs',
    files: { 'main.cjs': `require('node:fs').writeFileSync(__dirname + '/out.txt', 'x');` },
  });
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /ERR_PERIMETER_BLOCKED/);
  assert.match(run.stderr, /hint: if this is expected, add ".*out\.txt" to fs\.write/);
  assert.match(run.stderr, /at reportDenial \(/, 'the guard frames keep their names');
  const longest = Math.max(...run.stderr.split('\n').map((line) => line.length));
  assert.ok(longest < 1000, `no line of stderr is a dump of the runtime (longest: ${longest} characters)`);
});
