import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { InvalidOptionsError } from '../../core/errors.js';
import { listen, type Disposer } from '../../core/listeners.js';
import { encodeId } from '../../core/ids.js';
import type { Admission, ServerAcceptor, ServerTransport } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { show } from '../../core/validate.js';
import { announceSelfSigned, clientCertificateIdentity, resolveServerTls, type ServerTls, type ServerTlsInput } from '../common/tls.js';
import { setStreamIdentity } from '../../core/stream-identity.js';
import { HeaderServerAuth } from '../../auth/header.js';
import { keyIdentity } from '../../auth/identity.js';
import { resolveServerAuth, type ServerAuth, type ServerAuthOptions } from '../../auth/keys.js';
import { wsMasking } from './masking.js';
import { WebSocketDuplex } from './ws-duplex.js';
import { WsOwnPort } from './ws-own-port.js';
import { acceptHalfClose, addAuthProof, upgradeHandler } from './ws-upgrade.js';
import { readWsCommonOptions, watchOversized, type ResolvedWsCommon, type WsCommonOptions } from './ws-options.js';

/** An HTTP(S) server, or where to get it when the pool starts: a function, a Nest `HttpAdapterHost`, or anything with `getHttpServer()`. */
export type HttpServerSource =
  | http.Server
  | https.Server
  | (() => http.Server | https.Server)
  | { getHttpServer(): unknown }
  | { readonly httpAdapter: { getHttpServer(): unknown } | undefined };

export interface WsServerOptions extends WsCommonOptions {
  /** Interface to listen on (default '127.0.0.1'; '0.0.0.0' or '::' to serve other machines). Not with `server`. */
  host?: string;
  /** Port to listen on (default 0: an ephemeral port, see `address()`). Not with `server`. */
  port?: number;
  /**
   * Serve upgrades on your own `http.Server`/`https.Server` at `path`,
   * beside its routes. It may start listening later; the pool never calls
   * `listen` or `close` on it. Also a function returning it, or a Nest
   * `HttpAdapterHost` (or adapter, or app), asked when the pool starts: a
   * Nest app creates its HTTP server only after its providers, so
   * `host.httpAdapter.getHttpServer()` in a pool options factory is still
   * undefined; pass `server: host` instead.
   */
  server?: HttpServerSource;
  /**
   * Upgrade path (default '/', what the Go client asks for); the query is
   * ignored. '*' accepts any path, as the Go server does: fine on a port of
   * its own, but on a shared server it would take every upgrade.
   */
  path?: string;
  /** TLS 1.3 on the pool's own port: { key, cert }, { secureContext }, or 'self-signed'. Not with `server` (its TLS is yours). */
  tls?: ServerTlsInput;
  /**
   * Check `allowedIps` against `X-Forwarded-For` instead of the socket's
   * address: `true` for one reverse proxy in front, a number for that many.
   * Off by default: anyone could write the header. The entry your outermost
   * proxy added is used, never one the client wrote.
   */
  trustProxy?: boolean | number;
  /**
   * Shared-key authentication of every upgrade (off by default: the Go
   * wire). An upgrade without a valid proof gets a 401 and no WebSocket,
   * counted 'auth'. See docs/extensions/auth.md.
   */
  auth?: ServerAuthOptions;
}

export const WS_SERVER_OPTION_KEYS = [
  'host', 'port', 'server', 'path', 'tls', 'trustProxy', 'auth',
  'keepAlive', 'pongTimeout', 'requirePong', 'maxPayload', 'handshakeTimeout', 'closeHandshakeTimeout', 'halfClose',
] as const;

interface ResolvedWsServer extends ResolvedWsCommon {
  /** The option's full name for messages ('server.port' under the Nest module). */
  portOption: string;
  host: string;
  port: number;
  /** The server to attach to, asked for when the pool starts. */
  server?: () => unknown;
  path: string;
  secureContext?: tls.SecureContext;
  serverTls?: ServerTls;
  trustedProxies: number;
  /** Shared-key authentication; undefined: none (the default wire). */
  auth?: ServerAuth;
}

export function resolveWsServerOptions(read: OptionReader): ResolvedWsServer {
  const server = serverSource(read.raw('server'));
  if (server === null) read.fail('server', SERVER_EXPECTED);
  if (server === undefined && read.has('server')) {
    // Silently opening a port of its own instead would hide the mistake.
    throw new InvalidOptionsError(
      read.name('server'),
      `got undefined, expected ${SERVER_EXPECTED}. In a Nest options factory host.httpAdapter.getHttpServer() is still undefined (Nest creates the HTTP server after the providers): pass server: host (the HttpAdapterHost), which the pool asks when it starts`,
    );
  }
  if (server !== undefined) {
    for (const key of ['host', 'port', 'tls'] as const) {
      if (read.raw(key) !== undefined) {
        throw new InvalidOptionsError(read.name(key), `${key} is for the port the pool opens itself; with server, the pool serves upgrades on that server (listen on it, and configure its TLS, yourself)`);
      }
    }
  }
  const path = read.string('path') ?? '/';
  if (path !== '*' && (!path.startsWith('/') || path.includes('?') || /[\s#]/.test(path))) {
    read.fail('path', 'a path starting with "/" (no query) or "*" for any path');
  }
  const trustProxy = read.raw('trustProxy');
  if (trustProxy !== undefined && typeof trustProxy !== 'boolean' && !(Number.isInteger(trustProxy) && (trustProxy as number) >= 0 && (trustProxy as number) <= 32)) {
    read.fail('trustProxy', 'true (one reverse proxy in front), false, or the number of proxies from 0 to 32');
  }
  const tlsInput = read.raw('tls') as ServerTlsInput | undefined;
  const serverTls = tlsInput !== undefined ? resolveServerTls(tlsInput, read.name('tls')) : undefined;
  const auth = resolveServerAuth(read.raw('auth'), read.name('auth'));
  return {
    portOption: read.name('port'),
    host: read.string('host') ?? '127.0.0.1',
    port: read.int('port', 0, 0, 65535),
    ...(server ? { server } : {}),
    path,
    ...(serverTls ? { secureContext: serverTls.secureContext, serverTls } : {}),
    trustedProxies: trustProxy === true ? 1 : typeof trustProxy === 'number' ? trustProxy : 0,
    ...(auth ? { auth } : {}),
    ...readWsCommonOptions(read),
  };
}

const SERVER_EXPECTED = 'an http.Server or https.Server, a function returning one, or a Nest HttpAdapterHost (or anything with getHttpServer())';

/** How to get the server when the pool starts; null for something that cannot give one. */
function serverSource(value: unknown): (() => unknown) | null | undefined {
  if (value === undefined) return undefined;
  if (value instanceof http.Server || value instanceof https.Server) return () => value;
  if (typeof value === 'function') return value as () => unknown;
  if (value !== null && typeof value === 'object') {
    if ('getHttpServer' in value && typeof value.getHttpServer === 'function') return () => (value as { getHttpServer(): unknown }).getHttpServer();
    if ('httpAdapter' in value) return () => (value as { httpAdapter?: { getHttpServer?: () => unknown } }).httpAdapter?.getHttpServer?.();
  }
  return null;
}

/**
 * Accepts pooled WebSockets on a port of its own or on a server it is given.
 * Every check runs on the upgrade request before the upgrade completes (path
 * → 404, capacity → 503, peer address → 403), so a refusal costs no
 * WebSocket; then the 101, the ID as one binary message of 4 raw bytes
 * (`00000000` first), and the stream joins the pool.
 */
export class WsServerTransport implements ServerTransport {
  readonly firstIdZero = true;
  private readonly wss: WebSocketServer;
  /** Where upgrades arrive: the given server, or the HTTP layer of our own port. */
  private http?: http.Server | https.Server;
  /** Our own port, when no server was given. */
  private ownPort?: WsOwnPort;
  /** Stops taking the server's upgrades. */
  private stopUpgrades?: Disposer;
  private upgrades = 0;
  /** Messages refused for exceeding maxPayload (closed with 1009). */
  private oversizedMessages = 0;
  /** Shared-key authentication: the pool's replay cache for unbound (ws://) proofs. */
  private readonly auth?: HeaderServerAuth;

  /**
   * Not for direct use: takes options already validated. Build one with `wsTransport.server(options)`
   * (or give the pool factory `transport: 'ws'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedWsServer) {
    const options: ServerOptions & { closeTimeout: number } = {
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: config.maxPayload,
      autoPong: true,
      skipUTF8Validation: true,
      // ws >= 8.19 (its types lag behind): how long close() waits for the peer's close frame.
      closeTimeout: config.closeHandshakeTimeout,
    };
    this.wss = new WebSocketServer(options);
    if (config.halfClose) this.wss.on('headers', acceptHalfClose);
    if (config.auth) {
      this.auth = new HeaderServerAuth(config.auth, 'ws');
      this.wss.on('headers', addAuthProof);
    }
  }

  /** 'wss' when upgrades arrive over TLS (our own port's, or an https.Server's). */
  get kind(): string {
    return this.config.secureContext || this.http instanceof https.Server ? 'wss' : 'ws';
  }

  async listen(acceptor: ServerAcceptor): Promise<void> {
    const { path, trustedProxies } = this.config;
    const upgrades = (server: http.Server | https.Server, shared: boolean, arrived: (socket: Duplex) => void): void => {
      this.http = server;
      const auth = this.auth ? { server: this.auth, bind: this.config.auth!.channelBinding } : undefined;
      const onUpgrade = upgradeHandler({ acceptor, wss: this.wss, path, trustedProxies, shared, server, arrived, ...(auth ? { auth } : {}), accept: (...args) => this.accept(...args) });
      this.stopUpgrades = listen(server, { upgrade: onUpgrade });
    };
    if (this.config.server) {
      const server = this.config.server();
      if (!(server instanceof http.Server || server instanceof https.Server)) {
        throw new InvalidOptionsError('server', `gave ${show(server)} when the pool started, expected ${SERVER_EXPECTED}`);
      }
      // A server we were given may listen later (Nest listens after module init); its connections are its own.
      upgrades(server, true, () => undefined);
      return;
    }
    const { host, port, portOption, secureContext, handshakeTimeout } = this.config;
    announceSelfSigned(this.config.serverTls, acceptor.log?.bind(acceptor));
    const ownPort = new WsOwnPort(acceptor, { host, port, portOption, ...(secureContext ? { secureContext } : {}), requestCert: this.config.serverTls?.requestCert === true, keepAlive: this.config.keepAlive.keepAlive, handshakeTimeout, trustedProxies });
    this.ownPort = ownPort;
    upgrades(ownPort.http, false, (socket) => ownPort.arrived(socket));
    await ownPort.listen();
  }

  address(): { address: string; port: number; family: string } | null {
    const address = (this.ownPort ?? this.http)?.address();
    return address && typeof address === 'object' ? address : null;
  }

  /**
   * A pooled stream whose WebSocket began closing is not handed out, unless
   * the peer's bytes wait in it: those (and the end after them) are the
   * taker's, as on a tcp socket that got data and then a FIN.
   */
  isUsable(stream: Duplex): boolean {
    return !(stream instanceof WebSocketDuplex) || stream.open || stream.readableLength > 0;
  }

  async close(): Promise<void> {
    this.stopUpgrades?.();
    this.wss.close();
    await this.ownPort?.close();
  }

  stats(): Record<string, unknown> {
    return { upgrades: this.upgrades, oversizedMessages: this.oversizedMessages, masking: wsMasking() };
  }

  /** The upgrade is done: the ID as one binary message of 4 raw bytes, before any application byte; then the stream joins the pool. */
  private accept(ws: WebSocket, socket: Duplex, admission: Admission, halfClose: boolean, keyId: string | undefined): void {
    this.upgrades++;
    watchOversized(ws, () => this.oversizedMessages++);
    if (socket instanceof net.Socket) socket.setKeepAlive(true, this.config.keepAlive.keepAlive);
    ws.send(encodeId(admission.id, 'raw4'), { binary: true, compress: false, fin: true });
    const stream = new WebSocketDuplex(ws, socket, this.config.keepAlive, undefined, this.config.halfClose && halfClose);
    // Mutual TLS (our port's front door, or an https.Server of yours with requestCert): which client this is.
    // With both a key and a client certificate, the key names the client: it is what the operator hands out per client.
    const identity = keyId !== undefined ? keyIdentity(keyId) : clientCertificateIdentity(socket);
    if (identity) setStreamIdentity(stream, identity);
    admission.accept(stream);
  }
}
