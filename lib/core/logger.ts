import { PoolError } from './errors.js';
import type { OptionReader } from './validate.js';

/**
 * Where a pool reports what happens in the background (dials, handshakes,
 * refusals). Nest's `Logger` and `console` both fit. The core is silent by
 * default; the Nest module passes a Nest `Logger` whose context is the pool
 * name.
 */
export interface PoolLogger {
  log(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

/** The default outside Nest: says nothing. */
export const silentLogger: PoolLogger = Object.freeze({
  log: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  debug: () => undefined,
});

/** Default of the `logInterval` option: at most one summary of failures per minute. */
export const DEFAULT_LOG_INTERVAL_MS = 60_000;

/** Whether a value can serve as a `PoolLogger` (checked when options are read). */
export function isPoolLogger(value: unknown): value is PoolLogger {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const candidate = value as Record<string, unknown>;
  return ['log', 'warn', 'error'].every((key) => typeof candidate[key] === 'function');
}

/**
 * Rate-limited reporting of one kind of background failure, e.g. "dialing"
 * for a client pool. A pool calls `failure(error)` for every failed attempt
 * and `success()` for every good one; this logs
 * - the first failure, with its code and cause, at `warn`;
 * - then, while failures go on, at most one summary per `interval` ms
 *   (how many, by code, and the latest message), at `warn`;
 * - the recovery, once, at `log`, when an attempt succeeds after failures
 *   that were reported.
 * Failures that were not reported yet (because a report went out less than
 * `interval` ago) are summarised when the interval is over, so a burst never
 * logs more than one line per interval, and none is lost. Nothing is logged
 * per byte or per successful attempt.
 */
export class FailureReporter {
  /** The current run of failures: since when, how many. */
  private episode?: { since: number; count: number; reported: boolean };
  /** Failures not yet in any message. */
  private pending = 0;
  private pendingCodes: Record<string, number> = {};
  private latest = '';
  private lastReport = -Infinity;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly logger: PoolLogger,
    /** e.g. "client pool 'default'". */
    private readonly subject: string,
    /** What failed, as the subject of "... failed": e.g. "dialing", "accepting clients". */
    private readonly activity: string,
    private readonly interval = DEFAULT_LOG_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  failure(error: unknown): void {
    if (this.closed) return;
    const code = codeOf(error);
    const at = this.now();
    this.episode ??= { since: at, count: 0, reported: false };
    this.episode.count++;
    this.pending++;
    this.pendingCodes[code] = (this.pendingCodes[code] ?? 0) + 1;
    this.latest = describe(error);
    if (at - this.lastReport < this.interval) {
      this.schedule(at);
      return;
    }
    if (this.episode.count === 1) {
      this.emit('warn', `${this.subject}: ${this.activity} failed (${code}): ${this.latest}; further failures are summarised every ${seconds(this.interval)}`);
    } else {
      this.summary();
    }
  }

  success(): void {
    if (this.closed || !this.episode) return;
    const { since, count, reported } = this.episode;
    this.episode = undefined;
    if (!reported) return; // a rate-limited run: the pending summary tells it
    this.clearTimer();
    this.pending = 0;
    this.pendingCodes = {};
    this.lastReport = this.now();
    this.safe('log', `${this.subject}: ${this.activity} works again after ${count} failure${count === 1 ? '' : 's'} over ${seconds(this.lastReport - since)}`);
  }

  /** Stops reporting and clears the summary timer (a closed pool has nothing to report). */
  close(): void {
    this.closed = true;
    this.clearTimer();
  }

  private summary(): void {
    const codes = Object.entries(this.pendingCodes).map(([code, n]) => `${code} ×${n}`).join(', ');
    const state = this.episode ? 'still failing' : 'it works again';
    this.emit('warn', `${this.subject}: ${this.activity} failed ${this.pending === 1 ? 'once' : `${this.pending} times`} in the last ${seconds(this.interval)} (${codes}), latest: ${this.latest}; ${state}`);
  }

  private emit(level: 'warn' | 'log', message: string): void {
    this.clearTimer();
    this.pending = 0;
    this.pendingCodes = {};
    this.lastReport = this.now();
    if (this.episode) this.episode.reported = true;
    this.safe(level, message);
  }

  private schedule(at: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.closed && this.pending > 0) this.summary();
    }, Math.max(0, this.lastReport + this.interval - at));
    this.timer.unref?.();
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A logger that throws must not break the pool. */
  private safe(level: 'warn' | 'log', message: string): void {
    try {
      this.logger[level](message);
    } catch {
      // ignored: logging is best effort
    }
  }
}

function codeOf(error: unknown): string {
  if (error instanceof PoolError) return error.code;
  if (typeof error === 'string') return error;
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'UNKNOWN';
}

/** The message plus its cause's, when the cause adds something. */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error.cause instanceof Error ? error.cause.message : error.cause === undefined ? '' : String(error.cause)).trim();
  return cause && !error.message.includes(cause) ? `${error.message} (cause: ${cause})` : error.message;
}

function seconds(ms: number): string {
  return ms >= 120_000 ? `${Math.round(ms / 60_000)} min` : ms >= 10_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Reads the `logger` option: anything with log, warn and error methods; silent when absent. */
export function readLogger(read: OptionReader): PoolLogger {
  const value = read.raw('logger');
  if (value === undefined) return silentLogger;
  if (!isPoolLogger(value)) read.fail('logger', 'an object with log, warn and error methods (a Nest Logger, console, pino...)');
  return value;
}
