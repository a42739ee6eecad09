import { Injectable } from '@nestjs/common';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../core/client-pool.js';
import type { WaitOptions } from '../core/waiters.js';
import { unconfiguredStats, type ClientPoolServiceStats } from './pool-service-stats.js';
import { PoolServiceBase } from './pool-service.base.js';

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
export class ClientPoolService extends PoolServiceBase<ClientPool> {
  constructor(name: string, pool: ClientPool | undefined) {
    super(name, pool, 'client');
  }

  /** A plain snapshot, safe to log or serialise; `configured: false` and `state: 'unconfigured'` without this side. */
  get stats(): ClientPoolServiceStats {
    return this.core ? { ...this.core.stats, configured: true } : unconfiguredStats('client', this.name);
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

  /**
   * Graceful close: pending gets rejected with `PoolClosedError` and idle
   * streams closed at once; streams already taken get `timeout` ms to
   * finish, then those still open are destroyed with a `PoolClosedError`.
   * The module does it on shutdown with `shutdownTimeout`; idempotent,
   * never rejects.
   */
  async close(timeout?: number): Promise<void> {
    await this.core?.close(timeout);
  }
}
