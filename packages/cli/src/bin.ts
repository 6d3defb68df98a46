#!/usr/bin/env node
/**
 * `perimeter` command line. Every command lives in src/commands/ and has one signature: it gets its parsed
 * options and returns an exit code.
 */
import { Command } from 'commander';
import { dashboardCommand, parsePortOption } from './commands/dashboard.js';
import { devCommand, parseCount } from './commands/dev.js';
import { invokeCommand } from './commands/invoke.js';
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
    'events as JSON lines (PERIMETER_EVENTS_FILE), a folder of .jsonl files, or a perimeter dev store (.perimeter/events.db); repeatable',
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

program
  .command('dashboard')
  .description(
    'Serve the `perimeter dev` dashboard over an event store (read-only): a past run’s events.db, or a running dev’s.',
  )
  .requiredOption('--db <file>', 'the event store, e.g. .perimeter/events.db (written by `perimeter dev`)')
  .option('--port <port>', 'port to listen on (0 = any free port)', parsePortOption, 8789)
  .option('--host <address>', 'address to listen on', '127.0.0.1')
  .action(async (options) => {
    process.exitCode = await dashboardCommand(options);
  });

program
  .command('dev')
  .description(
    'Run the functions of a project (or one handler file) locally, each in its own guarded process, behind an HTTP gateway; events go to the embedded store and the dashboard.',
  )
  .argument('[dir]', 'project folder or handler file', '.')
  .option('--port <port>', 'gateway port (default: the config’s port, else 8788; 0 = any free port)', parsePortOption)
  .option('--host <address>', 'address to listen on', '127.0.0.1')
  .option('--db <file>', 'event store (default: <dir>/.perimeter/events.db)')
  .option('--node <binary>', 'the node binary functions run on (default: this one)')
  .option('--no-watch', 'no hot reload')
  .option('--json', 'one JSON object per line instead of the coloured summary')
  .option('--otlp <url>', 'also export events and invocation spans to this OTLP/HTTP endpoint (@perimeter/otel)')
  .option('--otlp-header <name=value>', 'a header for the OTLP endpoint; repeatable', collect)
  .option('--retention <events>', 'events the store keeps, oldest dropped first (default 500000)', parseCount)
  .action(async (dir: string, options) => {
    process.exitCode = await devCommand(dir, options);
  });

program
  .command('invoke')
  .description('Fire one event at a function of a running `perimeter dev` and print its result.')
  .argument('<function>', 'the function name')
  .option('--event <file>', 'the event, a JSON file')
  .option('--sample <name>', 'a built-in sample event: s3-put, sqs, sns, eventbridge, dynamodb, kinesis')
  .option('--url <url>', 'the dev server (default: PERIMETER_DEV_URL, else http://127.0.0.1:8788)')
  .option('--json', 'print the whole response (result, error, requestId) as JSON')
  .action(async (name: string, options) => {
    process.exitCode = await invokeCommand(name, options);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  const code =
    isCliError(error) || (error as any)?.code?.startsWith?.('ERR_PERIMETER') ? `${(error as any).code}: ` : '';
  process.stderr.write(`perimeter: ${code}${(error as Error)?.message ?? error}\n`);
  process.exitCode = 2;
});
