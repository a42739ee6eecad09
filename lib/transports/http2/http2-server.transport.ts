import type { Duplex } from 'node:stream';
import http2, { type Http2Server, type Http2Stream, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { SlotGate } from '../../core/admission.js';
import { InvalidOptionsError } from '../../core/errors.js';
import type { Admission, ServerAcceptor, ServerTransport } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { listen } from '../shared/listen.js';
import { readExact } from '../shared/read-exact.js';
import { createServerSecureContext, type ServerTlsInput } from '../shared/tls.js';
import { resolveHttp2Flow, SESSION_CLOSE_GRACE, type Http2FlowOptions, type ResolvedHttp2Flow } from './http2-settings.js';
import { Http2StreamAbortedError } from './http2-stream.error.js';
import { closedGracefully, guardStream, type StreamOwner } from './stream-guard.js';

export interface Http2ServerOptions extends Http2FlowOptions {
  /** Interface to listen on (default '127.0.0.1'; '0.0.0.0' or '::' to serve other machines). */
  host?: string;
  /** Port to listen on (default 0: an ephemeral port, see `address()`). */
  port?: number;
  /** Required: TLS 1.3 with { key, cert }, { secureContext }, or 'self-signed'. */
  tls?: ServerTlsInput;
  /** TCP keep-alive period in ms (default 30000); a session with no stream for twice this is closed. */
  keepAlive?: number;
  /** Bound on TLS and on waiting for a stream's first byte, in ms (default 10000). */
  handshakeTimeout?: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS per session (default: the pool's maxCap, as the Go server does). */
  maxConcurrentStreams?: number;
  /**
   * Most connections (sessions, and connections still in TLS) open at once,
   * all peers together (default 1024); more are closed bare at accept,
   * counted as 'sessions'.
   */
  maxSessions?: number;
  /**
   * Most connections open at once from one peer address (default 32; a
   * client of this library opens at most its `maxSessions`, 8 by default);
   * more are closed bare at accept, counted as 'peer-sessions'.
   */
  maxSessionsPerPeer?: number;
}

export const HTTP2_SERVER_OPTION_KEYS = [
  'host', 'port', 'tls', 'keepAlive', 'handshakeTimeout', 'maxConcurrentStreams', 'maxSessions', 'maxSessionsPerPeer', 'initialWindowSize', 'sessionWindowSize', 'maxSessionMemory',
] as const;

export interface ResolvedHttp2Server extends ResolvedHttp2Flow {
  /** The option's full name for messages ('server.port' under the Nest module). */
  portOption: string;
  host: string;
  port: number;
  secureContext: tls.SecureContext;
  keepAlive: number;
  handshakeTimeout: number;
  /** Unset: the pool's maxCap, learnt at listen(). */
  maxConcurrentStreams?: number;
  maxSessions: number;
  maxSessionsPerPeer: number;
}

export function resolveHttp2ServerOptions(read: OptionReader): ResolvedHttp2Server {
  const tlsInput = read.raw('tls') as ServerTlsInput | undefined;
  if (tlsInput === undefined) {
    throw new InvalidOptionsError(read.name('tls'), 'the http2 transport runs over TLS 1.3 only: set tls to { key, cert }, { secureContext } or "self-signed"');
  }
  const maxConcurrentStreams = read.raw('maxConcurrentStreams') === undefined ? undefined : read.int('maxConcurrentStreams', 1, 1, 2 ** 31 - 1);
  const maxSessions = read.int('maxSessions', 1024, 1, 1_000_000);
  return {
    portOption: read.name('port'),
    host: read.string('host') ?? '127.0.0.1',
    port: read.int('port', 0, 0, 65535),
    secureContext: createServerSecureContext(tlsInput, read.name('tls')),
    keepAlive: read.ms('keepAlive', 30_000),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    ...(maxConcurrentStreams === undefined ? {} : { maxConcurrentStreams }),
    maxSessions,
    maxSessionsPerPeer: read.int('maxSessionsPerPeer', Math.min(32, maxSessions), 1, maxSessions),
    ...resolveHttp2Flow(read),
  };
}

interface Connection {
  readonly remoteAddress: string | undefined;
  /** The TLS socket under the session (Node forbids destroying it through `session.socket`). */
  readonly socket?: tls.TLSSocket;
  readonly streams: Set<ServerHttp2Stream>;
  reason?: Http2StreamAbortedError;
  /** The session on it, once Node made it. */
  session?: ServerHttp2Session;
}

/** A session of the server and what its streams need to know: the owner of every stream on it. */
class SessionEntry implements StreamOwner {
  open = 0;
  /** A stream was ever opened on it: a protocol error before that is a refusal of the connection. */
  carried = false;
  /** GOAWAY sent by retire(): its deadline stands, stream closes do not re-arm the idle timer. */
  retiring = false;
  idleTimer?: NodeJS.Timeout;

  constructor(
    readonly session: ServerHttp2Session,
    /** The connection under the session: its streams, and why they ended if it died. */
    readonly connection: Connection,
    private readonly onStreamClosed: (entry: SessionEntry | undefined, stream: Http2Stream) => void,
  ) {}

  get abortReason(): Http2StreamAbortedError | undefined {
    return this.connection.reason;
  }

  streamClosed(stream: Http2Stream): void {
    this.onStreamClosed(this, stream);
  }
}

const NOT_FOUND = 'not found\n';
/** nghttp2's NGHTTP2_ERR_BAD_CLIENT_MAGIC: the connection did not start with the HTTP/2 preface. */
const NGHTTP2_ERR_BAD_CLIENT_MAGIC = -903;
const UNAUTHORIZED = 'unauthorized\n';

/**
 * Serves pooled streams as HTTP/2 requests (Go `nph2`): TLS 1.3 with ALPN
 * `h2` only, `POST /stream`, nothing sent until the client's `0x00` byte,
 * then `200` and the ID as 4 raw bytes. The pooled stream is Node's
 * `ServerHttp2Stream` itself: request body in, response body out.
 *
 * TLS is done here, on a plain listener, so that a peer without `h2` is
 * counted (`alpn`) and dropped at once; sessions then run on a
 * non-listening `http2.createServer()`.
 */
export class Http2ServerTransport implements ServerTransport {
  readonly kind = 'http2';
  readonly firstIdZero = true;
  /** Clients send their 0x00 and then nothing until the stream is handed out: bytes on an idle stream drop it. */
  readonly quietIdle = true;
  private listener?: net.Server;
  private h2?: Http2Server;
  private readonly sessions = new Map<ServerHttp2Session, SessionEntry>();
  private readonly handshakes = new Set<{ destroy(): void }>();
  private closing?: Promise<void>;
  private connecting?: Connection;
  private acceptor?: ServerAcceptor;
  private readonly totals = { sessionsOpened: 0, streamsOpened: 0, activeStreams: 0, goawaysReceived: 0, goawaysSent: 0, resets: 0 };
  /** Connections from accept to close (in TLS, or carrying a session), in total and per peer. */
  private readonly connections: SlotGate;

  /** Learnt from the pool at listen(). */
  private limits = { maxConcurrentStreams: 0 };

  /**
   * Not for direct use: takes options already validated. Build one with `http2Transport.server(options)`
   * (or give the pool factory `transport: 'http2'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedHttp2Server) {
    this.connections = new SlotGate({ total: config.maxSessions, perPeer: config.maxSessionsPerPeer, perConnection: Infinity });
  }

  async listen(acceptor: ServerAcceptor): Promise<void> {
    const { initialWindowSize, maxSessionMemory } = this.config;
    // As the Go server: SETTINGS_MAX_CONCURRENT_STREAMS = the pool's maxCap unless set.
    const maxConcurrentStreams = this.config.maxConcurrentStreams ?? acceptor.limits.maxCap;
    this.limits = { maxConcurrentStreams };
    this.acceptor = acceptor;
    const h2 = http2.createServer({ settings: { maxConcurrentStreams, initialWindowSize }, maxSessionMemory });
    h2.on('session', (session) => this.track(session));
    h2.on('stream', (stream, headers) => this.handle(stream, headers, acceptor));
    h2.on('sessionError', (error: Error & { code?: string; errno?: number }, session: ServerHttp2Session) => {
      // Bytes after TLS that are not HTTP/2: no connection preface (an HTTP/1.1 request), or frames nghttp2 cannot take.
      if (error.code !== 'ERR_HTTP2_ERROR' || this.sessions.get(session)?.carried) return;
      acceptor.refused(error.errno === NGHTTP2_ERR_BAD_CLIENT_MAGIC ? 'bad-preface' : 'h2-protocol');
    });
    this.h2 = h2;
    const listener = net.createServer({ noDelay: true }, (socket) => this.secure(socket, acceptor));
    this.listener = listener;
    await listen(listener, this.config.port, this.config.host, this.config.portOption, (reason) => acceptor.refused(reason));
  }

  address(): { address: string; port: number; family: string } | null {
    const address = this.listener?.address();
    return address && typeof address === 'object' ? address : null;
  }

  /** A pooled stream whose session died (socket lost, PING timeout) is not handed out. */
  isUsable(stream: Duplex): boolean {
    const session = (stream as Partial<Http2Stream>).session;
    return session === undefined || !session.destroyed;
  }

  /**
   * Stops listening, aborts handshakes, sends GOAWAY on every session and
   * lets streams already handed out finish: the pool gives them until
   * `timeout`, then cuts them. Sessions still open `SESSION_CLOSE_GRACE` ms
   * after that are destroyed.
   */
  close(timeout: number): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = (async () => {
      if (this.listener?.listening) this.listener.close();
      for (const handshake of [...this.handshakes]) handshake.destroy();
      this.handshakes.clear();
      const entries = [...this.sessions.values()];
      for (const entry of entries) this.goaway(entry);
      await new Promise<void>((resolve) => {
        if (this.sessions.size === 0) return resolve();
        const timer = setTimeout(() => {
          for (const entry of this.sessions.values()) {
            entry.session.destroy();
            // A session frozen in a pending write does not free its socket on destroy().
            entry.connection.socket?.destroy();
          }
          resolve();
        }, timeout + SESSION_CLOSE_GRACE);
        const check = (): void => {
          if (this.sessions.size > 0) return;
          clearTimeout(timer);
          resolve();
        };
        for (const entry of entries) entry.session.once('close', () => setImmediate(check));
      });
    })();
    return this.closing;
  }

  stats(): Record<string, unknown> {
    return {
      sessions: this.sessions.size,
      connections: this.connections.size,
      sessionsOpened: this.totals.sessionsOpened,
      streamsOpened: this.totals.streamsOpened,
      activeStreams: this.totals.activeStreams,
      maxConcurrentStreams: this.limits.maxConcurrentStreams,
      goaways: this.totals.goawaysReceived,
      goawaysSent: this.totals.goawaysSent,
      lastPingRttMs: null,
      resets: this.totals.resets,
    };
  }

  // ---- connections ------------------------------------------------------

  /** TLS 1.3 with ALPN h2 only; then the socket becomes an HTTP/2 session. */
  private secure(socket: net.Socket, acceptor: ServerAcceptor): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    // Every connection counts against maxSessions until it closes, from accept.
    const counted = this.connections.take(socket.remoteAddress, undefined, false);
    if (typeof counted === 'string') {
      socket.destroy();
      acceptor.refused(counted === 'busy' ? 'sessions' : 'peer-sessions');
      return;
    }
    socket.once('close', counted);
    // The peer address is checked here, before TLS; TLS comes before any
    // stream is admitted: hold a handshake slot (in total and for the peer) for it.
    const release = acceptor.connecting(socket.remoteAddress);
    if (typeof release === 'string') {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, this.config.keepAlive);
    socket.on('error', () => undefined);
    const secured = new tls.TLSSocket(socket, { isServer: true, secureContext: this.config.secureContext, ALPNProtocols: ['h2'] });
    this.handshakes.add(secured);
    // Whichever closes first frees the connection's count (the TLS socket owns the handle).
    secured.once('close', counted);
    const refuse = (reason: string): void => {
      cleanup();
      secured.destroy();
      socket.destroy();
      acceptor.refused(reason);
    };
    const onError = (error: unknown): void => refuse(isAlpnFailure(error) ? 'alpn' : 'tls');
    const onClose = (): void => refuse('closed-in-handshake');
    const timer = setTimeout(() => refuse('handshake-timeout'), this.config.handshakeTimeout);
    const cleanup = (): void => {
      release();
      clearTimeout(timer);
      this.handshakes.delete(secured);
      secured.off('error', onError);
      secured.off('close', onClose);
    };
    secured.on('error', onError);
    secured.on('close', onClose);
    secured.once('secure', () => {
      if (secured.alpnProtocol !== 'h2') return refuse('alpn');
      cleanup();
      secured.on('error', () => undefined);
      // What tls.Server does before 'secureConnection'; Node's HTTP/2 session waits for it.
      (secured as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      // Registered before Node's own listeners, which end the streams without
      // an error: ours fail them first, with a typed one.
      const connection: Connection = { remoteAddress: socket.remoteAddress, socket: secured, streams: new Set() };
      const lost = (error?: Error): void => {
        connection.reason ??= new Http2StreamAbortedError('connection-lost', `the HTTP/2 session's connection ${error ? `failed: ${error.message}` : 'closed'}`);
        for (const stream of connection.streams) if (!stream.destroyed) stream.destroy(connection.reason);
      };
      secured.once('error', lost);
      secured.once('close', () => lost());
      // A peer that hangs up (even mid-frame) takes its session with it, at once.
      const hungUp = (): void => {
        if (!connection.session || connection.session.destroyed) return;
        lost(); // the streams in use get their typed error first
        connection.session.destroy();
      };
      secured.once('end', hungUp);
      secured.once('close', hungUp);
      // Node makes the session synchronously inside this emit: track() picks it up.
      this.connecting = connection;
      this.h2!.emit('connection', secured);
      this.connecting = undefined;
    });
  }

  private track(session: ServerHttp2Session): void {
    const connection = this.connecting ?? { remoteAddress: undefined, streams: new Set<ServerHttp2Stream>() };
    connection.session = session;
    const entry = new SessionEntry(session, connection, (closedOn, stream) => this.streamClosed(closedOn, stream));
    this.sessions.set(session, entry);
    this.totals.sessionsOpened++;
    session.on('error', () => undefined);
    session.on('goaway', () => this.totals.goawaysReceived++);
    session.once('close', () => {
      clearTimeout(entry.idleTimer);
      this.sessions.delete(session);
    });
    const widen = (): void => {
      try {
        session.setLocalWindowSize(this.config.sessionWindowSize);
      } catch {
        // A session that is already gone needs no window.
      }
    };
    if (session.connecting) session.once('connect', widen);
    else widen();
    this.armIdle(entry);
    if (this.closing) this.goaway(entry);
  }

  private streamClosed(entry: SessionEntry | undefined, stream: Http2Stream): void {
    this.totals.activeStreams--;
    if (!closedGracefully(stream)) this.totals.resets++;
    if (entry) {
      entry.connection.streams.delete(stream as ServerHttp2Stream);
      entry.open--;
      this.armIdle(entry);
    }
  }

  /** The owner of a stream whose session is not tracked (none is expected: Node announces a session before its streams). */
  private readonly untracked: StreamOwner = { abortReason: undefined, streamClosed: (stream) => this.streamClosed(undefined, stream) };

  /**
   * A session with no stream for 2 × keepAlive is closed (GOAWAY), as the Go
   * server does. One that has not carried a stream yet gets no longer than
   * handshakeTimeout to open one (it costs an fd and session memory), and
   * is counted 'no-stream' when it did not. Either way a peer that stays
   * after the GOAWAY is dropped (see retire).
   */
  private armIdle(entry: SessionEntry): void {
    if (entry.retiring) return;
    clearTimeout(entry.idleTimer);
    if (entry.open > 0) return;
    const { keepAlive, handshakeTimeout } = this.config;
    entry.idleTimer = entry.carried
      ? setTimeout(() => this.retire(entry), 2 * keepAlive)
      : setTimeout(() => {
          this.acceptor?.refused('no-stream');
          this.retire(entry);
        }, Math.min(2 * keepAlive, handshakeTimeout));
    entry.idleTimer.unref();
  }

  /**
   * GOAWAY, and the session destroyed if it is still open
   * SESSION_CLOSE_GRACE ms later with no stream: Node's close() waits for
   * the peer, and a peer that neither opens a stream nor hangs up would
   * keep the session (and its fd) for good.
   */
  private retire(entry: SessionEntry): void {
    if (entry.retiring) return;
    entry.retiring = true;
    this.goaway(entry);
    clearTimeout(entry.idleTimer);
    const check = (): void => {
      // Streams still open finish first (a 403 on its way out): look again later.
      if (entry.open > 0 && !entry.session.destroyed) {
        entry.idleTimer = setTimeout(check, SESSION_CLOSE_GRACE);
        entry.idleTimer.unref();
        return;
      }
      // A session Node already destroyed may still wait for its socket to close: the peer may never answer our FIN.
      entry.session.destroy();
      entry.connection.socket?.destroy();
    };
    entry.idleTimer = setTimeout(check, SESSION_CLOSE_GRACE);
    entry.idleTimer.unref();
  }

  private goaway(entry: SessionEntry): void {
    const { session } = entry;
    if (session.closed || session.destroyed) return;
    this.totals.goawaysSent++;
    session.close();
  }

  // ---- streams ----------------------------------------------------------

  private handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, acceptor: ServerAcceptor): void {
    const entry = this.sessions.get(stream.session as ServerHttp2Session);
    this.totals.streamsOpened++;
    this.totals.activeStreams++;
    if (entry) {
      entry.open++;
      entry.carried = true;
      clearTimeout(entry.idleTimer);
      entry.connection.streams.add(stream);
    }
    guardStream(stream, entry ?? this.untracked);
    if (headers[':method'] !== 'POST' || headers[':path'] !== '/stream') {
      acceptor.refused('not-found');
      return refuse(stream, 404, NOT_FOUND);
    }
    const admission = acceptor.admit(entry?.connection.remoteAddress, entry?.connection);
    if (typeof admission === 'string') {
      if (admission !== 'ip') return refuse(stream, 404, NOT_FOUND);
      refuse(stream, 403, UNAUTHORIZED);
      // Its address will not change: the session gets no further stream (GOAWAY; the 403 still completes).
      if (entry) this.retire(entry);
      return;
    }
    this.handshake(stream, admission);
  }

  /** Apart from handle(), so that nothing of the handshake stays reachable from an idle stream. */
  private handshake(stream: ServerHttp2Stream, admission: Admission): void {
    const onError = (): void => undefined;
    stream.on('error', onError);
    const abort = new AbortController();
    const handshake = { destroy: () => abort.abort() };
    this.handshakes.add(handshake);
    // Nothing goes out before the client's first byte (0x00); then 200 and the ID.
    readExact(stream, 1, this.config.handshakeTimeout, abort.signal, { what: 'the first byte (0x00)' }).then(
      () => {
        this.handshakes.delete(handshake);
        if (stream.destroyed || stream.closed) return admission.fail('closed-in-handshake');
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
        stream.write(Buffer.from(admission.id, 'hex'));
        stream.off('error', onError);
        admission.accept(stream);
      },
      (error: unknown) => {
        this.handshakes.delete(handshake);
        // The peer ended or reset the stream before its first byte, or sent nothing in time.
        const reason = abort.signal.aborted ? 'closed' : stream.readableEnded || stream.destroyed || stream.closed ? 'closed-in-handshake' : 'handshake-timeout';
        admission.fail(reason, error);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
    );
  }
}

/** A refusal as the Go server sends it: status, text body, then RST_STREAM(NO_ERROR). */
function refuse(stream: ServerHttp2Stream, status: number, body: string): void {
  stream.on('error', () => undefined);
  if (stream.destroyed || stream.closed) return;
  stream.respond({
    ':status': status,
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': String(Buffer.byteLength(body)),
  });
  stream.end(body);
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
}

function isAlpnFailure(error: unknown): boolean {
  const text = error && typeof error === 'object' ? `${String((error as { code?: unknown }).code)} ${String((error as { message?: unknown }).message)}` : '';
  return /APPLICATION_PROTOCOL|ALPN/i.test(text);
}
