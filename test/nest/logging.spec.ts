import { describe, expect, it } from '@jest/globals';
import type { LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PoolModule } from '../../lib/index.js';
import { freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

/** Keeps every line with its Nest context. */
class ContextLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string; context?: string }> = [];
  private waiters: Array<{ match: RegExp; resolve: () => void }> = [];
  log(message: unknown, context?: string): void { this.add('log', message, context); }
  warn(message: unknown, context?: string): void { this.add('warn', message, context); }
  error(message: unknown, context?: string): void { this.add('error', message, context); }
  debug(message: unknown, context?: string): void { this.add('debug', message, context); }
  verbose(message: unknown, context?: string): void { this.add('verbose', message, context); }
  fatal(message: unknown, context?: string): void { this.add('fatal', message, context); }
  next(match: RegExp, ms = 10_000): Promise<void> {
    if (this.lines.some((line) => match.test(line.message))) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no line matching ${match}: ${JSON.stringify(this.lines)}`)), ms);
      this.waiters.push({ match, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }
  private add(level: string, message: unknown, context?: string): void {
    const line = { level, message: String(message), ...(context ? { context } : {}) };
    this.lines.push(line);
    this.waiters = this.waiters.filter((waiter) => (waiter.match.test(line.message) ? (waiter.resolve(), false) : true));
  }
}

describe('PoolModule logs background failures through Nest', () => {
  it('a client pool dialing a closed port warns through Nest\'s Logger, context = the pool name', async () => {
    const [port] = (await freePorts(1)) as [number];
    const logger = new ContextLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [PoolModule.forRoot({ name: 'edge', client: { address: `127.0.0.1:${port}`, minIvl: 20, maxIvl: 20 } })],
    }).setLogger(logger).compile();
    scope.defer(() => moduleRef.close());
    await moduleRef.init();
    await logger.next(/dialing failed/);
    const line = logger.lines.find((l) => /dialing failed/.test(l.message))!;
    expect(line).toMatchObject({ level: 'warn', context: 'PoolModule:edge' });
    expect(line.message).toMatch(/^client pool 'edge': dialing failed \(POOL_ERR_DIAL\): .*ECONNREFUSED/);
  });
});
