import { Inject, Injectable, Logger, type OnModuleDestroy } from '@nestjs/common';
import http from 'node:http';
import net from 'node:net';
import { parseProxyHeader, type ProxyAddress } from '../lib/index.js';
import { formatEndpoint } from './endpoints.js';
import { closeServer, listen } from './sockets.js';
import { SAMPLE_TARGET } from './sample.constants.js';

/** The most bytes a PROXY header can take (v1's longest line; a v2 header from the tunnel is shorter). */
const MAX_PROXY_PREFIX = 232;

/**
 * The service behind the tunnel: a plain `node:http` server. The tunnel's
 * route sends a PROXY protocol v1 header first (`proxyProtocol: 'v1'`), so
 * the target answers with the address of the real client at the public end
 * (`x-tunnel-peer`); a request made straight to this port has no header and
 * is answered as direct.
 */
export class DemoTarget {
  private readonly http: http.Server;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private readonly peers = new WeakMap<net.Socket, ProxyAddress>();

  private constructor() {
    this.http = http.createServer((request, response) => {
      const peer = this.peers.get(request.socket as net.Socket);
      const body = peer ? `hello through the tunnel (from ${formatEndpoint({ host: peer.address, port: peer.port })})\n` : 'hello from the target (direct, not through the tunnel)\n';
      response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...(peer ? { 'x-tunnel-peer': formatEndpoint({ host: peer.address, port: peer.port }) } : {}) });
      response.end(request.method === 'HEAD' ? undefined : body);
    });
    this.http.keepAliveTimeout = 5000;
    this.server = net.createServer((socket) => this.accept(socket));
  }

  /** Listens on `port` (0: any free one) before the app starts, so the tunnel's route can name it. */
  static async start(port: number, host: string): Promise<DemoTarget> {
    const target = new DemoTarget();
    await listen(target.server, port, host, 'TARGET_PORT');
    return target;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Stops listening and ends every connection. Idempotent. */
  close(): Promise<void> {
    return closeServer(this.server, () => {
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
    });
  }

  /** Reads a PROXY header if the connection starts with one, then hands the connection to the HTTP server with every byte after it. */
  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const parsed = parseProxyHeader(buffered);
      if (parsed.status === 'incomplete' && buffered.length < MAX_PROXY_PREFIX) return;
      socket.off('data', onData);
      socket.pause();
      let rest = buffered;
      if (parsed.status === 'ok') {
        const source = parsed.header.endpoints?.source;
        if (source) this.peers.set(socket, source);
        rest = buffered.subarray(parsed.length);
      }
      if (rest.length > 0) socket.unshift(rest);
      this.http.emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
  }
}

/** Closes the demo target with the application. */
@Injectable()
export class TargetService implements OnModuleDestroy {
  private readonly logger = new Logger('Target');

  constructor(@Inject(SAMPLE_TARGET) readonly target: DemoTarget) {
    this.logger.log(`target HTTP service on port ${target.port}`);
  }

  async onModuleDestroy(): Promise<void> {
    await this.target.close();
  }
}
