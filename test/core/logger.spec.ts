import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { ClientPool } from '../../lib/core/client-pool.js';
import { DialError, HandshakeError, InvalidOptionsError } from '../../lib/core/errors.js';
import { FailureReporter, type PoolLogger } from '../../lib/core/logger.js';
import { ServerPool } from '../../lib/core/server-pool.js';
import { ManualTransport } from '../support/manual-transport.js';

/** A logger that records every line with its level. */
export function recordingLogger(): PoolLogger & { lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, log: at('log'), warn: at('warn'), error: at('error'), debug: at('debug') };
}

const refused = () => new DialError('could not connect to 127.0.0.1:9', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' }) });

describe('FailureReporter (rate limiting, fake timers)', () => {
  beforeEach(() => { jest.useFakeTimers(); });
  afterEach(() => { jest.useRealTimers(); });

  function makeReporter(interval = 10_000) {
    const logger = recordingLogger();
    return { logger, reporter: new FailureReporter(logger, "client pool 'edge'", 'dialing', interval, () => Date.now()) };
  }

  it('logs the first failure with its code and cause, then nothing until the interval is over, then one summary', () => {
    const { logger, reporter } = makeReporter();
    reporter.failure(refused());
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]!.level).toBe('warn');
    expect(logger.lines[0]!.message).toContain("client pool 'edge': dialing failed (POOL_ERR_DIAL)");
    expect(logger.lines[0]!.message).toContain('ECONNREFUSED');

    for (let i = 0; i < 500; i++) {
      jest.advanceTimersByTime(10);
      reporter.failure(refused());
    }
    // 500 failures within 5 s: still one line.
    expect(logger.lines).toHaveLength(1);
    jest.advanceTimersByTime(5_000);
    expect(logger.lines).toHaveLength(2);
    expect(logger.lines[1]!.level).toBe('warn');
    expect(logger.lines[1]!.message).toMatch(/dialing failed 500 times in the last 10 s \(POOL_ERR_DIAL ×500\).*still failing/);
    // Nothing more while nothing fails.
    jest.advanceTimersByTime(60_000);
    expect(logger.lines).toHaveLength(2);
    reporter.close();
  });

  it('counts failures by code in the summary', () => {
    const { logger, reporter } = makeReporter();
    reporter.failure(refused());
    reporter.failure(new HandshakeError('no ID within 10000 ms'));
    reporter.failure(refused());
    jest.advanceTimersByTime(10_000);
    expect(logger.lines).toHaveLength(2);
    expect(logger.lines[1]!.message).toContain('POOL_ERR_HANDSHAKE ×1, POOL_ERR_DIAL ×1');
    expect(logger.lines[1]!.message).toContain('dialing failed 2 times');
    reporter.close();
  });

  it('logs the recovery once, at log level, with the count of the whole run', () => {
    const { logger, reporter } = makeReporter();
    reporter.failure(refused());
    jest.advanceTimersByTime(3_000);
    reporter.failure(refused());
    reporter.success();
    reporter.success();
    expect(logger.lines.map((line) => line.level)).toEqual(['warn', 'log']);
    expect(logger.lines[1]!.message).toBe("client pool 'edge': dialing works again after 2 failures over 3.0 s");
    // The pending summary was folded into the recovery: no timer left, no late line.
    expect(jest.getTimerCount()).toBe(0);
    jest.advanceTimersByTime(60_000);
    expect(logger.lines).toHaveLength(2);
  });

  it('does not log per failure when failures and successes alternate: one summary per interval', () => {
    const { logger, reporter } = makeReporter();
    for (let i = 0; i < 100; i++) {
      reporter.failure(refused());
      reporter.success();
      jest.advanceTimersByTime(50);
    }
    // first failure, its recovery, then the rest rate-limited into one summary per 10 s
    expect(logger.lines.length).toBeLessThanOrEqual(3);
    jest.advanceTimersByTime(10_000);
    const summary = logger.lines.at(-1)!;
    expect(summary.message).toMatch(/dialing failed 99 times in the last 10 s.*it works again/);
    expect(logger.lines.length).toBeLessThanOrEqual(3);
    reporter.close();
  });

  it('says nothing after close(), and a logger that throws does not break the caller', () => {
    const throwing: PoolLogger = { log: () => { throw new Error('x'); }, warn: () => { throw new Error('x'); }, error: () => undefined };
    const reporter = new FailureReporter(throwing, 'p', 'dialing', 1000, () => Date.now());
    expect(() => reporter.failure(refused())).not.toThrow();
    expect(() => reporter.success()).not.toThrow();
    reporter.failure(refused());
    reporter.failure(refused());
    reporter.close();
    expect(jest.getTimerCount()).toBe(0);
  });
});

describe('pools report background failures to their logger', () => {
  let pools: Array<{ close(timeout?: number): Promise<void> }> = [];
  afterEach(async () => {
    await Promise.all(pools.map((p) => p.close(0)));
    pools = [];
  });

  it('a client pool logs a failed dial (with its cause) and the recovery', async () => {
    const logger = recordingLogger();
    const transport = new ManualTransport();
    const pool = new ClientPool(transport, { minIvl: 10, maxIvl: 10, maxBackoff: 10, logger });
    pools.push(pool);
    pool.start();
    await waitFor(() => transport.pending.length === 1);
    transport.fail(refused());
    await waitFor(() => logger.lines.length === 1);
    expect(logger.lines[0]!.message).toMatch(/client pool 'default': dialing failed \(POOL_ERR_DIAL\).*ECONNREFUSED/);
    await waitFor(() => transport.pending.length === 1);
    transport.complete('aaaaaaaa');
    await waitFor(() => logger.lines.length === 2);
    expect(logger.lines[1]).toEqual({ level: 'log', message: expect.stringMatching(/^client pool 'default': dialing works again after 1 failure over/) });
  });

  it('rejects a logger without log, warn and error, naming the option', () => {
    expect(() => new ClientPool(new ManualTransport(), { logger: { log() {} } as unknown as PoolLogger })).toThrow(InvalidOptionsError);
    expect(() => new ServerPool(new ManualTransport() as never, { logger: 'console' as unknown as PoolLogger })).toThrow(/logger/);
  });
});

async function waitFor(condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
