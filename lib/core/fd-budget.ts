import { readdirSync, readFileSync } from 'node:fs';

/**
 * File descriptors are a process-wide budget: every pooled tcp/TLS/ws
 * stream holds one (an HTTP/2 session one for all its streams), and so
 * does every connection of the application's own listeners, its files and
 * its database sockets. A pool that takes every descriptor starves the
 * rest of the process: past the limit, libuv accepts each new connection
 * and closes it at once (so that the listener does not spin) and Node
 * reports nothing. The pools keep a reserve free instead, where the limit
 * can be known: on Linux the soft limit is in /proc/self/limits and the
 * open descriptors are listed in /proc/self/fd. Elsewhere nothing is
 * checked.
 */

/** The soft RLIMIT_NOFILE of this process from the text of /proc/self/limits; null if unknown or unlimited. */
export function parseFdLimit(limits: string): number | null {
  const soft = /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  if (soft === undefined || soft === 'unlimited') return null;
  const value = Number(soft);
  return Number.isSafeInteger(value) && value > 0 ? value : null;
}

/** Descriptors the pools leave free: an eighth of the limit, at least 32, at most 1024. */
export function fdReserve(limit: number): number {
  return Math.min(1024, Math.max(32, Math.floor(limit / 8)));
}

export interface FdSource {
  /** The soft limit, or null where it cannot be read. */
  limit(): number | null;
  /** Descriptors open now; throws when none is left to look (EMFILE). */
  open(): number;
}

export const procFds: FdSource = {
  limit: () => {
    try {
      return parseFdLimit(readFileSync('/proc/self/limits', 'latin1'));
    } catch {
      return null;
    }
  },
  // The listing itself holds one descriptor while it runs.
  open: () => readdirSync('/proc/self/fd').length - 1,
};

/** How old a count may be when far from the ceiling, and when close to it (ms). */
const RECOUNT_FAR_MS = 1000;
const RECOUNT_NEAR_MS = 20;

export interface FdFigures {
  limit: number | null;
  reserve: number;
  /** Open at the last count, plus those granted since. */
  open: number;
}

/**
 * Grants descriptors while the process stays below `limit - reserve`. The
 * count of open descriptors is taken at most once a second while far from
 * that ceiling, every 20 ms near it, and each grant in between counts as
 * one more (so a burst cannot overshoot between two counts); a listing
 * costs about a microsecond per open descriptor.
 */
export class FdBudget {
  private limitNow: number | null | undefined;
  private counted = 0;
  private granted = 0;
  private countedAt = -Infinity;

  constructor(
    private readonly source: FdSource = procFds,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one descriptor from the budget; false when that would eat into the reserve. Always true where the limit is unknown. */
  take(): boolean {
    if (this.limitNow === undefined) this.recount();
    const limit = this.limitNow;
    if (limit == null) return true;
    const ceiling = limit - fdReserve(limit);
    const near = this.counted + this.granted >= ceiling;
    if (this.now() - this.countedAt > (near ? RECOUNT_NEAR_MS : RECOUNT_FAR_MS)) this.recount();
    if (this.limitNow == null) return true;
    if (this.counted + this.granted >= this.limitNow - fdReserve(this.limitNow)) return false;
    this.granted++;
    return true;
  }

  figures(): FdFigures {
    if (this.limitNow === undefined) this.recount();
    const limit = this.limitNow ?? null;
    return { limit, reserve: limit === null ? 0 : fdReserve(limit), open: this.counted + this.granted };
  }

  private recount(): void {
    this.limitNow = this.source.limit();
    this.countedAt = this.now();
    this.granted = 0;
    if (this.limitNow === null) return;
    try {
      this.counted = this.source.open();
    } catch {
      // Not even one descriptor left to list them: at the limit.
      this.counted = this.limitNow;
    }
  }
}

/** The budget every pool of this process draws on. */
export const processFds = new FdBudget();
