import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ServerPoolService } from '../lib/index.js';
import type { SampleConfig } from './config.js';
import type { TunnelEndpoints } from './endpoints.js';
import { SAMPLE_CONFIG, SAMPLE_ENDPOINTS, SAMPLE_TLS } from './sample.constants.js';
import { boundPort, closeServer, describe, isDisconnect, listen, readLines, splice } from './sockets.js';
import { createControlServer, type TunnelTlsMaterial } from './tls.js';

/** Control lines from the exit are `fail <id>`; a longer one is not our protocol. */
const MAX_LINE = 64;

/**
 * The tunnel's entry (server side). Each connection to the public port
 * takes the oldest ready `[id, stream]` from the server pool, sends `id` on
 * its own line over the control connection, and pipes the public socket and
 * the pooled stream into each other. The exit, on reading `id`, takes the
 * other end of exactly that stream from its client pool; if it cannot, it
 * answers `fail <id>` and the entry closes that public connection.
 */
@Injectable()
export class TunnelEntryService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('TunnelEntry');
  private readonly publicServer: net.Server;
  private readonly controlServer: net.Server;
  /** The exit's control connection; the latest one wins. */
  private control?: net.Socket;
  private readonly sockets = new Set<Duplex>();
  /** Public sockets by the ID of the pooled stream they ride, while tunnelled. */
  private readonly tunnels = new Map<string, net.Socket>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly pool: ServerPoolService,
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
    @Inject(SAMPLE_TLS) tls: TunnelTlsMaterial,
    @Inject(SAMPLE_ENDPOINTS) endpoints: TunnelEndpoints,
  ) {
    // Half-open, as the pooled streams: a client's FIN ends only its
    // direction, and the reply still comes back (splice passes each end on).
    this.publicServer = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => void this.forward(socket));
    this.controlServer = createControlServer(tls, (socket) => this.attachControl(socket));
    endpoints.register('pool', () => this.pool.address()?.port);
    endpoints.register('control', () => boundPort(this.controlServer));
  }

  async onModuleInit(): Promise<void> {
    // The pool module has started the server pool already (imported modules initialise first).
    await listen(this.controlServer, this.config.ports.control, this.config.host, 'CONTROL_PORT');
    await listen(this.publicServer, this.config.ports.public, this.config.host, 'PUBLIC_PORT');
    this.logger.log(`public port ${this.config.host}:${this.publicPort}, control port ${this.config.host}:${this.controlPort}`);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping.abort();
    const drop = (): void => {
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
    };
    await Promise.all([closeServer(this.publicServer, drop), closeServer(this.controlServer, drop)]);
    this.control = undefined;
    this.tunnels.clear();
  }

  get publicPort(): number | undefined {
    return boundPort(this.publicServer);
  }

  get controlPort(): number | undefined {
    return boundPort(this.controlServer);
  }

  /** An exit is connected to the control port. */
  get exitConnected(): boolean {
    return this.control !== undefined;
  }

  private attachControl(socket: net.Socket): void {
    if (this.stopping.signal.aborted) {
      socket.destroy();
      return;
    }
    this.track(socket);
    socket.setKeepAlive(true, 15_000);
    socket.on('error', (error) => this.logger.warn(`control connection from ${socket.remoteAddress}: ${describe(error)}`));
    socket.on('close', () => {
      if (this.control !== socket) return;
      this.control = undefined;
      if (!this.stopping.signal.aborted) this.logger.warn('the exit disconnected from the control port');
    });
    // The exit answers `fail <id>` when it could not take a stream.
    readLines(socket, (line) => this.onControlLine(line), MAX_LINE, () => socket.destroy());
    const previous = this.control;
    this.control = socket;
    previous?.destroy();
    this.logger.log(`exit connected to the control port from ${socket.remoteAddress}:${socket.remotePort}`);
  }

  private async forward(socket: net.Socket): Promise<void> {
    this.track(socket);
    socket.on('error', () => undefined); // reported through splice, or irrelevant once destroyed
    if (!this.control) {
      this.fail(socket, 'no exit is connected to the control port');
      return;
    }
    let id: string;
    let stream: Duplex;
    try {
      [id, stream] = await this.pool.incomingGet(this.config.handoffTimeout);
    } catch (error) {
      // PoolTimeoutError: no pooled stream came in time; PoolClosedError: shutting down.
      this.fail(socket, `no pooled stream: ${describe(error)}`);
      return;
    }
    this.track(stream);
    const control = this.control;
    if (socket.destroyed || !control || control.destroyed) {
      stream.destroy();
      this.fail(socket, socket.destroyed ? 'the public peer left before the hand-off' : 'the exit disconnected before the hand-off');
      return;
    }
    control.write(`${id}\n`);
    this.tunnels.set(id, socket);
    splice(socket, stream, (error) => {
      if (this.tunnels.get(id) === socket) this.tunnels.delete(id);
      if (error && !isDisconnect(error)) this.logger.warn(`tunnelled connection ${id}: ${describe(error)}`);
    });
  }

  private onControlLine(line: string): void {
    const [verb, id] = line.split(' ');
    if (verb !== 'fail' || !id) {
      this.logger.warn(`ignoring control line ${JSON.stringify(line)} from the exit`);
      return;
    }
    const socket = this.tunnels.get(id);
    if (!socket) return;
    this.tunnels.delete(id);
    this.fail(socket, `the exit could not take pooled stream ${id}`);
  }

  private fail(socket: net.Socket, reason: string): void {
    if (!this.stopping.signal.aborted) this.logger.warn(`public connection from ${socket.remoteAddress}:${socket.remotePort} closed: ${reason}`);
    socket.destroy();
  }

  private track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}
