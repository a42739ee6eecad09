import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type tls from 'node:tls';
import type { ServerAcceptor } from '../../core/transport.js';
import { FrontDoor } from '../common/front-door.js';
import { listen } from '../common/listen.js';
import { writeParserRefusal, writeUpgradeRequired } from './ws-refusal.js';

export interface OwnPortOptions {
  readonly host: string;
  readonly port: number;
  readonly portOption: string;
  readonly secureContext?: tls.SecureContext;
  /** Mutual TLS: a verified client certificate is required. */
  readonly requestCert?: boolean;
  readonly keepAlive: number;
  readonly handshakeTimeout: number;
  /** Behind trusted proxies the socket's address is a proxy's: `allowedIps` is checked per upgrade instead. */
  readonly trustedProxies: number;
}

/**
 * The pool's own port for WebSocket upgrades: a listener whose connections
 * go through the front door (address, handshake slot, optional TLS, one
 * deadline until the upgrade request), then to a plain HTTP server that
 * emits their upgrades. What is not an upgrade is refused and counted once
 * per connection: a plain request (426, 'not-upgrade'), bytes Node's parser
 * cannot take (400 'bad-request', 431 'headers-too-large').
 */
export class WsOwnPort {
  /** Where upgrades arrive. */
  readonly http: http.Server;
  private readonly listener: net.Server;
  private readonly door: FrontDoor;

  constructor(
    private readonly acceptor: ServerAcceptor,
    private readonly options: OwnPortOptions,
  ) {
    // Without a Host header Node would answer 400 itself, uncounted: let onPlainRequest refuse (and count) it.
    this.http = http.createServer({ requireHostHeader: false }, this.onPlainRequest);
    this.http.on('clientError', this.onClientError);
    this.door = new FrontDoor(acceptor, {
      admit: 'connection',
      // Unless a trusted proxy names the real peer in the upgrade request.
      checkAddress: options.trustedProxies === 0,
      ...(options.secureContext ? { secureContext: options.secureContext } : {}),
      ...(options.requestCert ? { requestCert: true } : {}),
      keepAlive: options.keepAlive,
      noDelay: false, // the listener sets it
      halfOpen: false,
      handshakeTimeout: options.handshakeTimeout,
    });
    this.listener = net.createServer({ noDelay: true }, (socket) => this.door.enter(socket, (visit) => this.http.emit('connection', visit.stream)));
  }

  listen(): Promise<void> {
    const { port, host, portOption } = this.options;
    return listen(this.listener, port, host, portOption, (reason) => this.acceptor.refused(reason));
  }

  address(): net.AddressInfo | string | null {
    return this.listener.address();
  }

  /** The connection reached its upgrade request: no handshake deadline of ours from here. */
  arrived(socket: Duplex): void {
    this.door.visitOf(socket)?.done();
  }

  /** Frees the port now (streams already handed out stay open) and closes connections still before their upgrade. */
  async close(): Promise<void> {
    this.door.close();
    if (!this.listener.listening) return;
    this.listener.close();
    await new Promise((resolve) => setImmediate(resolve));
  }

  private readonly onPlainRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    this.door.visitOf(request.socket)?.refuse('not-upgrade');
    writeUpgradeRequired(response);
  };

  /**
   * A request Node's HTTP parser cannot take (not HTTP at all, headers past
   * its limit) is counted, then answered as Node would and dropped. A peer
   * that hung up mid-request is just dropped.
   */
  private readonly onClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    const visit = this.door.visitOf(socket);
    // Over TLS, records already decrypted still reach the failed parser: one refusal per connection.
    if (visit?.refused) return;
    socket.on('error', () => undefined);
    if (visit === undefined) return void socket.destroy(); // already out of the door: counted there
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE') {
      visit.forget();
    } else {
      const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
      visit.refuse(tooLarge ? 'headers-too-large' : 'bad-request');
      writeParserRefusal(socket, tooLarge);
    }
    socket.destroy();
  };
}
