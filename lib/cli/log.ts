import type { PoolLogger } from '../core/logger.js';

/** Where the command line writes: one plain line per event on stdout; warnings and the fatal line on stderr. */
export interface CliOutput {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const processOutput: CliOutput = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

/** Lines stamped with the time and the role: `2026-01-01T00:00:00.000Z server: client key:ab12 up`. */
export class CliLog {
  constructor(
    private readonly role: 'server' | 'client',
    private readonly output: CliOutput,
  ) {}

  info(message: string): void {
    this.output.out(`${new Date().toISOString()} ${this.role}: ${message}`);
  }

  warn(message: string): void {
    this.output.err(`${new Date().toISOString()} ${this.role}: ${message}`);
  }

  /** The pools' logger: their summaries (dial failures, refusals, the self-signed fingerprint) as lines; debug is dropped. */
  get poolLogger(): PoolLogger {
    return { log: (m) => this.info(m), warn: (m) => this.warn(m), error: (m) => this.warn(m) };
  }
}
