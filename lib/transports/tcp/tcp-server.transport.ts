import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { encodeId, type IdWireForm } from '../../core/ids.js';
import type { ServerAcceptor, ServerTransport } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { FrontDoor, type Visit } from '../common/front-door.js';
import { listen, type Disposer } from '../../core/listeners.js';
import { listen as listenOn } from '../common/listen.js';
import { resetOnCut } from './reset-on-cut.js';
import { announceSelfSigned, clientCertificateIdentity, resolveServerTls, type ServerTls, type ServerTlsInput } from '../common/tls.js';
import { setStreamIdentity } from '../../core/stream-identity.js';
import { resolveServerAuth, type ServerAuth, type ServerAuthOptions } from '../../auth/keys.js';
import { tcpServerAuthentication } from './tcp-auth.js';

export interface TcpServerOptions {
  /** Interface to listen on (default '127.0.0.1'; '0.0.0.0' or '::' to serve other machines). */
  host?: string;
  /** Port to listen on (default 0: an ephemeral port, see `address()`). */
  port?: number;
  /** Use your own `net.Server`; it is listened on `port`/`host` unless already listening. */
  server?: net.Server;
  /** TLS 1.3: { key, cert }, { secureContext }, or 'self-signed' (a certificate made at start). Plain TCP when unset. `ca` + `requestCert: true`: mutual TLS. */
  tls?: ServerTlsInput;
  /** TCP keep-alive period in ms (default 30000). */
  keepAlive?: number;
  /** ID wire form: 'hex8' (default) or 'raw4' (which also issues 00000000 first). */
  idFormat?: IdWireForm;
  /** Bound on TLS, the authentication exchange and writing the ID, in ms (default 10000): a silent peer cannot hold a slot longer. */
  handshakeTimeout?: number;
  /**
   * Shared-key authentication of every pooled connection (off by default:
   * the wire is then the Go pools' own): no ID before a client proved a key.
   * `key`: one key, or several during a rotation (each `{ id, key | env | file }`).
   */
  auth?: ServerAuthOptions;
}

export const TCP_SERVER_OPTION_KEYS = ['host', 'port', 'server', 'tls', 'keepAlive', 'idFormat', 'handshakeTimeout', 'auth'] as const;

interface ResolvedTcpServer {
  /** The option's full name for messages ('server.port' under the Nest module). */
  portOption: string;
  host: string;
  port: number;
  server?: net.Server;
  secureContext?: tls.SecureContext;
  serverTls?: ServerTls;
  keepAlive: number;
  idFormat: IdWireForm;
  handshakeTimeout: number;
  /** Resolved `auth` (keys held out of reach of JSON and inspect); unset: no authentication. */
  auth?: ServerAuth;
}

export function resolveTcpServerOptions(read: OptionReader): ResolvedTcpServer {
  const server = read.raw('server');
  if (server !== undefined && !(server instanceof net.Server)) read.fail('server', 'a net.Server');
  const tlsInput = read.raw('tls') as ServerTlsInput | undefined;
  const serverTls = tlsInput !== undefined ? resolveServerTls(tlsInput, read.name('tls')) : undefined;
  const auth = resolveServerAuth(read.raw('auth'), read.name('auth'));
  return {
    portOption: read.name('port'),
    host: read.string('host') ?? '127.0.0.1',
    port: read.int('port', 0, 0, 65535),
    ...(server ? { server: server as net.Server } : {}),
    ...(serverTls ? { secureContext: serverTls.secureContext, serverTls } : {}),
    keepAlive: read.ms('keepAlive', 30_000),
    idFormat: read.oneOf('idFormat', ['hex8', 'raw4'] as const, 'hex8'),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    ...(auth ? { auth } : {}),
  };
}

/** A fatal TLS alert record, protocol_version (70), as a TLS 1.2/1.3 peer sends it. */
const TLS_PROTOCOL_VERSION_ALERT = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]);

/** The start of a TLS record: handshake (0x16), then a 3.x version. */
export function isTlsRecord(bytes: Buffer): boolean {
  return bytes.length >= 2 && bytes[0] === 0x16 && bytes[1] === 0x03;
}

/**
 * Accepts pooled connections through the front door (capacity and address
 * checks before any TLS, a refusal being a bare close as in the Go pools,
 * then the optional TLS handshake under the deadline), then writes the ID in
 * a single write, each connection on its own so a silent peer never blocks
 * the others. Pooled sockets are half-open, as on the client side.
 */
export class TcpServerTransport implements ServerTransport {
  readonly kind: string;
  readonly firstIdZero: boolean;
  /**
   * Clients of this transport send nothing before the server hands a stream
   * out: bytes on an idle stream drop it (see ServerTransport.quietIdle).
   */
  readonly quietIdle = true;
  private server?: net.Server;
  private ownsServer = false;
  private door?: FrontDoor;
  /** Stops taking the server's connections. */
  private stopAccepting?: Disposer;

  /**
   * Not for direct use: takes options already validated. Build one with `tcpTransport.server(options)`
   * (or give the pool factory `transport: 'tcp'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedTcpServer) {
    this.kind = config.secureContext ? 'tls' : 'tcp';
    this.firstIdZero = config.idFormat === 'raw4';
  }

  async listen(acceptor: ServerAcceptor): Promise<void> {
    const server = this.config.server ?? net.createServer({ noDelay: true, allowHalfOpen: true });
    this.server = server;
    const { secureContext, keepAlive, handshakeTimeout } = this.config;
    // One pooled stream per connection: admitted (and its ID drawn) at accept, before any TLS.
    const door = new FrontDoor(acceptor, {
      admit: 'stream',
      ...(secureContext ? { secureContext } : {}),
      ...(this.config.serverTls?.requestCert ? { requestCert: true } : {}),
      keepAlive,
      noDelay: true,
      halfOpen: true,
      handshakeTimeout,
      // After TLS, a failure is the connection's (a reset before or during the ID write), not TLS's.
      errorAfterSecure: 'socket-error',
      // After TLS and before the ID: challenge, proof, then ACCEPT goes out with the ID (sendId).
      ...(this.config.auth ? { authenticate: tcpServerAuthentication(this.config.auth, this.config.idFormat) } : {}),
    });
    this.door = door;
    announceSelfSigned(this.config.serverTls, acceptor.log?.bind(acceptor));
    this.stopAccepting = listen(server, { connection: (socket: net.Socket) => door.enter(socket, (visit) => this.sendId(visit)) });
    if (server.listening) return;
    this.ownsServer = true;
    try {
      await listenOn(server, this.config.port, this.config.host, this.config.portOption, (reason) => acceptor.refused(reason));
    } catch (error) {
      this.stopAccepting();
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
    this.stopAccepting?.();
    this.door?.close();
    if (this.ownsServer && server.listening) {
      // Frees the port now; connections already handed to the application
      // stay theirs (server.close's callback would wait for them).
      server.close();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * One write, so the ID leaves in one segment / one TLS record: the Go
   * client reads it with a single read. The stream joins the pool once the
   * write is done: a peer that reset before it (the write fails) is a
   * failed handshake, never a pooled stream, and its error meets the
   * handshake's listeners, not an application that could not listen yet.
   */
  private sendId(visit: Visit): void {
    const { stream, socket } = visit;
    const admission = visit.admission!;
    resetOnCut(stream, socket); // pooled from here: destroy() before end() is an RST, the peer reads a cut
    const id = encodeId(admission.id, this.config.idFormat);
    const proved = visit.authenticated;
    // Authenticated: ACCEPT and the ID in one write, as the ID alone is otherwise.
    stream.write(proved?.reply ? Buffer.concat([proved.reply, id]) : id, (error) => {
      if (error) return visit.fail('socket-error', error);
      // Destroyed on the way (its 'close' failed the visit, which settled the admission).
      if (stream.destroyed || !visit.open) return;
      visit.done();
      // Who this client is: the key it proved; else, with mutual TLS, its verified certificate
      // (with both, the key wins: the certificate is still on the TLS socket, getPeerCertificate()).
      const identity = proved?.identity ?? clientCertificateIdentity(stream);
      if (identity) setStreamIdentity(stream, identity);
      admission.accept(stream);
    });
  }

  /**
   * A TLS record (a ClientHello: 0x16 0x03) on a plain port is a client
   * dialing with TLS on: answered with a TLS alert (protocol_version), so
   * its TLS layer fails at once on bytes that are not TLS and it can say
   * "the server does not speak TLS" (it already got the ID before it); then
   * closed. Counted as 'tls-on-plain'.
   */
  refuseIdleData(stream: Duplex, bytes: Buffer): 'tls-on-plain' | undefined {
    if (this.config.secureContext || !isTlsRecord(bytes)) return undefined;
    if (stream.destroyed || !stream.writable) {
      stream.destroy();
    } else {
      stream.end(TLS_PROTOCOL_VERSION_ALERT, () => stream.destroy());
      // A peer that never reads would hold the socket open with our unsent bytes.
      const timer = setTimeout(() => stream.destroy(), 2000);
      stream.once('close', () => clearTimeout(timer));
    }
    return 'tls-on-plain';
  }
}
