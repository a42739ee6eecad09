import type { LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import type { Duplex } from 'node:stream';
import { expect } from '@jest/globals';
import type { ClientPoolConfig } from '../../../lib/pool-factory.js';
import type { ServerPoolService } from '../../../lib/nest/server-pool.service.js';
import { readBytes } from '../../support/net.js';

export type LogLevel = 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';

/** Keeps Nest's log lines for assertions instead of printing them. */
export class CapturingLogger implements LoggerService {
  readonly entries: Array<{ level: LogLevel; message: string }> = [];
  log(message: unknown): void {
    this.add('log', message);
  }
  error(message: unknown): void {
    this.add('error', message);
  }
  warn(message: unknown): void {
    this.add('warn', message);
  }
  debug(message: unknown): void {
    this.add('debug', message);
  }
  verbose(message: unknown): void {
    this.add('verbose', message);
  }
  fatal(message: unknown): void {
    this.add('fatal', message);
  }
  messages(level: LogLevel): string[] {
    return this.entries.filter((entry) => entry.level === level).map((entry) => entry.message);
  }
  private add(level: LogLevel, message: unknown): void {
    this.entries.push({ level, message: String(message) });
  }
}

/** Compiles a testing module with a capturing logger (not initialised: call `init()`). */
export async function compile(metadata: ModuleMetadata, logger = new CapturingLogger()): Promise<TestingModule> {
  return Test.createTestingModule(metadata).setLogger(logger).compile();
}

/** The error `work` rejects with (fails the test if it resolves). */
export async function errorOf(work: () => Promise<unknown>): Promise<Error & { code?: string; option?: string }> {
  try {
    await work();
  } catch (error) {
    return error as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

/**
 * A client `addressResolver` for a server pool of the same application.
 * The resolver runs on every dial, the first one right after the server
 * started, so bind it to the application between `compile()` and `init()`.
 */
export function loopback(): { addressResolver: () => { host: string; port: number }; bind(server: () => ServerPoolService): void } {
  let server: (() => ServerPoolService) | undefined;
  return {
    addressResolver: () => {
      const address = server?.().address();
      if (!address) throw new Error('loopback: the server pool is not listening');
      return { host: '127.0.0.1', port: address.port };
    },
    bind: (get) => {
      server = get;
    },
  };
}

/** Client options that fill fast: `minCap` streams, rounds every 20 ms. */
export function fastClient(addressResolver: () => { host: string; port: number }, minCap = 2): ClientPoolConfig {
  return { addressResolver, minCap, maxCap: minCap, minIvl: 20, maxIvl: 20 };
}

/** One byte each way through a pooled pair: proves the two ends are one connection. */
export async function expectEcho(clientSide: Duplex, serverSide: Duplex): Promise<void> {
  clientSide.write('c');
  expect((await readBytes(serverSide, 1)).toString()).toBe('c');
  serverSide.write('s');
  expect((await readBytes(clientSide, 1)).toString()).toBe('s');
}
