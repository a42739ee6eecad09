#!/usr/bin/env node
/**
 * `npx nestjs-tunnel-pool server|client|keygen ...`: a tunnel run from the
 * command line, no code and no Nest. Exit codes: 0 a clean stop (SIGINT,
 * SIGTERM) or --help; 1 a failure while running; 2 a bad flag or variable
 * (one line naming it and the fix); 3 a client not serving because the
 * server already has a client with its key.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateAuthKey } from '../auth/keys.js';
import { InvalidOptionsError } from '../core/errors.js';
import { runClient } from './client.js';
import { processOutput, type CliOutput } from './log.js';
import { runServer, type RunningCommand } from './server.js';

const USAGE = `Usage: nestjs-tunnel-pool <command> [flags]

Commands:
  server    run a tunnel server (tunnel clients connect to it; it listens for reverse routes)
  client    run a tunnel client (connects to a server, serves its routes)
  keygen    print a new random shared key for --key / --key-file

Run nestjs-tunnel-pool <command> --help for the flags of a command.`;

/** Runs the command line; resolves with the exit code. */
export async function main(argv: string[], env: NodeJS.ProcessEnv, output: CliOutput): Promise<number> {
  const [command, ...args] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    output.out(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === 'keygen') {
    output.out(generateAuthKey());
    return 0;
  }
  if (command !== 'server' && command !== 'client') {
    output.err(`nestjs-tunnel-pool: unknown command ${JSON.stringify(command)}: use server, client or keygen (see --help)`);
    return 2;
  }
  let running: RunningCommand | undefined;
  try {
    running = command === 'server' ? await runServer(args, env, output) : await runClient(args, env, output);
  } catch (error) {
    output.err(`nestjs-tunnel-pool ${command}: ${oneLine(error)}`);
    return error instanceof InvalidOptionsError ? 2 : 1;
  }
  if (!running) return 0; // --help
  const command_ = running;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (code: number): void => {
      if (stopping) return;
      stopping = true;
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      // A second signal while draining: out at once.
      process.once('SIGINT', () => resolve(130));
      process.once('SIGTERM', () => resolve(143));
      command_.stop().then(
        () => resolve(code),
        (error: unknown) => {
          output.err(`nestjs-tunnel-pool ${command}: stopping failed: ${oneLine(error)}`);
          resolve(1);
        },
      );
    };
    const onSignal = (): void => stop(0);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    command_.failed?.then((failure) => {
      output.err(`nestjs-tunnel-pool ${command}: ${oneLine(failure.line)}`);
      stop(failure.exitCode);
    });
  });
}

function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, '; ');
}

// Run when executed (the bin), not when imported by a spec.
function invokedDirectly(): boolean {
  try {
    return process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  main(process.argv.slice(2), process.env, processOutput).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`nestjs-tunnel-pool: ${oneLine(error)}\n`);
      process.exit(1);
    },
  );
}
