import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocketServer, type ServerOptions, type WebSocket } from 'ws';
import { InvalidOptionsError } from '../../core/errors.js';
import { encodeId } from '../../core/ids.js';
import type { Admission, Refusal, ServerAcceptor, ServerTransport } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { show } from '../../core/validate.js';
import { listen } from '../shared/listen.js';
import { forwardedFor } from '../shared/forwarded-for.js';
import { createServerSecureContext, type ServerTlsInput } from '../shared/tls.js';
import { wsMasking } from './masking.js';
import { HALF_CLOSE_HEADER, HALF_CLOSE_VERSION, WebSocketDuplex } from './ws-duplex.js';
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
}

export const WS_SERVER_OPTION_KEYS = [
  'host', 'port', 'server', 'path', 'tls', 'trustProxy',
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
  trustedProxies: number;
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
  return {
    portOption: read.name('port'),
    host: read.string('host') ?? '127.0.0.1',
    port: read.int('port', 0, 0, 65535),
    ...(server ? { server } : {}),
    path,
    ...(tlsInput !== undefined ? { secureContext: createServerSecureContext(tlsInput, read.name('tls')) } : {}),
    trustedProxies: trustProxy === true ? 1 : typeof trustProxy === 'number' ? trustProxy : 0,
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

/** Bodies as the Go server writes them. */
const REFUSALS: Record<Refusal, { status: number; body: string }> = {
  full: { status: 503, body: 'pool full\n' },
  busy: { status: 503, body: 'pool full\n' },
  'peer-busy': { status: 503, body: 'pool full\n' },
  'connection-busy': { status: 503, body: 'pool full\n' },
  closed: { status: 503, body: 'pool closed\n' },
  ip: { status: 403, body: 'unauthorized\n' },
};

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
  private acceptor?: ServerAcceptor;
  /** Where upgrades arrive: the given server, or the HTTP layer of our own port. */
  private http?: http.Server | https.Server;
  /** Our own port, when no server was given. */
  private listener?: net.Server;
  /** Connections to our own port that have not upgraded yet. */
  /** Connections before their upgrade request: their deadline and their handshake slot. */
  private readonly pending = new Map<Duplex, { timer: NodeJS.Timeout; release: () => void }>();
  private upgrades = 0;
  /** Messages refused for exceeding maxPayload (closed with 1009). */
  private oversizedMessages = 0;
  /** Connections already counted as refused (TLS, parser, not an upgrade): not counted again when they close. */
  private readonly refusedConnections = new WeakSet<Duplex>();

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
  }

  /** 'wss' when upgrades arrive over TLS (our own port's, or an https.Server's). */
  get kind(): string {
    return this.config.secureContext || this.http instanceof https.Server ? 'wss' : 'ws';
  }

  async listen(acceptor: ServerAcceptor): Promise<void> {
    this.acceptor = acceptor;
    if (this.config.server) {
      const server = this.config.server();
      if (!(server instanceof http.Server || server instanceof https.Server)) {
        throw new InvalidOptionsError('server', `gave ${show(server)} when the pool started, expected ${SERVER_EXPECTED}`);
      }
      // A server we were given may listen later (Nest listens after module init).
      this.http = server;
      this.http.on('upgrade', this.onUpgrade);
      return;
    }
    // Without a Host header Node would answer 400 itself, uncounted: let onPlainRequest refuse (and count) it.
    const server = http.createServer({ requireHostHeader: false }, this.onPlainRequest);
    server.on('upgrade', this.onUpgrade);
    server.on('clientError', this.onClientError);
    this.http = server;
    const listener = net.createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.listener = listener;
    await listen(listener, this.config.port, this.config.host, this.config.portOption, (reason) => acceptor.refused(reason));
  }

  address(): { address: string; port: number; family: string } | null {
    const address = (this.listener ?? this.http)?.address();
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
    this.http?.off('upgrade', this.onUpgrade);
    for (const [socket, { timer, release }] of this.pending) {
      clearTimeout(timer);
      release();
      socket.destroy();
    }
    this.pending.clear();
    this.wss.close();
    if (this.listener?.listening) {
      // Frees the port now; streams already handed out stay open.
      this.listener.close();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  stats(): Record<string, unknown> {
    return { upgrades: this.upgrades, oversizedMessages: this.oversizedMessages, masking: wsMasking() };
  }

  /** Our own port: optional TLS, then plain HTTP parsing, under one handshake deadline. */
  private onConnection(socket: net.Socket): void {
    // The peer address is checked here, before TLS (unless a trusted proxy
    // names the real peer in the upgrade request); TLS and the upgrade
    // request come before any admission: hold a handshake slot for them.
    const release = this.acceptor?.connecting(socket.remoteAddress, { checkAddress: this.config.trustedProxies === 0 }) ?? (() => undefined);
    if (typeof release === 'string') {
      socket.destroy();
      return;
    }
    socket.setKeepAlive(true, this.config.keepAlive.keepAlive);
    socket.on('error', () => socket.destroy());
    const { secureContext } = this.config;
    const stream: Duplex = secureContext ? new tls.TLSSocket(socket, { isServer: true, secureContext }) : socket;
    const timer = setTimeout(() => {
      this.pending.delete(stream);
      release();
      stream.destroy();
      socket.destroy();
      this.acceptor?.refused('handshake-timeout');
    }, this.config.handshakeTimeout);
    this.pending.set(stream, { timer, release });
    stream.once('close', () => {
      clearTimeout(timer);
      release();
      // Closed before its upgrade request (or mid-TLS), and not refused for a reason of its own.
      if (this.pending.delete(stream) && !this.refusedConnections.has(stream)) this.acceptor?.refused('closed-in-handshake');
    });
    if (!secureContext) {
      this.http!.emit('connection', socket);
      return;
    }
    const onTlsError = (): void => {
      this.refusedConnections.add(stream);
      stream.destroy();
      socket.destroy();
      this.acceptor?.refused('tls');
    };
    stream.once('error', onTlsError);
    stream.once('secure', () => {
      stream.off('error', onTlsError);
      this.http!.emit('connection', stream);
    });
  }

  private readonly onPlainRequest = (request: http.IncomingMessage, response: http.ServerResponse): void => {
    this.refusedConnections.add(request.socket);
    this.acceptor?.refused('not-upgrade');
    const body = 'this port serves WebSocket upgrades of a tunnel pool only\n';
    response.writeHead(426, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Upgrade: 'websocket', Connection: 'close' });
    response.end(body);
  };

  /**
   * Our own port: a request Node's HTTP parser cannot take (not HTTP at
   * all, headers past its limit) is counted, then answered as Node would
   * (400, or 431 for oversized headers) and dropped. A peer that hung up
   * mid-request is just dropped.
   */
  private readonly onClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    // Over TLS, records already decrypted still reach the failed parser: one refusal per connection.
    if (this.refusedConnections.has(socket)) return;
    this.refusedConnections.add(socket);
    socket.on('error', () => undefined);
    if (error.code !== 'ECONNRESET' && error.code !== 'EPIPE') {
      const tooLarge = error.code === 'HPE_HEADER_OVERFLOW';
      this.acceptor?.refused(tooLarge ? 'headers-too-large' : 'bad-request');
      if (socket.writable && (socket as Duplex & { bytesWritten?: number }).bytesWritten === 0) {
        socket.write(tooLarge ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      }
    }
    socket.destroy();
  };

  private readonly onUpgrade = (request: http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    const acceptor = this.acceptor!;
    if (!this.matchesPath(request.url)) {
      // On a shared server another 'upgrade' listener may own this path; alone, answer so the socket does not hang.
      if (this.config.server && this.http!.listenerCount('upgrade') > 1) return;
      this.settle(socket);
      acceptor.refused('path');
      this.reject(socket, 404, 'not found\n');
      return;
    }
    this.settle(socket);
    const address = forwardedFor(request.socket.remoteAddress, request.headers, this.config.trustedProxies);
    const admission = acceptor.admit(address);
    if (typeof admission === 'string') {
      const { status, body } = REFUSALS[admission];
      this.reject(socket, status, body);
      return;
    }
    let upgraded = false;
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      upgraded = true;
      this.accept(ws, socket, admission, offersHalfClose(request));
    });
    // handleUpgrade completes (or refuses a malformed request with 400) synchronously.
    if (!upgraded) admission.fail('bad-upgrade');
  };

  private accept(ws: WebSocket, socket: Duplex, admission: Admission, halfClose: boolean): void {
    this.upgrades++;
    watchOversized(ws, () => this.oversizedMessages++);
    if (socket instanceof net.Socket) socket.setKeepAlive(true, this.config.keepAlive.keepAlive);
    // The ID: one binary message of 4 raw bytes, before any application byte.
    ws.send(encodeId(admission.id, 'raw4'), { binary: true, compress: false, fin: true });
    admission.accept(new WebSocketDuplex(ws, socket, this.config.keepAlive, undefined, this.config.halfClose && halfClose));
  }

  private matchesPath(url: string | undefined): boolean {
    if (this.config.path === '*') return true;
    const raw = url ?? '/';
    const query = raw.indexOf('?');
    return (query === -1 ? raw : raw.slice(0, query)) === this.config.path;
  }

  /** The connection reached its upgrade request: no handshake deadline of ours from here. */
  private settle(socket: Duplex): void {
    const pending = this.pending.get(socket);
    if (pending === undefined) return;
    clearTimeout(pending.timer);
    pending.release();
    this.pending.delete(socket);
  }

  /** An HTTP refusal as the Go server writes it, then the connection closes. */
  private reject(socket: Duplex, status: number, body: string): void {
    socket.on('error', () => undefined);
    const head = [
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}`,
      'Content-Type: text/plain; charset=utf-8',
      'X-Content-Type-Options: nosniff',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'Connection: close',
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
    socket.once('finish', () => socket.destroy());
  }
}

/** The client offered the half-close extension (a Go npws client never does). */
function offersHalfClose(request: http.IncomingMessage): boolean {
  return request.headers[HALF_CLOSE_HEADER.toLowerCase()] === HALF_CLOSE_VERSION;
}

/** ws's 'headers' event, just before it writes the 101: accept the offer by echoing it. */
function acceptHalfClose(headers: string[], request: http.IncomingMessage): void {
  if (offersHalfClose(request)) headers.push(`${HALF_CLOSE_HEADER}: ${HALF_CLOSE_VERSION}`);
}
