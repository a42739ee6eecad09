import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ClientPoolService, isValidId } from '../lib/index.js';
import type { SampleConfig } from './config.js';
import { formatEndpoint, type TunnelEndpoints } from './endpoints.js';
import { SAMPLE_CONFIG, SAMPLE_ENDPOINTS, SAMPLE_TLS } from './sample.constants.js';
import { describe, isDisconnect, readLines, splice } from './sockets.js';
import { TargetService } from './target.js';
import { connectControl, type TunnelTlsMaterial } from './tls.js';

/** A line is an ID (8 characters) or `fail <id>`; a longer one is not our protocol. */
const MAX_LINE = 64;

/**
 * The tunnel's exit (client side). It holds a control connection to the
 * entry (redialled after `CONTROL_RETRY` ms whenever it drops), reads one ID
 * per line, takes exactly that pooled stream from the client pool and pipes
 * it into a fresh connection to the target service. When it cannot take the
 * stream it answers `fail <id>` on the same connection; when the target is
 * unreachable it destroys the stream; either way the entry closes that
 * public connection.
 */
@Injectable()
export class TunnelExitService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('TunnelExit');
  private control?: net.Socket;
  private connected = false;
  private retryTimer?: NodeJS.Timeout;
  private readonly sockets = new Set<Duplex>();
  private readonly stopping = new AbortController();
  /** Consecutive failed control dials, so a long outage logs once, not every second. */
  private failures = 0;

  constructor(
    private readonly pool: ClientPoolService,
    private readonly target: TargetService,
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
    @Inject(SAMPLE_TLS) private readonly tls: TunnelTlsMaterial,
    @Inject(SAMPLE_ENDPOINTS) private readonly endpoints: TunnelEndpoints,
  ) {}

  /** After every module's init: in `both` the entry's control port is listening by now. */
  onApplicationBootstrap(): void {
    this.connect();
  }

  onModuleDestroy(): void {
    this.stopping.abort();
    clearTimeout(this.retryTimer);
    this.control?.destroy();
    this.control = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
  }

  /** The control connection is up. */
  get controlConnected(): boolean {
    return this.connected;
  }

  private connect(): void {
    if (this.stopping.signal.aborted) return;
    const to = this.endpoints.dial('control');
    const { socket, readyEvent } = connectControl(this.tls, to);
    this.control = socket;
    socket.setKeepAlive(true, 15_000);
    socket.once(readyEvent, () => {
      this.connected = true;
      if (this.failures > 0) this.logger.log(`control connection to ${formatEndpoint(to)} re-established`);
      else this.logger.log(`control connection to ${formatEndpoint(to)} established`);
      this.failures = 0;
    });
    socket.on('error', (error) => {
      if (this.stopping.signal.aborted) return;
      if (this.connected) this.logger.warn(`control connection to ${formatEndpoint(to)}: ${describe(error)}`);
      else if (this.failures++ === 0) this.logger.warn(`cannot reach the control port ${formatEndpoint(to)}: ${describe(error)}; retrying every ${this.config.reconnectDelay} ms`);
    });
    socket.on('close', () => {
      if (this.control === socket) this.control = undefined;
      const wasConnected = this.connected;
      this.connected = false;
      if (this.stopping.signal.aborted) return;
      if (wasConnected) this.logger.warn(`control connection to ${formatEndpoint(to)} closed; redialling in ${this.config.reconnectDelay} ms`);
      this.retryTimer = setTimeout(() => this.connect(), this.config.reconnectDelay);
    });
    readLines(socket, (line) => void this.forward(line), MAX_LINE, (length) => {
      this.logger.warn(`control connection sent ${length} bytes without a newline: not an ID, dropping the connection`);
      socket.destroy();
    });
  }

  private async forward(id: string): Promise<void> {
    if (!isValidId(id)) {
      this.logger.warn(`ignoring control line ${JSON.stringify(id)}: not an 8-hex-digit ID`);
      return;
    }
    let stream: Duplex;
    try {
      stream = await this.pool.outgoingGet(id, this.config.handoffTimeout);
    } catch (error) {
      if (this.stopping.signal.aborted) return;
      this.logger.warn(`no pooled stream for ID ${id}: ${describe(error)}`);
      // Tell the entry, which closes the public connection waiting on that stream.
      if (this.connected) this.control?.write(`fail ${id}\n`);
      return;
    }
    if (this.stopping.signal.aborted) {
      stream.destroy();
      return;
    }
    this.track(stream);
    const to = this.endpoints.dial('target');
    // Half-open, as the pooled stream: the target's FIN ends only its
    // direction, and what the client still sends reaches the target.
    const socket = net.connect({ host: to.host, port: to.port, noDelay: true, allowHalfOpen: true });
    this.track(socket);
    // Registered before splice writes anything, so the tag is there before the request is.
    let taggedPort: number | undefined;
    socket.once('connect', () => {
      taggedPort = socket.localPort;
      if (taggedPort !== undefined) this.target.tag(taggedPort, id);
    });
    splice(stream, socket, (error) => {
      if (taggedPort !== undefined) this.target.untag(taggedPort);
      // Target unreachable (ECONNREFUSED...): splice destroyed the pooled stream, which closes the public connection at the entry.
      if (!error || isDisconnect(error)) return;
      this.logger.warn(`tunnelled connection ${id} to the target ${formatEndpoint(to)}: ${describe(error)}`);
    });
  }

  private track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}
