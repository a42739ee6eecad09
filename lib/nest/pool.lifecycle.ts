import { Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { ClientPoolService } from './client-pool.service.js';
import type { PoolRegistration } from './pool-registration.js';
import type { ServerPoolService } from './server-pool.service.js';
import type { PoolShutdownGroup } from './pool-shutdown-group.js';

/**
 * The module's own guard on a close fires this long after `shutdownTimeout`:
 * the core cuts the streams still open at `shutdownTimeout` and resolves
 * then, so the guard only catches a close that hangs.
 */
const CLOSE_GUARD_MARGIN_MS = 200;

/**
 * Starts one registration's pools with the application and closes them with
 * it. One provider per registration holds the hooks, so the services (which
 * the default pool also provides under their class) never run them twice.
 */
export class PoolLifecycle implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('PoolModule');

  constructor(
    private readonly registration: PoolRegistration,
    private readonly client: ClientPoolService,
    private readonly server: ServerPoolService,
    /** The application's registrations, closed together (see PoolShutdownGroup). */
    private readonly group?: PoolShutdownGroup,
  ) {
    group?.join(this);
  }

  /**
   * With `autoStart`: the server first, awaited, so a port that cannot be
   * bound fails the bootstrap; then the client, which dials in the background.
   */
  async onModuleInit(): Promise<void> {
    if (!this.registration.autoStart) return;
    const { name } = this.registration;
    if (this.server.configured) {
      try {
        await this.server.start();
      } catch (error) {
        this.logger.error(`server pool '${name}' could not start: ${describe(error)}`);
        throw error;
      }
      const address = this.server.address();
      this.logger.log(`server pool '${name}' listening on ${address ? `${address.address}:${address.port}` : 'a server it was given'}`);
    }
    if (this.client.configured) {
      this.client.start();
      this.logger.log(`client pool '${name}' started`);
    }
  }

  /**
   * Graceful close of both sides, bounded by `shutdownTimeout`: at once
   * pending gets are rejected with `PoolClosedError`, idle streams and the
   * listener are closed; streams the application took get `shutdownTimeout`
   * ms to finish, and those still open then are destroyed with a
   * `PoolClosedError`. Never throws; safe when the pools never started.
   * Every registration of the application closes at the same time, so the
   * whole shutdown takes one `shutdownTimeout`, not one per registration.
   */
  onModuleDestroy(): Promise<void> {
    return this.group ? this.group.close() : this.closeOwn();
  }

  /** Closes this registration's pools (called once, by the group). */
  async closeOwn(): Promise<void> {
    const { name, shutdownTimeout } = this.registration;
    let timer: NodeJS.Timeout | undefined;
    try {
      // The client first: it stops dialing before the server stops listening.
      const closing = Promise.allSettled([this.client.close(shutdownTimeout), this.server.close(shutdownTimeout)]);
      // The core bounds its own close; this bound holds even if it did not.
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), shutdownTimeout + CLOSE_GUARD_MARGIN_MS);
      });
      const outcome = await Promise.race([closing, timedOut]);
      if (outcome === 'timeout') {
        this.logger.warn(`pool '${name}' did not close within shutdownTimeout (${shutdownTimeout} ms); shutdown goes on`);
        return;
      }
      for (const result of outcome) {
        if (result.status === 'rejected') this.logger.error(`pool '${name}' failed to close: ${describe(result.reason)}`);
      }
    } catch (error) {
      this.logger.error(`pool '${name}' failed to close: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error || (error !== null && typeof error === 'object' && 'message' in error)
    ? String((error as { message: unknown }).message)
    : String(error);
}
