import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { encodeId, type IdWireForm } from '../../core/ids.js';
import type { Admission, ServerAcceptor, ServerTransport } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { listen } from '../shared/listen.js';
import { resetOnCut } from './reset-on-cut.js';
import { createServerSecureContext, type ServerTlsInput } from '../shared/tls.js';

export interface TcpServerOptions {
  /** Interface to listen on (default '127.0.0.1'; '0.0.0.0' or '::' to serve other machines). */
  host?: string;
  /** Port to listen on (default 0: an ephemeral port, see `address()`). */
  port?: number;
  /** Use your own `net.Server`; it is listened on `port`/`host` unless already listening. */
  server?: net.Server;
  /** TLS 1.3: { key, cert }, { secureContext }, or 'self-signed' (a certificate made at start). Plain TCP when unset. */
  tls?: ServerTlsInput;
  /** TCP keep-alive period in ms (default 30000). */
  keepAlive?: number;
  /** ID wire form: 'hex8' (default) or 'raw4' (which also issues 00000000 first). */
  idFormat?: IdWireForm;
  /** Bound on TLS plus writing the ID, in ms (default 10000): a silent peer cannot hold a slot longer. */
  handshakeTimeout?: number;
}

export const TCP_SERVER_OPTION_KEYS = ['host', 'port', 'server', 'tls', 'keepAlive', 'idFormat', 'handshakeTimeout'] as const;

interface ResolvedTcpServer {
  /** The option's full name for messages ('server.port' under the Nest module). */
  portOption: string;
  host: string;
  port: number;
  server?: net.Server;
  secureContext?: tls.SecureContext;
  keepAlive: number;
  idFormat: IdWireForm;
  handshakeTimeout: number;
}

export function resolveTcpServerOptions(read: OptionReader): ResolvedTcpServer {
  const server = read.raw('server');
  if (server !== undefined && !(server instanceof net.Server)) read.fail('server', 'a net.Server');
  const tlsInput = read.raw('tls') as ServerTlsInput | undefined;
  return {
    portOption: read.name('port'),
    host: read.string('host') ?? '127.0.0.1',
    port: read.int('port', 0, 0, 65535),
    ...(server ? { server: server as net.Server } : {}),
    ...(tlsInput !== undefined ? { secureContext: createServerSecureContext(tlsInput, read.name('tls')) } : {}),
    keepAlive: read.ms('keepAlive', 30_000),
    idFormat: read.oneOf('idFormat', ['hex8', 'raw4'] as const, 'hex8'),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
  };
}

/**
 * Accepts pooled connections: capacity and address checks before any TLS
 * (a refusal is a bare close, as in the Go pools), then the optional TLS
 * handshake, then the ID in a single write, each connection on its own so a
 * silent peer never blocks the others. Pooled sockets are half-open, as on
 * the client side.
 */
export class TcpServerTransport implements ServerTransport {
  readonly kind: string;
  readonly firstIdZero: boolean;
  private server?: net.Server;
  private ownsServer = false;
  private readonly handshakes = new Set<Duplex>();
  private onConnection?: (socket: net.Socket) => void;

  constructor(private readonly config: ResolvedTcpServer) {
    this.kind = config.secureContext ? 'tls' : 'tcp';
    this.firstIdZero = config.idFormat === 'raw4';
  }

  async listen(acceptor: ServerAcceptor): Promise<void> {
    const server = this.config.server ?? net.createServer({ noDelay: true, allowHalfOpen: true });
    this.server = server;
    this.onConnection = (socket) => this.handle(socket, acceptor);
    server.on('connection', this.onConnection);
    if (server.listening) return;
    this.ownsServer = true;
    try {
      await listen(server, this.config.port, this.config.host, this.config.portOption);
    } catch (error) {
      server.off('connection', this.onConnection);
      throw error;
    }
  }

  address(): { address: string; port: number; family: string } | null {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address : null;
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    if (this.onConnection) server.off('connection', this.onConnection);
    for (const stream of this.handshakes) stream.destroy();
    this.handshakes.clear();
    if (this.ownsServer && server.listening) {
      // Frees the port now; connections already handed to the application
      // stay theirs (server.close's callback would wait for them).
      server.close();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private handle(socket: net.Socket, acceptor: ServerAcceptor): void {
    const admission = acceptor.admit(socket.remoteAddress);
    if (typeof admission === 'string') {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.config.keepAlive);
    // Pooled streams are half-open (a tunnel carries a FIN one way only);
    // set here too for a server of the user's own. A TLSSocket takes it
    // from the socket it wraps.
    socket.allowHalfOpen = true;
    const secureContext = this.config.secureContext;
    const stream: Duplex = secureContext ? new tls.TLSSocket(socket, { isServer: true, secureContext }) : socket;
    this.handshakes.add(stream);
    let timer: NodeJS.Timeout | undefined;
    const fail = (reason: string, error?: unknown): void => {
      cleanup();
      stream.destroy();
      socket.destroy();
      admission.fail(reason, error);
    };
    const onError = (error: unknown): void => fail(secureContext ? 'tls' : 'socket-error', error);
    // Half-open sockets do not close on the peer's FIN: before the ID it
    // ends the handshake here ('end'), or the socket would linger until the
    // timeout.
    const onClose = (): void => fail('closed-in-handshake');
    const cleanup = (): void => {
      clearTimeout(timer);
      this.handshakes.delete(stream);
      stream.off('error', onError);
      stream.off('close', onClose);
      stream.off('end', onClose);
      socket.off('error', onError);
    };
    timer = setTimeout(() => fail('handshake-timeout'), this.config.handshakeTimeout);
    stream.on('error', onError);
    stream.on('close', onClose);
    stream.on('end', onClose); // the TLSSocket reads the wrapped socket's FIN itself
    if (stream !== socket) socket.on('error', onError);
    const sendId = (): void => {
      resetOnCut(stream, socket); // pooled from here: destroy() before end() is an RST, the peer reads a cut
      this.sendId(stream, admission, cleanup);
    };
    if (secureContext) stream.once('secure', sendId);
    else sendId();
  }

  private sendId(stream: Duplex, admission: Admission, cleanup: () => void): void {
    cleanup();
    // One write, so the ID leaves in one segment / one TLS record: the Go
    // client reads it with a single read.
    stream.write(encodeId(admission.id, this.config.idFormat));
    admission.accept(stream);
  }
}
