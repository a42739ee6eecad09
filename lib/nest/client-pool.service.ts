import { Injectable } from '@nestjs/common';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../core/client-pool.js';
import type { WaitOptions } from '../core/waiters.js';
import { unconfiguredStats, type ClientPoolServiceStats } from './pool-service-stats.js';
import { unconfiguredError } from './unconfigured-pool.js';

/**
 * The client side of one pool registration, for injection: by class for the
 * default pool, with `@InjectClientPool(name)` (or `getClientPoolToken(name)`)
 * for any pool. It wraps the core `ClientPool` (`pool`), which the module
 * starts with the application and closes on shutdown.
 *
 * When the registration has no `client`, the service still exists: `ready`
 * is false, the counters are 0, `stats` says `state: 'unconfigured'`, and
 * every method throws (or rejects with) an `InvalidOptionsError`.
 */
@Injectable()
export class ClientPoolService {
  constructor(
    /** The registration's name ('default' for the unnamed pool). */
    readonly name: string,
    private readonly clientPool: ClientPool | undefined,
  ) {}

  /** Whether the registration configures a client side. */
  get configured(): boolean {
    return this.clientPool !== undefined;
  }

  /** The core pool, for what the service does not wrap. */
  get pool(): ClientPool {
    return this.require();
  }

  /** Started and not closed. */
  get ready(): boolean {
    return this.clientPool?.ready ?? false;
  }

  /** Idle pooled streams ready to be taken. */
  get active(): number {
    return this.clientPool?.active ?? 0;
  }

  get capacity(): number {
    return this.clientPool?.capacity ?? 0;
  }

  get interval(): number {
    return this.clientPool?.interval ?? 0;
  }

  get errorCount(): number {
    return this.clientPool?.errorCount ?? 0;
  }

  /** A plain snapshot, safe to log or serialise; `configured: false` and `state: 'unconfigured'` without this side. */
  get stats(): ClientPoolServiceStats {
    const pool = this.clientPool;
    return pool ? { ...pool.stats, configured: true } : unconfiguredStats('client', this.name);
  }

  /**
   * Starts dialing. The module calls it on init unless `autoStart` is false.
   * Idempotent; a closed pool cannot restart.
   */
  start(): void {
    this.require().start();
  }

  /** Takes the stream the server named `id`, waiting for it up to the timeout. */
  async outgoingGet(id: string, options?: number | WaitOptions): Promise<Duplex> {
    return this.require().outgoingGet(id, options);
  }

  /** Resolves once at least `count` streams are idle. */
  async waitForActive(count?: number, timeout?: number): Promise<void> {
    return this.require().waitForActive(count, timeout);
  }

  /** Closes every idle stream; returns how many. The pool refills. */
  flush(): number {
    return this.require().flush();
  }

  addError(): void {
    this.require().addError();
  }

  resetError(): void {
    this.require().resetError();
  }

  /**
   * Graceful close (pending gets rejected with `PoolClosedError`, idle
   * streams closed, taken streams left alone), bounded by `timeout` ms.
   * The module does it on shutdown; idempotent, never rejects.
   */
  async close(timeout?: number): Promise<void> {
    await this.clientPool?.close(timeout);
  }

  private require(): ClientPool {
    if (!this.clientPool) throw unconfiguredError('client', this.name);
    return this.clientPool;
  }
}
