import type { ClientPool } from '../core/client-pool.js';
import type { ServerPool } from '../core/server-pool.js';
import { unconfiguredError } from './unconfigured-pool.js';

/**
 * What the client and server services share: the registration's name, the
 * core pool (or none, when the registration does not configure this side),
 * and the figures and counters every pool has. Without a core pool the
 * getters read as a pool that is not ready with nothing in it, and every
 * method throws an `InvalidOptionsError` naming the missing side.
 */
export abstract class PoolServiceBase<P extends ClientPool | ServerPool> {
  protected constructor(
    /** The registration's name ('default' for the unnamed pool). */
    readonly name: string,
    protected readonly core: P | undefined,
    private readonly role: 'client' | 'server',
  ) {}

  /** Whether the registration configures this side. */
  get configured(): boolean {
    return this.core !== undefined;
  }

  /** The core pool, for what the service does not wrap. */
  get pool(): P {
    return this.require();
  }

  /** Started (listening, for a server) and not closed. */
  get ready(): boolean {
    return this.core?.ready ?? false;
  }

  /** Idle pooled streams ready to be taken. */
  get active(): number {
    return this.core?.active ?? 0;
  }

  get capacity(): number {
    return this.core?.capacity ?? 0;
  }

  get interval(): number {
    return this.core?.interval ?? 0;
  }

  get errorCount(): number {
    return this.core?.errorCount ?? 0;
  }

  /** Closes every idle stream; returns how many. A client pool refills. */
  flush(): number {
    return this.require().flush();
  }

  addError(): void {
    this.require().addError();
  }

  resetError(): void {
    this.require().resetError();
  }

  protected require(): P {
    if (!this.core) throw unconfiguredError(this.role, this.name);
    return this.core;
  }
}
