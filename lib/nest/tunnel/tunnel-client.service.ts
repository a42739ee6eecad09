import { Injectable, Logger } from '@nestjs/common';
import { FailureReporter } from '../../core/logger.js';
import type { AddressInfo } from 'node:net';
import { Observable, Subject } from 'rxjs';
import type { ClientPool } from '../../core/client-pool.js';
import { PoolClosedError, PoolTimeoutError } from '../../core/errors.js';
import { TunnelClient, type RouteState } from '../../tunnel/tunnel-client.js';
import type { TunnelStatsSnapshot } from '../../tunnel/tunnel-stats.js';
import type { TunnelClientEvent } from './tunnel-events.js';
import type { TunnelRegistration } from './tunnel-registration.js';
import { describe, emptyTunnelStats, tunnelNotReady } from './tunnel-service.util.js';

/**
 * The client end of one tunnel registration, for injection: by class for the
 * default tunnel, with `@InjectTunnelClient(name)` for any. It wraps the core
 * `TunnelClient` (`tunnel`), built at init over the registration's client
 * pool. Started when the application has bootstrapped, it brings its control
 * channel up in the background, trying again with the `reconnect` back-off
 * until it is up (the server may start later), so the application's
 * bootstrap never waits for the other side; `whenUp()` does. Closed on
 * shutdown before the pools.
 */
@Injectable()
export class TunnelClientService {
  private readonly subject = new Subject<TunnelClientEvent>();
  private readonly logger: Logger;
  /** Failed tries to bring the first control channel up, rate-limited (the core reports later reconnects itself). */
  private readonly startFailures: FailureReporter;
  private core?: TunnelClient;
  private pool?: ClientPool;
  private started = false;
  private closed = false;
  private failures = 0;
  private wait?: { timer: NodeJS.Timeout; resolve: () => void };
  private failure?: Error;

  /** Every event of this end (up, down, refusals, connections opened and closed with their figures). Completes on shutdown. */
  readonly events$: Observable<TunnelClientEvent> = this.subject.asObservable();

  constructor(
    /** The registration's name ('default' for the unnamed tunnel). */
    readonly name: string,
    private readonly registration: TunnelRegistration,
  ) {
    this.logger = new Logger(`TunnelModule:${name}`);
    this.startFailures = new FailureReporter(this.logger, `tunnel client '${name}'`, 'bringing the control channel up');
  }

  /** Whether the registration has a client end. */
  get configured(): boolean {
    return this.registration.client !== undefined;
  }

  /** The core `TunnelClient` now in use, for what the service does not wrap. */
  get tunnel(): TunnelClient {
    if (!this.core) throw tunnelNotReady('client', this.name, this.configured);
    return this.core;
  }

  /** Whether the control channel is up. */
  get connected(): boolean {
    return this.core?.connected ?? false;
  }

  /** Why the control channel last failed to come up or was lost (cleared when it is up). */
  get lastError(): Error | undefined {
    return this.failure;
  }

  /** The server's answer per route, once up. */
  get routeStates(): RouteState[] {
    return this.core?.routeStates ?? [];
  }

  /** Where a forward route listens, once up. */
  addressOf(route: string): AddressInfo | undefined {
    return this.core?.addressOf(route);
  }

  get stats(): TunnelStatsSnapshot {
    return this.core?.stats ?? emptyTunnelStats();
  }

  /** Builds the core client over `pool` (the lifecycle calls it at init). */
  attach(pool: ClientPool): void {
    if (!this.registration.client || this.core) return;
    this.pool = pool;
    this.core = this.build();
  }

  /**
   * Brings the control channel up in the background (the module does it on
   * bootstrap unless `autoStart` is false): on failure, a new try after the
   * `reconnect` back-off (none with `reconnect: false`). Idempotent.
   */
  start(): void {
    this.tunnel; // throws when not configured or not built
    if (this.started || this.closed) return;
    this.started = true;
    void this.run();
  }

  /** Resolves with the route answers once the control channel is up (at once if it is); rejects after `timeout` ms or on close. */
  whenUp(timeout = 10_000): Promise<RouteState[]> {
    if (this.connected) return Promise.resolve(this.routeStates);
    if (this.closed) return Promise.reject(new PoolClosedError(`the tunnel client '${this.name}' is closed`));
    return new Promise<RouteState[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        subscription.unsubscribe();
        reject(new PoolTimeoutError(`the tunnel client '${this.name}' had no control channel within ${timeout} ms`));
      }, timeout);
      const subscription = this.events$.subscribe({
        next: (event) => {
          if (event.type !== 'up') return;
          clearTimeout(timer);
          subscription.unsubscribe();
          resolve(event.routes);
        },
        complete: () => {
          clearTimeout(timer);
          reject(new PoolClosedError(`the tunnel client '${this.name}' closed before its control channel came up`));
        },
      });
    });
  }

  /**
   * Lets tunnelled connections finish within `closeTimeout`, cuts the rest,
   * closes the control channel; completes `events$`. The module does it on
   * shutdown, before the pools close. Idempotent, never rejects.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.startFailures.close();
    if (this.wait) {
      clearTimeout(this.wait.timer);
      this.wait.resolve();
    }
    try {
      await this.core?.close();
    } catch (error) {
      this.logger.error(`tunnel client '${this.name}' failed to close: ${describe(error)}`);
    }
    this.subject.complete();
  }

  /** The first control channel: a fresh core client per try (a core client starts once), the same pool. */
  private async run(): Promise<void> {
    const reconnect = this.registration.client?.reconnect;
    while (!this.closed) {
      const client = this.core!;
      try {
        await client.start();
        return; // up: from now on the core brings a lost channel back itself
      } catch (error) {
        if (this.closed) return;
        const failure = error instanceof Error ? error : new Error(String(error));
        this.failures++;
        if (reconnect === false) this.logger.warn(`tunnel client '${this.name}' could not bring its control channel up: ${failure.message} (reconnect is off: not trying again)`);
        else this.startFailures.failure(failure);
        this.failure = failure;
        this.subject.next({ type: 'connect-failed', tunnel: this.name, error: failure });
        await client.close().catch(() => undefined);
        if (reconnect === false) return;
        const min = reconnect?.minDelay ?? 200;
        const max = reconnect?.maxDelay ?? 10_000;
        await new Promise<void>((resolve) => {
          this.wait = { timer: setTimeout(resolve, Math.min(max, min * 2 ** Math.min(this.failures - 1, 20))), resolve };
        });
        this.wait = undefined;
        if (this.closed) return;
        this.core = this.build();
      }
    }
  }

  private build(): TunnelClient {
    // The core logs the tunnel's life (rate-limited where failures repeat) through this service's Nest Logger.
    const client = new TunnelClient({ logger: this.logger, ...this.registration.client!, pool: this.pool! });
    const tunnel = this.name;
    const next = (event: TunnelClientEvent): void => {
      if (this.core !== client) return;
      if (event.type === 'up') this.failure = undefined;
      else if ((event.type === 'down' || event.type === 'connect-failed') && event.error) this.failure = event.error;
      this.subject.next(event);
    };
    client.on('up', (routes) => {
      this.startFailures.success();
      next({ type: 'up', tunnel, routes });
    });
    client.on('down', (error) => next({ type: 'down', tunnel, ...(error ? { error } : {}) }));
    client.on('reconnect-failed', (error) => next({ type: 'connect-failed', tunnel, error }));
    client.on('refused', (answer) => next({ type: 'refused', tunnel, answer }));
    client.on('drain', () => next({ type: 'drain', tunnel }));
    client.on('opened', (event) => next({ type: 'connection-opened', tunnel, ...event }));
    client.on('connection', (event) => next({ type: 'connection-closed', tunnel, ...event }));
    client.on('open-failed', (event) => next({ type: 'open-failed', tunnel, ...event }));
    return client;
  }
}
