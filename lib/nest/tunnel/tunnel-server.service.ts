import { Injectable, Logger } from '@nestjs/common';
import { Observable, Subject } from 'rxjs';
import type { ServerPool } from '../../core/server-pool.js';
import { TunnelServer, type ServedRoute } from '../../tunnel/tunnel-server.js';
import type { TunnelStatsSnapshot } from '../../tunnel/tunnel-stats.js';
import { tunnelNotReady, emptyTunnelStats, describe } from './tunnel-service.util.js';
import type { TunnelServerEvent } from './tunnel-events.js';
import type { TunnelRegistration } from './tunnel-registration.js';

/**
 * The server end of one tunnel registration, for injection: by class for the
 * default tunnel, with `@InjectTunnelServer(name)` for any. It wraps the core
 * `TunnelServer` (`tunnel`), built at init over the registration's server
 * pool, started when the application has bootstrapped and drained on
 * shutdown before the pools close.
 */
@Injectable()
export class TunnelServerService {
  private readonly subject = new Subject<TunnelServerEvent>();
  private readonly logger: Logger;
  private core?: TunnelServer;
  private closed = false;
  /** Every client seen since the start, by label: whether its control channel is up now. */
  private readonly seen = new Map<string, boolean>();

  /** Every event of this end (clients up and down, refusals, connections opened and closed with their figures). Completes on shutdown. */
  readonly events$: Observable<TunnelServerEvent> = this.subject.asObservable();

  constructor(
    /** The registration's name ('default' for the unnamed tunnel). */
    readonly name: string,
    private readonly registration: TunnelRegistration,
  ) {
    this.logger = new Logger(`TunnelModule:${name}`);
  }

  /** Whether the registration has a server end. */
  get configured(): boolean {
    return this.registration.server !== undefined;
  }

  /** The core `TunnelServer` (built at init), for what the service does not wrap. */
  get tunnel(): TunnelServer {
    if (!this.core) throw tunnelNotReady('server', this.name, this.configured);
    return this.core;
  }

  /** Clients with a control channel up, by label. */
  get clients(): string[] {
    return this.core?.clients ?? [];
  }

  /** Every client that had a control channel since the start, by label: `true` while it is up (the health indicator reports the others as down). */
  get knownClients(): ReadonlyMap<string, boolean> {
    return this.seen;
  }

  /** The routes served for `client`, with their public ports. */
  routesOf(client: string): ServedRoute[] {
    return this.core?.routesOf(client) ?? [];
  }

  /** Per route and per client figures (zeros before init, or without a server end). */
  get stats(): TunnelStatsSnapshot {
    return this.core?.stats ?? emptyTunnelStats();
  }

  /** Builds the core server over `pool` (the lifecycle calls it at init). */
  attach(pool: ServerPool): void {
    const options = this.registration.server;
    if (!options || this.core) return;
    // The core logs the tunnel's life (rate-limited where failures repeat) through this service's Nest Logger.
    const server = new TunnelServer({ logger: this.logger, ...options, pool });
    const tunnel = this.name;
    const next = (event: TunnelServerEvent): void => this.subject.next(event);
    server.on('client', (client, routes) => {
      this.seen.set(client, true);
      next({ type: 'client-up', tunnel, client, routes });
    });
    server.on('client-gone', (client, error) => {
      this.seen.set(client, false);
      next({ type: 'client-down', tunnel, client, ...(error ? { error } : {}) });
    });
    server.on('refused', (client, answer) => next({ type: 'refused', tunnel, client, answer }));
    server.on('duplicate', (client) => next({ type: 'duplicate', tunnel, client }));
    server.on('opened', (event) => next({ type: 'connection-opened', tunnel, ...event }));
    server.on('connection', (event) => next({ type: 'connection-closed', tunnel, ...event }));
    server.on('accounted', (event) => next({ type: 'accounted', tunnel, ...event }));
    server.on('unaccounted', (event) => next({ type: 'unaccounted', tunnel, ...event }));
    server.on('open-failed', (event) => next({ type: 'open-failed', tunnel, ...event }));
    server.on('collision', (event) => next({ type: 'collision', tunnel, ...event }));
    this.core = server;
  }

  /** Starts claiming control channels (the module does it on bootstrap unless `autoStart` is false). Idempotent. */
  async start(): Promise<void> {
    await this.tunnel.start();
  }

  /**
   * Drains: tells every client, stops opening, lets tunnelled connections
   * finish within `closeTimeout`, cuts the rest; completes `events$`. The
   * module does it on shutdown, before the pools close. Idempotent, never rejects.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.core?.close();
    } catch (error) {
      this.logger.error(`tunnel server '${this.name}' failed to close: ${describe(error)}`);
    }
    this.subject.complete();
  }
}
