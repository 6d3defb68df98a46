#!/usr/bin/env node
/**
 * `perimeter` command line. Every command lives in src/commands/ and has one signature: it gets its parsed
 * options and returns an exit code.
 */
import { Command } from 'commander';
import { runCommand } from './commands/run.js';

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

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`perimeter: ${(error as Error)?.message ?? error}\n`);
  process.exitCode = 2;
});
