// File system decisions (policy/fs.ts) on real files in a temp tree: defaults, always-denied areas, rules,
// symlinks, `..`, /proc names, package narrowing, and which decisions may be remembered.
import assert from 'node:assert/strict';
import { mkdirSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { after, beforeEach, describe, test } from 'node:test';
import type * as AccessModule from '../../src/intercept/fs.js';
import type { PolicyDocument } from '../../src/policy/compile.js';
import type * as FsModule from '../../src/policy/fs.js';
import { tempDir } from '../helpers.js';

const {
  compileFs,
  decideFs,
  canonicalProc,
  forgetFsDecisions,
  namespaceChangeEnds,
  namespaceChangeStarts,
  realPath,
  stopRememberingWritablePaths,
} = require('../../../dist/policy/fs.js') as typeof FsModule;
const { accessForFlags } = require('../../../dist/intercept/fs.js') as typeof AccessModule;

const root = realpathSync(tempDir('perimeter-fs-policy-'));
const home = `${root}/home`;
const code = `${root}/code`;
const scratch = `${root}/scratch`;
for (const dir of [home, `${home}/.aws`, `${home}/.cache`, code, `${code}/data`, scratch, `${root}/node_modules/dep`]) {
  mkdirSync(dir, { recursive: true });
}
writeFileSync(`${home}/.npmrc`, '//registry.npmjs.org/:_authToken=npm_fake\n');
writeFileSync(`${home}/.aws/credentials`, '[default]\n');
writeFileSync(`${home}/.cache/x`, 'cache');
writeFileSync(`${home}/notes.txt`, 'notes');
writeFileSync(`${code}/handler.js`, '');
writeFileSync(`${code}/data/config.json`, '{}');
writeFileSync(`${root}/node_modules/dep/index.js`, '');
writeFileSync(`${root}/elsewhere.txt`, 'x');
after(() => rmSync(root, { recursive: true, force: true }));

const PID = 4242;

function compile(document: PolicyDocument = {}) {
  return compileFs(document, {
    home,
    main: `${code}/handler.js`,
    cwd: code,
    taskRoot: undefined,
    nodePath: [],
    execPath: process.execPath,
    guardDir: `${root}/guard`,
    pid: PID,
  });
}

const noStack = () => {
  throw new Error('the call stack was read although no package rule applies');
};

function allowed(
  policy: ReturnType<typeof compile>,
  access: 'read' | 'write',
  path: string,
  follow = true,
  stack: () => readonly string[] = noStack,
) {
  return decideFs(policy, access, path, follow, stack).verdict.allowed;
}

beforeEach(() => forgetFsDecisions());

describe('defaults', () => {
  test('the code folder, node_modules above it and Node itself are readable; nothing is writable', () => {
    const policy = compile();
    assert.equal(allowed(policy, 'read', `${code}/data/config.json`), true);
    assert.equal(allowed(policy, 'read', `${root}/node_modules/dep/index.js`), true);
    assert.equal(allowed(policy, 'read', realpathSync(process.execPath)), true);
    assert.equal(allowed(policy, 'read', '/dev/urandom'), true);
    assert.equal(allowed(policy, 'read', `${root}/elsewhere.txt`), false);
    assert.equal(allowed(policy, 'read', '/etc/passwd'), false);
    assert.equal(allowed(policy, 'write', `${code}/data/config.json`), false);
    assert.equal(allowed(policy, 'write', `${scratch}/new.txt`), false);
    assert.equal(allowed(policy, 'write', '/dev/null'), true);
    assert.equal(allowed(policy, 'write', '/dev/stdout'), true);
    assert.equal(allowed(policy, 'read', '/dev/stdout'), false);
    // Writing through the device is fine; removing or replacing the entry is not.
    assert.equal(allowed(policy, 'write', '/dev/null', false), false);
    assert.equal(allowed(policy, 'write', '/dev/stdout', false), false);
  });

  test('HOME, its secrets, /proc/self and /etc/shadow are denied', () => {
    const policy = compile();
    for (const path of [`${home}/notes.txt`, `${home}/.npmrc`, `${home}/.aws/credentials`, '/etc/shadow']) {
      const decision = decideFs(policy, 'read', path, true, noStack);
      assert.equal(decision.verdict.allowed, false, path);
      assert.equal((decision.verdict as { reason: string }).reason, 'sensitive-path', path);
    }
    assert.equal(allowed(policy, 'read', '/proc/self/environ'), false);
    assert.equal(allowed(policy, 'read', `/proc/${process.pid}/environ`), false);
    assert.equal(allowed(policy, 'read', '/proc/1/environ'), false);
  });
});

describe('always-denied areas', () => {
  test('a path outside every zone is judged by the rules; one under a zone by the zone, whatever its first component', () => {
    const policy = compile();
    const reason = (path: string) =>
      (decideFs(policy, 'read', path, true, noStack).verdict as { reason?: string }).reason;
    assert.equal(reason(`${root}/elsewhere.txt`), 'no-rule');
    assert.equal(reason(home), 'sensitive-path');
    assert.equal(reason(`${home}/.aws/credentials`), 'sensitive-path');
    assert.equal(reason('/etc/shadow'), 'sensitive-path');
    assert.equal(reason('/etc/passwd'), 'no-rule', 'same first component as /etc/shadow, outside it');
    assert.equal(reason('/opt/perimeter-no-such-dir/file'), 'no-rule');
  });

  test('a HOME that really is / makes every path sensitive', () => {
    const slash = `${root}/slash-home`;
    symlinkSync('/', slash);
    try {
      const policy = compileFs(
        {},
        {
          home: slash,
          main: `${code}/handler.js`,
          cwd: code,
          taskRoot: undefined,
          nodePath: [],
          execPath: process.execPath,
          guardDir: `${root}/guard`,
          pid: PID,
        },
      );
      // Under a first component no other zone has, so only the zone `/` can cover it.
      for (const path of [`${root}/elsewhere.txt`, '/opt/perimeter-no-such-dir/file']) {
        const decision = decideFs(policy, 'read', path, true, noStack);
        assert.equal((decision.verdict as { reason?: string }).reason, 'sensitive-path', path);
      }
    } finally {
      unlinkSync(slash);
    }
  });
});

describe('rules', () => {
  test('relative rules are anchored at the code folder, `~` at HOME; write does not imply read', () => {
    const policy = compile({ fs: { read: ['~/.cache/**'], write: ['../scratch/**'] } });
    assert.equal(allowed(policy, 'read', `${home}/.cache/x`), true);
    assert.equal(allowed(policy, 'write', `${scratch}/out.txt`), true);
    assert.equal(allowed(policy, 'read', `${scratch}/out.txt`), false);
    assert.equal(allowed(policy, 'read', `${home}/notes.txt`), false);
  });

  test('a broad rule does not open an always-denied area; a rule that names it does', () => {
    const broad = compile({ fs: { read: ['/**'], write: ['/**'] } });
    assert.equal(allowed(broad, 'read', `${root}/elsewhere.txt`), true);
    assert.equal(allowed(broad, 'read', `${home}/notes.txt`), false);
    assert.equal(allowed(broad, 'read', '/proc/self/environ'), false);
    assert.equal(allowed(broad, 'write', `${home}/.npmrc`), false);
    const homeRule = compile({ fs: { read: ['~/**'] } });
    assert.equal(allowed(homeRule, 'read', `${home}/notes.txt`), true);
    assert.equal(allowed(homeRule, 'read', `${home}/.npmrc`), false, '~/** does not reach into ~/.npmrc');
    assert.equal(allowed(homeRule, 'read', `${home}/.aws/credentials`), false, '~/** does not reach into ~/.aws');
    const named = compile({ fs: { read: ['~/.npmrc', '~/.aws/**', '/proc/self/status'] } });
    assert.equal(allowed(named, 'read', `${home}/.npmrc`), true);
    assert.equal(allowed(named, 'read', `${home}/.aws/credentials`), true);
    assert.equal(allowed(named, 'read', '/proc/self/status'), true);
    assert.equal(allowed(named, 'read', '/proc/self/environ'), false);
  });
});

describe('paths are judged where they really lead', () => {
  test('a symlink to a secret is the secret; a symlinked folder is its target', () => {
    symlinkSync(`${home}/.npmrc`, `${scratch}/npmrc-link`);
    symlinkSync(`${home}/.aws`, `${scratch}/aws-dir`);
    const policy = compile({ fs: { read: [`${scratch}/**`] } });
    assert.equal(allowed(policy, 'read', `${scratch}/npmrc-link`), false);
    assert.equal(allowed(policy, 'read', `${scratch}/aws-dir/credentials`), false);
    assert.equal(decideFs(policy, 'read', `${scratch}/npmrc-link`, true, noStack).real, `${home}/.npmrc`);
    // The link itself (lstat, unlink) is the entry in scratch, not the secret.
    assert.equal(allowed(policy, 'read', `${scratch}/npmrc-link`, false), true);
    assert.equal(realPath(`${scratch}/npmrc-link`, false, PID), `${scratch}/npmrc-link`);
  });

  test('`..` after a symlink is applied to its target, as the kernel does', () => {
    mkdirSync(`${home}/.aws/sub`, { recursive: true });
    symlinkSync(`${home}/.aws/sub`, `${scratch}/sub-link`);
    const policy = compile({ fs: { read: [`${scratch}/**`, `${root}/**`] } });
    const decision = decideFs(policy, 'read', `${scratch}/sub-link/../credentials`, true, noStack);
    assert.equal(decision.real, `${home}/.aws/credentials`);
    assert.equal(decision.verdict.allowed, false);
    assert.equal(allowed(policy, 'read', `${code}/../elsewhere.txt`), true);
  });

  test('a dangling symlink is judged as the file writing through it would create', () => {
    symlinkSync(`${home}/.ssh/authorized_keys`, `${scratch}/dangling`);
    const policy = compile({ fs: { write: [`${scratch}/**`] } });
    assert.equal(realPath(`${scratch}/dangling`, true, PID), `${home}/.ssh/authorized_keys`);
    assert.equal(allowed(policy, 'write', `${scratch}/dangling`), false);
    assert.equal(allowed(policy, 'write', `${scratch}/not-yet/new.txt`), true);
  });

  test('every name of this process under /proc is /proc/self', () => {
    assert.equal(canonicalProc(`/proc/${PID}/environ`, PID), '/proc/self/environ');
    assert.equal(canonicalProc('/proc/thread-self/environ', PID), '/proc/self/environ');
    assert.equal(canonicalProc(`/proc/${PID}/task/${PID + 1}/environ`, PID), '/proc/self/environ');
    assert.equal(canonicalProc('/proc/self/cwd', PID), '/proc/self/cwd');
    assert.equal(canonicalProc('/proc/77/environ', PID), '/proc/77/environ');
    assert.equal(canonicalProc('/proc/cpuinfo', PID), '/proc/cpuinfo');
  });
});

describe('packages narrow', () => {
  test('a package rule denies what the function allows; defaults need no call stack', () => {
    const policy = compile({
      fs: { read: [`${root}/elsewhere.txt`, `${scratch}/**`] },
      packages: { reporter: { fs: { read: [`${scratch}/**`] } } },
    });
    const fromReporter = () => ['reporter'];
    const decision = decideFs(policy, 'read', `${root}/elsewhere.txt`, true, fromReporter);
    assert.deepEqual(decision.verdict, { allowed: false, reason: 'package-rule', deniedBy: 'reporter' });
    assert.equal(
      allowed(policy, 'read', `${root}/elsewhere.txt`, true, () => ['other']),
      true,
    );
    assert.equal(allowed(policy, 'read', `${code}/data/config.json`, true, noStack), true);
  });

  test('a remembered decision allowed by a function rule still asks the packages', () => {
    const policy = compile({ fs: { read: [`${root}/**`] }, packages: { '*': { fs: { read: [] } } } });
    assert.equal(
      allowed(policy, 'read', `${root}/elsewhere.txt`, true, () => []),
      true,
    );
    assert.equal(
      allowed(policy, 'read', `${root}/elsewhere.txt`, true, () => ['any-dep']),
      false,
    );
  });
});

describe('remembered decisions', () => {
  // These swaps use the test's own, unguarded fs: to the decision layer they are changes nobody announced,
  // like another process's. What intercept/fs.ts announces is namespaceChangeStarts/Ends.
  const swap = (path: string) => {
    unlinkSync(path);
    symlinkSync(`${home}/.npmrc`, path);
  };

  test('a file the process may change is remembered until a namespace change is announced', () => {
    const policy = compile({ fs: { read: [`${scratch}/**`], write: [`${scratch}/**`] } });
    writeFileSync(`${scratch}/swap`, 'plain');
    assert.equal(allowed(policy, 'read', `${scratch}/swap`), true);
    swap(`${scratch}/swap`);
    // Unannounced (another process): the remembered answer stands, the documented limit.
    assert.equal(allowed(policy, 'read', `${scratch}/swap`), true);
    namespaceChangeStarts();
    namespaceChangeEnds();
    assert.equal(allowed(policy, 'read', `${scratch}/swap`), false);
    unlinkSync(`${scratch}/swap`);
  });

  test('nothing is remembered while a namespace change is in flight', () => {
    const policy = compile({ fs: { read: [`${scratch}/**`], write: [`${scratch}/**`] } });
    writeFileSync(`${scratch}/flight`, 'plain');
    namespaceChangeStarts();
    assert.equal(allowed(policy, 'read', `${scratch}/flight`), true);
    swap(`${scratch}/flight`);
    assert.equal(allowed(policy, 'read', `${scratch}/flight`), false);
    namespaceChangeEnds();
    unlinkSync(`${scratch}/flight`);
  });

  test('a writable path is remembered only when every component existed and none was a symlink', () => {
    const policy = compile({ fs: { read: [`${scratch}/**`], write: [`${scratch}/**`] } });
    // Missing when judged: a later symlink under that name must be judged afresh.
    assert.equal(allowed(policy, 'read', `${scratch}/later`), true);
    symlinkSync(`${home}/.npmrc`, `${scratch}/later`);
    assert.equal(allowed(policy, 'read', `${scratch}/later`), false);
    unlinkSync(`${scratch}/later`);
    // Through a symlinked folder: judged on its real path every time.
    mkdirSync(`${scratch}/real`, { recursive: true });
    writeFileSync(`${scratch}/real/f`, 'plain');
    symlinkSync(`${scratch}/real`, `${scratch}/via`);
    assert.equal(allowed(policy, 'read', `${scratch}/via/f`), true);
    unlinkSync(`${scratch}/via`);
    symlinkSync(`${home}`, `${scratch}/via`);
    writeFileSync(`${home}/f`, 'secret');
    assert.equal(allowed(policy, 'read', `${scratch}/via/f`), false);
    unlinkSync(`${scratch}/via`);
    unlinkSync(`${home}/f`);
  });

  // Last: turning remembering off is for good, for the rest of this process.
  test('after a child process, worker, addon or raw binding, writable paths are judged afresh for good', () => {
    const policy = compile({ fs: { read: [`${scratch}/**`], write: [`${scratch}/**`] } });
    writeFileSync(`${scratch}/child`, 'plain');
    assert.equal(allowed(policy, 'read', `${scratch}/child`), true);
    stopRememberingWritablePaths();
    swap(`${scratch}/child`);
    assert.equal(allowed(policy, 'read', `${scratch}/child`), false);
    unlinkSync(`${scratch}/child`);
    writeFileSync(`${scratch}/child`, 'plain');
    assert.equal(allowed(policy, 'read', `${scratch}/child`), true);
    swap(`${scratch}/child`);
    assert.equal(allowed(policy, 'read', `${scratch}/child`), false);
    unlinkSync(`${scratch}/child`);
  });
});

describe('open flags', () => {
  test('write, append, create and truncate are writes; r+ and w+ are both', () => {
    assert.deepEqual(accessForFlags(undefined, ['read']), ['read']);
    assert.deepEqual(
      accessForFlags(() => {}, ['read']),
      ['read'],
      'open(path, callback)',
    );
    assert.deepEqual(accessForFlags('r', ['read']), ['read']);
    assert.deepEqual(accessForFlags('a', ['read']), ['write']);
    assert.deepEqual(accessForFlags('r+', ['read']), ['read', 'write']);
    assert.deepEqual(accessForFlags('w+', ['read']), ['read', 'write']);
    assert.deepEqual(accessForFlags(0, ['read']), ['read']);
    assert.deepEqual(accessForFlags(1, ['read']), ['write']);
    assert.deepEqual(accessForFlags(2, ['read']), ['read', 'write']);
    // O_RDONLY | O_TRUNC truncates on Linux; O_RDONLY | O_CREAT creates.
    assert.deepEqual(accessForFlags(512, ['read']), ['read', 'write']);
    assert.deepEqual(accessForFlags(64, ['read']), ['read', 'write']);
    assert.deepEqual(accessForFlags('bogus', ['read']), ['read', 'write']);
  });
});
