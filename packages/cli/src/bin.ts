#!/usr/bin/env node
/**
 * `perimeter` command line. Every command lives in src/commands/ and has one signature: it gets its parsed
 * options and returns an exit code.
 */
import { Command } from 'commander';
import { learnCommand } from './commands/learn.js';
import { policyCheckCommand, policyDiffCommand } from './commands/policy.js';
import { runCommand } from './commands/run.js';
import { isCliError } from './errors.js';

const collect = (value: string, previous: string[] = []) => [...previous, value];

const program = new Command();
program
  .name('perimeter')
  .description('Every function its own perimeter.')
  .enablePositionalOptions()
  .showHelpAfterError();

program
  .command('run')
  .description(
    'Run a Node.js function under its policy: the Perimeter guard preloaded, and Node’s permission model as a second layer where the Node version has it.',
  )
  .argument('<command...>', 'the node command to run, e.g. -- node handler.js')
  .option('--policy <file>', 'the policy file (default: PERIMETER_POLICY, or perimeter.json beside the handler)')
  .option('--dry-run', 'print the command that would run, and do not run it')
  .option('--no-permission', 'do not add Node’s permission model (the JS guard only)')
  .option('--no-guard', 'do not preload the JS guard (Node’s permission model only; for testing the second layer)')
  .allowUnknownOption(true)
  .passThroughOptions(true)
  .action(async (command: string[], options) => {
    process.exitCode = await runCommand(command, options);
  });

program
  .command('learn')
  .description(
    'Write the least-privilege policy from what the function did (alert-mode events) and/or what its code names (--from-code), merged into the current policy.',
  )
  .option(
    '--events <file|dir>',
    'events as JSON lines (PERIMETER_EVENTS_FILE), or a folder of .jsonl files; repeatable',
    collect,
  )
  .option('--from-code <dir|file>', 'static pass over source files or a bundle; repeatable', collect)
  .option('--include-deps', 'with --from-code: scan node_modules too, attributing findings to packages')
  .option('--function <name>', 'only events of this function')
  .option('--policy <file>', 'the current policy to merge into', 'perimeter.json')
  .option('--out <file>', 'with --write: where to write (default: the --policy file)')
  .option('--write', 'write the policy (atomically) and its perimeter.learn.json sidecar')
  .option('--json', 'print policy, changes and explanations as one JSON object')
  .option(
    '--per-package <none|network|all>',
    'which capabilities get packages.<name> entries for packages seen using them',
    'network',
  )
  .option('--prune', 'remove rules of the current policy that no observation used (see docs/cli.md first)')
  .option('--lenient', 'skip bad event lines (with a count) instead of failing')
  .action(async (options) => {
    process.exitCode = await learnCommand(options);
  });

const policy = program.command('policy').description('Compare and check policies (CI-friendly exit codes, SARIF).');
policy
  .command('diff')
  .description('Semantic diff; exits 1 when the new policy allows anything the old one did not.')
  .argument('<old>', 'the old policy file')
  .argument('<new>', 'the new policy file')
  .option('--format <text|json|sarif>', 'output format', 'text')
  .action(async (oldFile: string, newFile: string, options) => {
    process.exitCode = await policyDiffCommand(oldFile, newFile, options);
  });
policy
  .command('check')
  .description(
    'Validate with the runtime, lint for overly broad rules, and (with --events) find unused rules. Exit 0 ok, 1 errors, 2 invalid.',
  )
  .argument('<policy>', 'the policy file')
  .option('--events <file|dir>', 'events to find unused rules with; repeatable', collect)
  .option('--format <text|json|sarif>', 'output format', 'text')
  .option('--lenient', 'skip bad event lines')
  .action(async (file: string, options) => {
    process.exitCode = await policyCheckCommand(file, options);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  const code =
    isCliError(error) || (error as any)?.code?.startsWith?.('ERR_PERIMETER') ? `${(error as any).code}: ` : '';
  process.stderr.write(`perimeter: ${code}${(error as Error)?.message ?? error}\n`);
  process.exitCode = 2;
});
