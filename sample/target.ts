import { Inject, Injectable, Logger, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SampleConfig } from './config.js';
import type { TunnelEndpoints } from './endpoints.js';
import { closeServer, listen } from './sockets.js';
import { SAMPLE_CONFIG, SAMPLE_ENDPOINTS } from './sample.constants.js';

/**
 * The service behind the tunnel's exit: a plain `node:http` server. It names
 * the pooled stream each request came through; the exit tags its
 * connections by local port (`tag`), so a request made straight to this
 * port answers `id=direct`.
 */
@Injectable()
export class TargetService implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('Target');
  private readonly server: http.Server;
  private readonly tags = new Map<number, string>();

  constructor(
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
    @Inject(SAMPLE_ENDPOINTS) endpoints: TunnelEndpoints,
  ) {
    this.server = http.createServer((request, response) => {
      const id = this.tags.get(request.socket.remotePort ?? -1) ?? 'direct';
      const body = `hello through the tunnel (id=${id})\n`;
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-tunnel-id': id });
      response.end(request.method === 'HEAD' ? undefined : body);
    });
    this.server.keepAliveTimeout = 5000;
    endpoints.register('target', () => this.address()?.port);
  }

  async onModuleInit(): Promise<void> {
    await listen(this.server, this.config.ports.target, this.config.host, 'TARGET_PORT');
    this.logger.log(`target HTTP service on ${this.config.host}:${this.address()!.port}`);
  }

  async onModuleDestroy(): Promise<void> {
    this.tags.clear();
    await closeServer(this.server, () => this.server.closeAllConnections());
  }

  address(): AddressInfo | undefined {
    const address = this.server.address();
    return address && typeof address === 'object' ? address : undefined;
  }

  /** The exit's connection from `localPort` carries pooled stream `id` (until `untag`). */
  tag(localPort: number, id: string): void {
    this.tags.set(localPort, id);
  }

  untag(localPort: number): void {
    this.tags.delete(localPort);
  }
}
