import type { Duplex } from 'node:stream';
import http2, { type Http2Server, type Http2Stream, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { SlotGate } from '../../core/admission.js';
import { InvalidOptionsError } from '../../core/errors.js';
import type { Admission, ServerAcceptor, ServerTransport } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { listen } from '../../core/listeners.js';
import { FrontDoor, type Visit } from '../common/front-door.js';
import { listen as listenOn } from '../common/listen.js';
import { readExact } from '../common/read-exact.js';
import { announceSelfSigned, clientCertificateIdentity, resolveServerTls, type ServerTls, type ServerTlsInput } from '../common/tls.js';
import { setStreamIdentity, type ClientIdentity } from '../../core/stream-identity.js';
import { AUTH_HEADER, AUTH_REFUSAL, HeaderServerAuth, type HeaderConnectionAuth } from '../../auth/header.js';
import { keyIdentity } from '../../auth/identity.js';
import { resolveServerAuth, type ServerAuth, type ServerAuthOptions } from '../../auth/keys.js';
import { channelBinding } from '../../auth/proof.js';
import { resolveHttp2Flow, SESSION_CLOSE_GRACE, type Http2FlowOptions, type ResolvedHttp2Flow } from './http2-settings.js';
import { ServerSession, type SessionHost } from './server-session.js';
import { closedGracefully, guardStream, type StreamOwner } from './stream-guard.js';
import { serverSessionOpened } from '../../diagnostics/pool-events.js';

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
  /**
   * Shared-key authentication of every pooled stream (off by default: the
   * Go wire). A stream whose `POST /stream` carries no valid proof gets a
   * 401 and no ID, counted 'auth'. See docs/extensions/auth.md.
   */
  auth?: ServerAuthOptions;
}

export const HTTP2_SERVER_OPTION_KEYS = [
  'host', 'port', 'tls', 'auth', 'keepAlive', 'handshakeTimeout', 'maxConcurrentStreams', 'maxSessions', 'maxSessionsPerPeer', 'initialWindowSize', 'sessionWindowSize', 'maxSessionMemory',
] as const;

export interface ResolvedHttp2Server extends ResolvedHttp2Flow {
  /** The option's full name for messages ('server.port' under the Nest module). */
  portOption: string;
  host: string;
  port: number;
  secureContext: tls.SecureContext;
  serverTls: ServerTls;
  keepAlive: number;
  handshakeTimeout: number;
  /** Unset: the pool's maxCap, learnt at listen(). */
  maxConcurrentStreams?: number;
  maxSessions: number;
  maxSessionsPerPeer: number;
  /** Shared-key authentication; undefined: none (the default wire). */
  auth?: ServerAuth;
}

export function resolveHttp2ServerOptions(read: OptionReader): ResolvedHttp2Server {
  const tlsInput = read.raw('tls') as ServerTlsInput | undefined;
  if (tlsInput === undefined) {
    throw new InvalidOptionsError(read.name('tls'), 'the http2 transport runs over TLS 1.3 only: set tls to { key, cert }, { secureContext } or "self-signed"');
  }
  const serverTls = resolveServerTls(tlsInput, read.name('tls'));
  const maxConcurrentStreams = read.raw('maxConcurrentStreams') === undefined ? undefined : read.int('maxConcurrentStreams', 1, 1, 2 ** 31 - 1);
  const maxSessions = read.int('maxSessions', 1024, 1, 1_000_000);
  const auth = resolveServerAuth(read.raw('auth'), read.name('auth'));
  return {
    portOption: read.name('port'),
    host: read.string('host') ?? '127.0.0.1',
    port: read.int('port', 0, 0, 65535),
    secureContext: serverTls.secureContext,
    serverTls,
    keepAlive: read.ms('keepAlive', 30_000),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    ...(maxConcurrentStreams === undefined ? {} : { maxConcurrentStreams }),
    maxSessions,
    maxSessionsPerPeer: read.int('maxSessionsPerPeer', Math.min(32, maxSessions), 1, maxSessions),
    ...resolveHttp2Flow(read),
    ...(auth ? { auth } : {}),
  };
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
  private door?: FrontDoor;
  private readonly sessions = new Map<ServerHttp2Session, ServerSession>();
  /** The verified client certificate of a session's connection (mutual TLS). */
  private readonly identities = new WeakMap<ServerSession, ClientIdentity>();
  /** Shared-key authentication: the pool's replay cache, and the checker of each session (bound to its TLS connection). */
  private readonly auth?: HeaderServerAuth;
  private readonly sessionAuth = new WeakMap<ServerSession, HeaderConnectionAuth>();
  /** Pooled streams waiting for their first byte. */
  private readonly handshakes = new Set<AbortController>();
  private closing?: Promise<void>;
  /** The connection whose session Node is making (synchronously, inside emit('connection')). */
  private connecting?: ServerSession;
  private acceptor?: ServerAcceptor;
  private readonly totals = { sessionsOpened: 0, streamsOpened: 0, activeStreams: 0, goawaysReceived: 0, goawaysSent: 0, resets: 0 };
  /** Connections from accept to close (in TLS, or carrying a session), in total and per peer. */
  private readonly connections: SlotGate;
  /** What every session reports to. */
  private readonly host: SessionHost;

  /** Learnt from the pool at listen(). */
  private limits = { maxConcurrentStreams: 0 };

  /**
   * Not for direct use: takes options already validated. Build one with `http2Transport.server(options)`
   * (or give the pool factory `transport: 'http2'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedHttp2Server) {
    if (config.auth) this.auth = new HeaderServerAuth(config.auth, 'http2');
    this.connections = new SlotGate({ total: config.maxSessions, perPeer: config.maxSessionsPerPeer, perConnection: Infinity });
    this.host = {
      keepAlive: config.keepAlive,
      handshakeTimeout: config.handshakeTimeout,
      streamClosed: (_session, stream) => {
        this.totals.activeStreams--;
        if (!closedGracefully(stream)) this.totals.resets++;
      },
      goawaySent: () => this.totals.goawaysSent++,
      noStream: () => this.acceptor?.refused('no-stream'),
    };
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
    // Every connection counts against maxSessions until it closes, from accept; its
    // pooled streams are admitted later, one by one: the connection holds a handshake
    // slot (in total and for its address) until its TLS is done.
    const door = new FrontDoor(acceptor, {
      admit: 'connection',
      connectionLimit: { gate: this.connections, busy: 'sessions', peerBusy: 'peer-sessions' },
      secureContext: this.config.secureContext,
      ...(this.config.serverTls.requestCert ? { requestCert: true } : {}),
      alpn: ['h2'],
      keepAlive: this.config.keepAlive,
      noDelay: true,
      halfOpen: false,
      handshakeTimeout: this.config.handshakeTimeout,
    });
    this.door = door;
    announceSelfSigned(this.config.serverTls, acceptor.log?.bind(acceptor));
    const listener = net.createServer({ noDelay: true }, (socket) => door.enter(socket, (visit) => this.open(visit)));
    this.listener = listener;
    await listenOn(listener, this.config.port, this.config.host, this.config.portOption, (reason) => acceptor.refused(reason));
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
      this.door?.close();
      for (const handshake of [...this.handshakes]) handshake.abort();
      this.handshakes.clear();
      for (const session of this.sessions.values()) session.goaway();
      await new Promise<void>((resolve) => {
        if (this.sessions.size === 0) return resolve();
        const timer = setTimeout(() => {
          for (const session of this.sessions.values()) session.destroy();
          resolve();
        }, timeout + SESSION_CLOSE_GRACE);
        const check = (): void => {
          if (this.sessions.size > 0) return;
          clearTimeout(timer);
          resolve();
        };
        for (const session of this.sessions.keys()) session.once('close', () => setImmediate(check));
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

  /** Through the front door (TLS 1.3, ALPN h2): the socket becomes an HTTP/2 session. */
  private open(visit: Visit): void {
    visit.done();
    const secured = visit.stream as tls.TLSSocket;
    secured.on('error', () => undefined);
    // What tls.Server does before 'secureConnection'; Node's HTTP/2 session waits for it.
    (secured as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
    // Node makes the session synchronously inside this emit: track() picks it up.
    this.connecting = new ServerSession(this.host, visit.remoteAddress, secured);
    // Mutual TLS: every stream of the session is of the client whose certificate the front door verified.
    const identity = clientCertificateIdentity(secured);
    if (identity) this.identities.set(this.connecting, identity);
    // Shared-key authentication: every proof on this session is bound to its TLS connection (unless channelBinding is off).
    if (this.auth) this.sessionAuth.set(this.connecting, this.auth.connection(this.config.auth!.channelBinding ? channelBinding(secured) : undefined));
    this.h2!.emit('connection', secured);
    this.connecting = undefined;
  }

  private track(session: ServerHttp2Session): void {
    const connection = this.connecting ?? new ServerSession(this.host, undefined);
    this.sessions.set(session, connection);
    this.totals.sessionsOpened++;
    serverSessionOpened(this, session);
    session.on('error', () => undefined);
    session.on('goaway', () => this.totals.goawaysReceived++);
    session.once('close', () => this.sessions.delete(session));
    const widen = (): void => {
      try {
        session.setLocalWindowSize(this.config.sessionWindowSize);
      } catch {
        // A session that is already gone needs no window.
      }
    };
    if (session.connecting) session.once('connect', widen);
    else widen();
    connection.attach(session, this.closing !== undefined);
  }

  /** The owner of a stream whose session is not tracked (none is expected: Node announces a session before its streams). */
  private readonly untracked: StreamOwner = { abortReason: undefined, streamClosed: (stream) => this.host.streamClosed(undefined, stream) };

  // ---- streams ----------------------------------------------------------

  private handle(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, acceptor: ServerAcceptor): void {
    const connection = this.sessions.get(stream.session as ServerHttp2Session);
    this.totals.streamsOpened++;
    this.totals.activeStreams++;
    connection?.streamOpened(stream);
    guardStream(stream, connection ?? this.untracked);
    if (headers[':method'] !== 'POST' || headers[':path'] !== '/stream') {
      acceptor.refused('not-found');
      return refuse(stream, 404, NOT_FOUND);
    }
    // The proof first, before admission: a stranger takes no slot, no ID, and learns nothing of the pool's state.
    let keyId: string | undefined;
    let proofHeader: string | undefined;
    if (this.auth) {
      // A header sent twice reaches us joined (or as an array): not the canonical spelling, refused.
      const check = connection ? this.sessionAuth.get(connection)?.check(headers[AUTH_HEADER]) : undefined;
      if (!check?.ok) {
        acceptor.refused('auth');
        refuse(stream, AUTH_REFUSAL.status, AUTH_REFUSAL.body, { 'www-authenticate': AUTH_REFUSAL.headers['www-authenticate'] });
        // A session that sent one bad proof gets no further stream (GOAWAY; the 401 still completes).
        connection?.retire();
        return;
      }
      keyId = check.keyId;
      proofHeader = check.responseHeader;
    }
    const admission = acceptor.admit(connection?.remoteAddress, connection);
    if (typeof admission === 'string') {
      if (admission !== 'ip') return refuse(stream, 404, NOT_FOUND);
      refuse(stream, 403, UNAUTHORIZED);
      // Its address will not change: the session gets no further stream (GOAWAY; the 403 still completes).
      connection?.retire();
      return;
    }
    // With both a key and a client certificate, the key names the client: it is what the operator hands out per client.
    const identity = keyId !== undefined ? keyIdentity(keyId) : connection && this.identities.get(connection);
    this.handshake(stream, admission, identity, proofHeader);
  }

  /** Apart from handle(), so that nothing of the handshake stays reachable from an idle stream. */
  private handshake(stream: ServerHttp2Stream, admission: Admission, identity: ClientIdentity | undefined, proofHeader: string | undefined): void {
    // Until it is pooled, an error of the stream is the handshake's (readExact reports it).
    const unguard = listen(stream, { error: () => undefined });
    const abort = new AbortController();
    this.handshakes.add(abort);
    // Nothing goes out before the client's first byte (0x00); then 200 and the ID.
    readExact(stream, 1, this.config.handshakeTimeout, abort.signal, { what: 'the first byte (0x00)' }).then(
      () => {
        this.handshakes.delete(abort);
        if (stream.destroyed || stream.closed) return admission.fail('closed-in-handshake');
        // With authentication, the server's proof rides on the 200, before the ID.
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream', ...(proofHeader ? { [AUTH_HEADER]: proofHeader } : {}) });
        stream.write(Buffer.from(admission.id, 'hex'));
        unguard();
        if (identity) setStreamIdentity(stream, identity);
        admission.accept(stream);
      },
      (error: unknown) => {
        this.handshakes.delete(abort);
        // The peer ended or reset the stream before its first byte, or sent nothing in time.
        const reason = abort.signal.aborted ? 'closed' : stream.readableEnded || stream.destroyed || stream.closed ? 'closed-in-handshake' : 'handshake-timeout';
        admission.fail(reason, error);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
      },
    );
  }
}

/** A refusal as the Go server sends it: status, text body, then RST_STREAM(NO_ERROR). */
function refuse(stream: ServerHttp2Stream, status: number, body: string, extra: Record<string, string> = {}): void {
  stream.on('error', () => undefined);
  if (stream.destroyed || stream.closed) return;
  stream.respond({
    ':status': status,
    ...extra,
    'content-type': 'text/plain; charset=utf-8',
    'x-content-type-options': 'nosniff',
    'content-length': String(Buffer.byteLength(body)),
  });
  stream.end(body);
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
