// Child process decisions: the shell parser finds every command a string would run, and evaluateProcess judges
// real programs on this machine (resolved through PATH, symlinks followed), wrappers and package rules.
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type * as CompileModule from '../../src/policy/compile.js';
import type * as ProcessModule from '../../src/policy/process.js';
import type * as ShellModule from '../../src/policy/shell.js';
import { tempDir } from '../helpers.js';

const { parseShell } = require('../../../dist/policy/shell.js') as typeof ShellModule;
const { evaluateProcess, resolveExecutable } = require('../../../dist/policy/process.js') as typeof ProcessModule;
const { compilePolicy } = require('../../../dist/policy/compile.js') as typeof CompileModule;

function commandsOf(script: string): string[][] | string {
  const parsed = parseShell(script);
  if (!parsed.ok) return `unjudgeable: ${parsed.reason}`;
  return parsed.commands.map((c) => c.words.map((w) => (w.dynamic ? `~${w.text}` : w.text)));
}

describe('parseShell finds every command word', () => {
  test('lists, pipes, background, newlines, subshells', () => {
    assert.deepEqual(commandsOf('a 1; b 2 && c || d | e & f\ng'), [
      ['a', '1'],
      ['b', '2'],
      ['c'],
      ['d'],
      ['e'],
      ['f'],
      ['g'],
    ]);
    assert.deepEqual(commandsOf('(a; (b)) | c'), [['a'], ['b'], ['c']]);
    assert.deepEqual(commandsOf('if a; then b; else c; fi'), [['a'], ['b'], ['c']]);
    assert.deepEqual(commandsOf('while a; do b; done'), [['a'], ['b']]);
    assert.deepEqual(commandsOf('for x in 1 2 $(a); do b "$x"; done'), [['a'], ['b', '~']]);
    assert.deepEqual(commandsOf('! a; { b; }'), [['a'], ['b']]);
  });

  test('quotes and escapes are removed; operators inside quotes are text', () => {
    assert.deepEqual(commandsOf(`echo 'a;b' "c && d" e\\;f`), [['echo', 'a;b', 'c && d', 'e;f']]);
    assert.deepEqual(commandsOf(`"cu"'rl' x`), [['curl', 'x']]);
    assert.deepEqual(commandsOf('cu\\\nrl x'), [['curl', 'x']]);
  });

  test('substitutions are parsed: their commands run too', () => {
    assert.deepEqual(commandsOf('echo $(curl x) `wget y`'), [
      ['curl', 'x'],
      ['wget', 'y'],
      ['echo', '~', '~'],
    ]);
    assert.deepEqual(commandsOf('echo "$(curl x)"'), [
      ['curl', 'x'],
      ['echo', '~'],
    ]);
    assert.deepEqual(commandsOf('cat <(curl x) > out'), [
      ['curl', 'x'],
      ['cat', '~'],
    ]);
    assert.deepEqual(commandsOf('X=$(curl x) a'), [['curl', 'x'], ['a']]);
  });

  test('redirection targets and here-document bodies are not commands', () => {
    assert.deepEqual(commandsOf('a > curl 2>&1 < wget >> b &> c'), [['a']]);
    assert.deepEqual(commandsOf("cat <<'EOF'\ncurl x\nEOF\nb"), [['cat'], ['b']]);
    assert.deepEqual(commandsOf('a # curl x\nb'), [['a'], ['b']]);
  });

  test('what cannot be judged statically', () => {
    for (const script of [
      'x=curl; $x y',
      `\${CMD} y`,
      '$(echo curl) y',
      'eval "curl x"',
      'exec curl x',
      'source ./x',
      '. ./x',
      'trap "curl x" EXIT',
      'f() { curl x; }; f',
      'case $x in a) b;; esac',
      'NODE_OPTIONS= node x',
      'export NODE_OPTIONS=',
      'unset NODE_OPTIONS',
      'PATH=/tmp/evil:$PATH curl',
      'LD_PRELOAD=/tmp/x.so true',
      'echo $((a[$(curl x)]))',
      '[[ $x -eq 1 ]]',
      '{curl,x}',
      '/usr/bin/cur? x',
      'sh <<EOF\n$(curl x)\nEOF',
      "echo 'unterminated",
    ]) {
      assert.match(String(commandsOf(script)), /^unjudgeable/, script);
    }
  });
});

describe('evaluateProcess', () => {
  const dir = tempDir('perimeter-process-unit-');
  const policyOf = (allow: string[], extra: Record<string, unknown> = {}) =>
    compilePolicy({ mode: 'block', process: { allow }, ...extra } as any, join(dir, 'perimeter.json')).process;
  const PATH = '/usr/local/bin:/usr/bin:/bin';
  const envOf = (vars: Record<string, string> = {}) => {
    const all: Record<string, string> = { PATH, ...vars };
    return { env: (n: string) => all[n], names: () => Object.keys(all) };
  };
  const decide = (
    policy: ReturnType<typeof policyOf>,
    file: string,
    args: string[],
    vars?: Record<string, string>,
    packages: string[] = [],
  ) => {
    const { env, names } = envOf(vars);
    return evaluateProcess(policy, { file, args, env, cwd: dir }, names, () => packages);
  };

  test('bare names resolve through PATH, symlinks are followed, and unknown programs are denied', () => {
    assert.equal(resolveExecutable('echo', PATH, dir), '/usr/bin/echo');
    const policy = policyOf(['echo']);
    assert.equal(decide(policy, 'echo', ['hi']).allowed, true);
    assert.equal(decide(policy, '/bin/echo', ['hi']).allowed, true);
    assert.equal(decide(policy, 'touch', ['x']).allowed, false);
    const link = join(dir, 'innocent');
    symlinkSync('/usr/bin/touch', link);
    const viaLink = decide(policy, link, ['x']);
    assert.equal(viaLink.allowed, false);
    assert.match((viaLink as any).target, /^\/usr\/bin\/touch x/);
    assert.equal((decide(policy, 'no-such-program-here', []) as any).reason, 'not-found');
  });

  test('no rules: every program is denied', () => {
    assert.equal(decide(policyOf([]), 'echo', []).allowed, false);
  });

  test('argument globs: * within one argument, ** for the rest', () => {
    const policy = policyOf(['/usr/bin/git status', '/usr/bin/git log **', 'echo "a b" *.txt']);
    assert.equal(resolveExecutable('git', PATH, dir) === null || decide(policy, 'git', ['status']).allowed, true);
    if (resolveExecutable('git', PATH, dir) !== null) {
      assert.equal(decide(policy, 'git', ['status', '-s']).allowed, false);
      assert.equal(decide(policy, 'git', ['log', '--oneline', '-3']).allowed, true);
      assert.equal(decide(policy, 'git', ['push']).allowed, false);
    }
    assert.equal(decide(policy, 'echo', ['a b', 'x.txt']).allowed, true);
    assert.equal(decide(policy, 'echo', ['a b', 'x.sh']).allowed, false);
    assert.equal(decide(policy, 'echo', ['a', 'b', 'x.txt']).allowed, false);
  });

  test('a shell is judged by its script unless the shell itself is allowed with any arguments', () => {
    const policy = policyOf(['echo']);
    assert.equal(decide(policy, '/bin/sh', ['-c', 'echo a && echo b']).allowed, true);
    assert.equal(decide(policy, '/bin/sh', ['-c', 'echo a; touch x']).allowed, false);
    assert.equal(decide(policy, 'bash', ['-ec', 'echo $(touch x)']).allowed, false);
    assert.equal(decide(policy, '/bin/sh', ['script.sh']).allowed, false);
    assert.equal(decide(policy, '/bin/sh', ['-i']).allowed, false);
    assert.equal(decide(policy, '/bin/sh', ['-c', 'x=touch; $x y']).allowed, false);
    const trusted = policyOf(['/bin/sh']);
    assert.equal(decide(trusted, 'sh', ['-c', 'x=touch; $x y']).allowed, true);
    // dash is what /bin/sh is on Debian: trusting /bin/sh trusts that program, not bash.
    assert.equal(decide(trusted, 'bash', ['-c', 'touch y']).allowed, false);
  });

  test('wrappers: the wrapper must be allowed and so must what it runs', () => {
    const policy = policyOf(['echo', 'env', 'nice', 'timeout', 'xargs', 'find', 'nohup', 'stdbuf']);
    assert.equal(decide(policy, 'env', ['FOO=1', 'echo', 'x']).allowed, true);
    assert.equal(decide(policy, 'env', ['touch', 'x']).allowed, false);
    assert.equal(decide(policy, 'env', ['-u', 'NODE_OPTIONS', 'echo']).allowed, false);
    assert.equal(decide(policy, 'env', ['-i', 'echo']).allowed, false);
    assert.equal(decide(policy, 'env', ['NODE_OPTIONS=', 'echo']).allowed, false);
    assert.equal(decide(policy, 'nice', ['-n', '5', 'touch', 'x']).allowed, false);
    assert.equal(decide(policy, 'nice', ['-n', '5', 'echo', 'x']).allowed, true);
    assert.equal(decide(policy, 'timeout', ['-s', 'KILL', '5', 'touch', 'x']).allowed, false);
    assert.equal(decide(policy, 'timeout', ['5', 'echo']).allowed, true);
    assert.equal(decide(policy, 'nohup', ['touch', 'x']).allowed, false);
    assert.equal(decide(policy, 'stdbuf', ['-o', 'L', 'touch', 'x']).allowed, false);
    assert.equal(decide(policy, 'xargs', ['-n', '1', 'touch']).allowed, false);
    assert.equal(decide(policy, 'xargs', ['-I{}', '{}']).allowed, false);
    assert.equal(decide(policy, 'xargs', ['echo']).allowed, true);
    assert.equal(decide(policy, 'find', ['.', '-name', '*.js', '-exec', 'touch', '{}', ';']).allowed, false);
    assert.equal(decide(policy, 'find', ['.', '-exec', 'echo', '{}', '+']).allowed, true);
    assert.equal(decide(policy, '/bin/sh', ['-c', 'env sh -c "touch x"']).allowed, false);
    assert.equal(decide(policyOf(['touch']), 'env', ['touch', 'x']).allowed, false, 'env itself not allowed');
  });

  test('a child environment that loads other code into an allowed program is denied', () => {
    const policy = policyOf(['echo', '/bin/sh']);
    assert.equal((decide(policy, 'echo', [], { LD_PRELOAD: '/tmp/x.so' }) as any).reason, 'unsafe-env');
    assert.equal((decide(policy, 'sh', ['-c', 'true'], { BASH_ENV: '/tmp/x.sh' }) as any).reason, 'unsafe-env');
    assert.equal(decide(policy, 'sh', ['-c', 'true'], { 'BASH_FUNC_true%%': '() { touch x; }' }).allowed, false);
  });

  test('PATH from the child environment decides which program a name is', () => {
    const evilBin = tempDir('perimeter-evil-bin-');
    writeFileSync(join(evilBin, 'echo'), '#!/bin/sh\ntouch pwned\n', { mode: 0o755 });
    const policy = policyOf(['echo']);
    const shadowed = decide(policy, 'echo', ['x'], { PATH: `${evilBin}:${PATH}` });
    assert.equal(shadowed.allowed, false);
    assert.match((shadowed as any).target, new RegExp(`^${evilBin}/echo`));
  });

  test('package rules narrow: every package on the stack with rules must allow the program', () => {
    const policy = compilePolicy(
      {
        mode: 'block',
        process: { allow: ['echo', 'touch'] },
        packages: { '*': { process: { allow: [] } }, imagetool: { process: { allow: ['touch'] } } },
      } as any,
      join(dir, 'perimeter.json'),
    ).process;
    assert.equal(decide(policy, 'echo', [], {}, []).allowed, true, 'the app itself');
    const byDep = decide(policy, 'echo', [], {}, ['left-pad']);
    assert.equal(byDep.allowed, false);
    assert.equal((byDep as any).deniedBy, 'left-pad');
    assert.equal(decide(policy, 'touch', ['x'], {}, ['imagetool']).allowed, true);
    assert.equal(decide(policy, 'echo', [], {}, ['imagetool']).allowed, false);
  });
});
