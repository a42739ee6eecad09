import { Injectable, Logger } from '@nestjs/common';
import type { Duplex } from 'node:stream';
import { Observable, type Subscriber } from 'rxjs';
import type { IncomingGetOptions, IncomingOptions, IncomingStream, ServerPool } from '../core/server-pool.js';
import type { ClientIdentity } from '../core/stream-identity.js';
import type { WaitOptions } from '../core/waiters.js';
import { unconfiguredStats, type ServerPoolServiceStats } from './pool-service-stats.js';
import { PoolServiceBase } from './pool-service.base.js';
import { unconfiguredError } from './unconfigured-pool.js';

/** A subscription to `incoming$` made before the pool started. */
interface DeferredSubscription {
  attach(): void;
  complete(): void;
}

/**
 * The server side of one pool registration, for injection: by class for the
 * default pool, with `@InjectServerPool(name)` (or `getServerPoolToken(name)`)
 * for any pool. It wraps the core `ServerPool` (`pool`), which the module
 * starts with the application and closes on shutdown.
 *
 * When the registration has no `server`, the service still exists: `ready`
 * is false, the counters are 0, `stats` says `state: 'unconfigured'`, every
 * method throws (or rejects with) an `InvalidOptionsError`, and `incoming$`
 * errors with it.
 */
@Injectable()
export class ServerPoolService extends PoolServiceBase<ServerPool> {
  private readonly logger = new Logger('PoolModule');
  private readonly deferred = new Set<DeferredSubscription>();
  private starting?: Promise<void>;
  private closed = false;

  /**
   * Every ready `[id, stream]`, as it arrives. Each subscription is a
   * listener of its own: streams go to exactly one subscriber or pending
   * `incomingGet`, taking turns, and while nobody subscribes they stay in
   * the pool. A subscription made before the pool starts is attached when it
   * starts. Completes when the pool closes. A stream handed to a subscriber
   * is the subscriber's to use and to destroy; one still open when the pool
   * closes is cut at the close timeout.
   */
  readonly incoming$: Observable<IncomingStream> = new Observable<IncomingStream>((subscriber) => this.subscribe(subscriber));

  /**
   * As `incoming$`, with only the streams of one client: its identity
   * (`streamIdentity()` of one of its streams) or its label (`key:<id>`,
   * `cert:<common name>`). It takes turns with `incoming$` subscribers and
   * pending gets on that client's streams (first come, first served among
   * those that can take a stream); other clients' streams never reach it.
   * Errors with `InvalidOptionsError` if `client` is neither.
   */
  incomingFor$(client: string | ClientIdentity): Observable<IncomingStream> {
    return new Observable<IncomingStream>((subscriber) => this.subscribe(subscriber, { client }));
  }

  constructor(name: string, pool: ServerPool | undefined) {
    super(name, pool, 'server');
  }

  /** A plain snapshot, safe to log or serialise; `configured: false` and `state: 'unconfigured'` without this side. */
  get stats(): ServerPoolServiceStats {
    return this.core ? { ...this.core.stats, configured: true } : unconfiguredStats('server', this.name);
  }

  /**
   * Starts listening, then attaches the `incoming$` subscriptions that were
   * waiting. The module calls it on init unless `autoStart` is false; start
   * through this method (not `pool.start()`) so those subscriptions attach.
   * Idempotent; rejects if the pool cannot listen (the port is taken...).
   */
  start(): Promise<void> {
    const pool = this.core;
    if (!pool) return Promise.reject(unconfiguredError('server', this.name));
    // Concurrent callers share one listen; once settled, the core's own idempotence answers.
    this.starting ??= pool.start().finally(() => {
      this.starting = undefined;
      this.release();
    });
    return this.starting;
  }

  /**
   * The oldest ready `[id, stream]`, or the next to arrive, waiting up to the
   * timeout; with `client`, of that client only; with `id`, exactly that
   * stream (see `ServerPool.incomingGet`).
   */
  async incomingGet(options?: number | IncomingGetOptions): Promise<IncomingStream> {
    return this.require().incomingGet(options);
  }

  /** With `reserveFirstId`: the first stream of the pool's life (`00000000`). */
  async firstStream(options?: number | WaitOptions): Promise<Duplex> {
    return this.require().firstStream(options);
  }

  /** The bound address once listening, else null. */
  address(): { address: string; port: number; family: string } | null {
    return this.require().address();
  }

  /**
   * Graceful close: pending gets rejected with `PoolClosedError`, idle
   * streams and the listener closed, `incoming$` completed at once; streams
   * already taken get `timeout` ms to finish, then those still open are
   * destroyed with a `PoolClosedError`. The module does it on shutdown with
   * `shutdownTimeout`; idempotent, never rejects.
   */
  async close(timeout?: number): Promise<void> {
    this.closed = true;
    const closing = this.core?.close(timeout);
    this.release();
    await closing;
  }

  private subscribe(subscriber: Subscriber<IncomingStream>, options: IncomingOptions = {}): () => void {
    const pool = this.core;
    if (!pool) {
      subscriber.error(unconfiguredError('server', this.name));
      return () => undefined;
    }
    let unsubscribe: (() => void) | undefined;
    const attach = (): void => {
      try {
        unsubscribe = listen();
      } catch (error) {
        subscriber.error(error);
      }
    };
    const listen = (): (() => void) =>
      pool.onIncoming(
        (incoming, stop) => {
          if (subscriber.closed) {
            // Not reachable through the listener below; never leak a socket if it were.
            stop();
            incoming[1].destroy();
            this.logger.warn(`server pool '${this.name}': a stream reached a closed incoming$ subscriber and was destroyed`);
            return;
          }
          subscriber.next(incoming);
          // A subscriber that stopped inside next() (take(1), firstValueFrom) leaves
          // the queue now, so the streams still waiting stay in the pool.
          if (subscriber.closed) stop();
        },
        () => subscriber.complete(),
        options,
      );
    const state = pool.stats.state;
    if (pool.ready || state === 'starting') {
      attach();
    } else if (state === 'new' && !this.closed) {
      const deferred: DeferredSubscription = { attach, complete: () => subscriber.complete() };
      this.deferred.add(deferred);
      return () => {
        this.deferred.delete(deferred);
        unsubscribe?.();
      };
    } else {
      subscriber.complete();
    }
    return () => unsubscribe?.();
  }

  /** Attaches the waiting subscriptions if the pool runs, completes them if it never will. */
  private release(): void {
    const pool = this.core;
    if (!pool) return;
    const waiting = [...this.deferred];
    this.deferred.clear();
    for (const subscription of waiting) {
      if (pool.ready && !this.closed) subscription.attach();
      else subscription.complete();
    }
  }
}
