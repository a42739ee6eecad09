import type { Duplex } from 'node:stream';
import { constants as http2Constants, type ClientHttp2Stream, type Http2Stream, type IncomingHttpHeaders } from 'node:http2';
import { setMaxListeners } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { DialError, HandshakeError, InvalidOptionsError, PoolAbortedError, PoolError, PoolFullError, PoolRefusedError, refusalForStatus } from '../../core/errors.js';
import type { ClientTransport, DialContext, DialResult } from '../../core/transport.js';
import type { OptionReader } from '../../core/validate.js';
import { endpointSource, formatEndpoint, type AddressResolver, type Endpoint, type EndpointInput } from '../shared/endpoint.js';
import { readExact } from '../shared/read-exact.js';
import { clientTlsOptions, createClientTls, parseTlsMode, type CaInput, type ClientTlsConfig, type TlsModeInput } from '../shared/tls.js';
import { waitForEvent } from '../shared/wait-for-event.js';
import { ClientSession } from './client-session.js';
import { resolveHttp2Flow, SESSION_CLOSE_GRACE, type Http2FlowOptions, type ResolvedHttp2Flow } from './http2-settings.js';

export interface Http2ClientOptions extends Http2FlowOptions {
  /** Where the server pool listens: "host:port", "[v6]:port" or { host, port }. */
  address?: EndpointInput;
  /** Asked for every new session; may return a different endpoint each time. */
  addressResolver?: AddressResolver;
  /** Required: "1" TLS 1.3 unverified, "2" TLS 1.3 verified against hostname ("0" is an error: HTTP/2 here is TLS only). */
  tls?: TlsModeInput;
  /** SNI, verification name in mode "2", and `:authority` (default: the address's host). */
  hostname?: string;
  /** Trusted CA certificate(s) for mode "2" (default: Node's root store). */
  ca?: CaInput;
  /** PING period and TCP keep-alive, in ms (default 30000). */
  keepAlive?: number;
  /** A PING not answered within this many ms marks the session dead (default 15000). */
  pingTimeout?: number;
  /** Most sessions open at once to the server (default 8); more are opened only when the peer's stream limit asks for it. */
  maxSessions?: number;
  /**
   * RST_STREAMs one session may cost before it is replaced (default 800; a
   * Node server answers about 1000 with GOAWAY). At half of it the session
   * takes no new streams and closes once its streams end.
   */
  resetBudget?: number;
  /** Bound on TCP connect, TLS and the server's SETTINGS, in ms (default 10000). */
  dialTimeout?: number;
  /** Bound on the response headers plus the ID, in ms (default 10000). */
  handshakeTimeout?: number;
}

export const HTTP2_CLIENT_OPTION_KEYS = [
  'address', 'addressResolver', 'tls', 'hostname', 'ca', 'keepAlive', 'pingTimeout', 'maxSessions', 'resetBudget',
  'dialTimeout', 'handshakeTimeout', 'initialWindowSize', 'sessionWindowSize', 'maxSessionMemory',
] as const;

export interface ResolvedHttp2Client extends ResolvedHttp2Flow {
  endpoint: () => Promise<Endpoint>;
  tls: ClientTlsConfig;
  keepAlive: number;
  pingTimeout: number;
  maxSessions: number;
  resetBudget: number;
  dialTimeout: number;
  handshakeTimeout: number;
}

export function resolveHttp2ClientOptions(read: OptionReader): ResolvedHttp2Client {
  const endpoint = endpointSource(read.raw('address'), read.fn<AddressResolver>('addressResolver'), read.name('address'));
  const mode = parseTlsMode(read.raw('tls'), read.name('tls'));
  if (mode === '0') {
    throw new InvalidOptionsError(read.name('tls'), 'the http2 transport runs over TLS 1.3 only: set tls to "1" (insecure: no verification) or "2" (verify against hostname)');
  }
  const hostname = read.string('hostname');
  const ca = read.raw('ca') as CaInput | undefined;
  return {
    endpoint,
    tls: createClientTls(mode, hostname, ca),
    keepAlive: read.ms('keepAlive', 30_000),
    pingTimeout: read.ms('pingTimeout', 15_000),
    maxSessions: read.int('maxSessions', 8, 1, 1024),
    resetBudget: read.int('resetBudget', 800, 2, 1_000_000),
    dialTimeout: read.ms('dialTimeout', 10_000),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    ...resolveHttp2Flow(read),
  };
}

/**
 * Dials pooled streams as requests on shared HTTP/2 sessions (Go `nph2`).
 * A stream is `POST /stream` with a streamed body; the server's first four
 * response bytes are the ID. The pooled stream handed to the application
 * is Node's `ClientHttp2Stream` itself: request body out, response body in.
 *
 * Sessions: never more streams on one than the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS; more sessions (up to `maxSessions`) when
 * the pool needs more; new streams go to the least loaded session. A
 * session that receives GOAWAY, loses its socket, misses a PING or has
 * spent half its reset budget opens no new streams.
 */
export class Http2ClientTransport implements ClientTransport {
  readonly kind = 'http2';
  private readonly sessions = new Set<ClientSession>();
  private closing?: Promise<void>;
  private readonly totals = { sessionsOpened: 0, streamsOpened: 0, goaways: 0, resets: 0, pingTimeouts: 0 };
  private lastPingRttMs: number | null = null;
  private lastPeerMaxStreams: number | null = null;
  private opening?: Promise<ClientSession>;
  private readonly lifecycle = new AbortController();

  /**
   * Not for direct use: takes options already validated. Build one with `http2Transport.client(options)`
   * (or give the pool factory `transport: 'http2'`); the class is exported for `instanceof`.
   */
  constructor(private readonly config: ResolvedHttp2Client) {}

  async dial({ signal: poolSignal, readId }: DialContext): Promise<DialResult> {
    if (poolSignal.aborted || this.closing) throw new PoolAbortedError('the pool closed');
    const signal = this.fanOut(poolSignal);
    const session = await this.acquire(signal);
    let stream: ClientHttp2Stream;
    try {
      stream = session.request();
    } catch (error) {
      throw new DialError(`opening an HTTP/2 stream failed: ${describe(error)}`, { cause: error });
    }
    try {
      const deadline = Date.now() + this.config.handshakeTimeout;
      const headers = await waitForResponse(stream, this.config.handshakeTimeout, signal);
      const status = Number(headers[':status']);
      if (status !== 200) {
        const body = await readSome(stream, 64, Math.max(1, deadline - Date.now()));
        throw refusalForStatus(status, `the server refused the stream with status ${status}${body ? ` (${JSON.stringify(body)})` : ''}`);
      }
      // The ID is always sent on this wire, also in single mode: it is not application data.
      const bytes = await readExact(stream, 4, Math.max(1, deadline - Date.now()), signal);
      return { id: readId ? bytes.toString('hex') : null, stream };
    } catch (error) {
      stream.on('error', () => undefined);
      if (!stream.destroyed) stream.close(http2Constants.NGHTTP2_CANCEL);
      if (error instanceof PoolError) throw error;
      throw new HandshakeError(`the HTTP/2 stream failed before its ID arrived: ${describe(error)}`, { cause: error });
    }
  }

  /** A pooled stream whose session died (socket lost, PING timeout) is not handed out. */
  isUsable(stream: Duplex): boolean {
    const session = (stream as Partial<Http2Stream>).session;
    return session === undefined || !session.destroyed;
  }

  /**
   * Every session takes no new stream and closes (GOAWAY) once its last
   * stream has ended. Streams the application holds are not killed here:
   * the pool gives them until `timeout`, then cuts them, and their sessions
   * close. A session still open `SESSION_CLOSE_GRACE` ms after that (a
   * socket frozen in a write, a peer that never answers) is destroyed.
   */
  close(timeout: number): Promise<void> {
    if (this.closing) return this.closing;
    this.lifecycle.abort();
    const sessions = [...this.sessions].filter((session) => !session.isClosed);
    for (const session of sessions) session.drain();
    this.closing = new Promise<void>((resolve) => {
      if (sessions.length === 0) return resolve();
      let open = sessions.length;
      const timer = setTimeout(() => {
        for (const session of sessions) session.destroy();
        resolve();
      }, timeout + SESSION_CLOSE_GRACE);
      for (const session of sessions) {
        this.whenClosed(session, () => {
          if (--open > 0) return;
          clearTimeout(timer);
          resolve();
        });
      }
    });
    return this.closing;
  }

  stats(): Record<string, unknown> {
    let activeStreams = 0;
    let resets = this.totals.resets;
    const peerMaxConcurrentStreams: number[] = [];
    let streamsOpened = this.totals.streamsOpened;
    let goaways = this.totals.goaways;
    let pingTimeouts = this.totals.pingTimeouts;
    for (const session of this.sessions) {
      activeStreams += session.open;
      resets += session.resets;
      streamsOpened += session.streamsOpened;
      goaways += session.goaways;
      pingTimeouts += session.pingTimeouts;
      peerMaxConcurrentStreams.push(session.peerMaxStreams);
      if (session.pingRttMs !== null) this.lastPingRttMs = session.pingRttMs;
    }
    return {
      sessions: this.sessions.size,
      usableSessions: [...this.sessions].filter((session) => session.state === 'ready').length,
      sessionsOpened: this.totals.sessionsOpened,
      streamsOpened,
      activeStreams,
      peerMaxConcurrentStreams,
      goaways,
      pingTimeouts,
      lastPingRttMs: this.lastPingRttMs,
      resets,
    };
  }

  private readonly fannedOut = new WeakMap<AbortSignal, AbortSignal>();

  /**
   * One listener on the pool's signal, shared by every dial in flight (there
   * may be dozens): each dial listens on this transport's own copy.
   */
  private fanOut(signal: AbortSignal): AbortSignal {
    let inner = this.fannedOut.get(signal);
    if (!inner) {
      const controller = new AbortController();
      setMaxListeners(0, controller.signal);
      signal.addEventListener('abort', () => controller.abort(), { once: true });
      inner = controller.signal;
      this.fannedOut.set(signal, inner);
    }
    return inner;
  }

  // ---- sessions -------------------------------------------------------

  /** A session with a free slot, reserved for one request: the least loaded ready one, else a new one. */
  private async acquire(signal: AbortSignal): Promise<ClientSession> {
    for (let attempt = 0; attempt < this.config.maxSessions + 4; attempt++) {
      if (signal.aborted || this.closing) throw new PoolAbortedError('the pool closed');
      const ready = this.leastLoaded();
      if (ready) {
        ready.open++;
        return ready;
      }
      if (!this.opening && this.sessions.size >= this.config.maxSessions) {
        throw new DialError(
          `all ${this.sessions.size} HTTP/2 sessions (maxSessions) are full or closing: the server allows ${this.lastPeerMaxStreams ?? '?'} streams per session`,
        );
      }
      await abortable(this.opening ?? this.startSession(), signal);
    }
    throw new DialError('no HTTP/2 session had a free stream slot');
  }

  private leastLoaded(): ClientSession | undefined {
    let best: ClientSession | undefined;
    for (const session of this.sessions) {
      if (session.freeSlots() > 0 && (!best || session.open < best.open)) best = session;
    }
    return best;
  }

  /** Opens one session at a time; every dial that needs one waits for it. */
  private startSession(): Promise<ClientSession> {
    const opening = this.openSession().finally(() => {
      if (this.opening === opening) this.opening = undefined;
    });
    this.opening = opening;
    return opening;
  }

  private async openSession(): Promise<ClientSession> {
    const signal = this.lifecycle.signal;
    const endpoint = await this.config.endpoint();
    const where = formatEndpoint(endpoint);
    const socket = await this.connectTls(endpoint, where, signal);
    if (signal.aborted) {
      socket.destroy();
      throw new PoolAbortedError('the pool closed');
    }
    const session = new ClientSession(
      socket,
      {
        authority: this.config.tls.hostname ?? (net.isIP(endpoint.host) === 6 ? `[${endpoint.host}]` : endpoint.host),
        keepAlive: this.config.keepAlive,
        pingTimeout: this.config.pingTimeout,
        resetBudget: this.config.resetBudget,
        initialWindowSize: this.config.initialWindowSize,
        sessionWindowSize: this.config.sessionWindowSize,
        maxSessionMemory: this.config.maxSessionMemory,
      },
      { onUnusable: (s) => this.unusable(s), onClosed: (s) => this.forget(s) },
      this.config.dialTimeout,
    );
    this.totals.sessionsOpened++;
    this.sessions.add(session);
    try {
      await session.ready;
    } catch (error) {
      throw new HandshakeError(`the HTTP/2 session with ${where} did not start: ${describe(error)}`, { cause: error });
    }
    this.lastPeerMaxStreams = session.peerMaxStreams;
    return session;
  }

  private async connectTls(endpoint: Endpoint, where: string, signal: AbortSignal): Promise<tls.TLSSocket> {
    const { keepAlive, dialTimeout } = this.config;
    const raw = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: keepAlive });
    try {
      await waitForEvent(raw, 'connect', dialTimeout, signal);
    } catch (error) {
      raw.destroy();
      if (error instanceof PoolAbortedError) throw error;
      throw new DialError(`dialing ${where} failed: ${describe(error)}`, { cause: error });
    }
    const secured = tls.connect(clientTlsOptions(this.config.tls, { socket: raw, ALPNProtocols: ['h2'] }));
    try {
      await waitForEvent(secured, 'secureConnect', dialTimeout, signal);
    } catch (error) {
      secured.destroy();
      raw.destroy();
      if (error instanceof PoolAbortedError) throw error;
      throw new HandshakeError(`TLS handshake with ${where} failed: ${describe(error)}`, { cause: error });
    }
    if (secured.alpnProtocol !== 'h2') {
      secured.destroy();
      throw new HandshakeError(`the server at ${where} did not negotiate HTTP/2 (ALPN ${JSON.stringify(secured.alpnProtocol)}, expected "h2")`);
    }
    return secured;
  }

  /** A session stopped taking streams: if it was the last usable one, open a replacement at once. */
  private unusable(session: ClientSession): void {
    if (this.closing || session.streamsOpened === 0) return;
    const usable = [...this.sessions].some((other) => other !== session && (other.state === 'ready' || other.state === 'connecting'));
    if (usable) return;
    if (!this.opening && this.sessions.size < this.config.maxSessions) this.startSession().catch(() => undefined);
  }

  private forget(session: ClientSession): void {
    if (!this.sessions.delete(session)) return;
    this.totals.streamsOpened += session.streamsOpened;
    this.totals.resets += session.resets;
    this.totals.goaways += session.goaways;
    this.totals.pingTimeouts += session.pingTimeouts;
    if (session.pingRttMs !== null) this.lastPingRttMs = session.pingRttMs;
    const listeners = this.closedListeners.get(session) ?? [];
    this.closedListeners.delete(session);
    for (const listener of listeners) listener();
  }

  private readonly closedListeners = new Map<ClientSession, Array<() => void>>();

  private whenClosed(session: ClientSession, listener: () => void): void {
    if (!this.sessions.has(session)) return listener();
    const listeners = this.closedListeners.get(session) ?? [];
    listeners.push(listener);
    this.closedListeners.set(session, listeners);
  }
}

/** Waits for the response headers, rejecting on error, close, timeout or abort. */
function waitForResponse(stream: ClientHttp2Stream, timeout: number, signal: AbortSignal): Promise<IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const finish = (error: unknown, headers?: IncomingHttpHeaders): void => {
      clearTimeout(timer);
      stream.off('response', onResponse);
      stream.off('error', onError);
      stream.off('close', onClose);
      signal.removeEventListener('abort', onAbort);
      if (headers) resolve(headers);
      else reject(error);
    };
    const onResponse = (headers: IncomingHttpHeaders): void => finish(null, headers);
    // RST_STREAM(REFUSED_STREAM) before any response: the Go server's "full" (PROTOCOL.md), a refusal, not a failed handshake.
    const onError = (error: unknown): void =>
      finish(stream.rstCode === http2Constants.NGHTTP2_REFUSED_STREAM ? new PoolFullError('the server refused the stream (RST_STREAM REFUSED_STREAM: its pool is full)', { cause: error }) : error);
    const onClose = (): void =>
      finish(new PoolRefusedError(`the server closed the stream before answering (RST_STREAM code ${String(stream.rstCode)})`));
    const onAbort = (): void => finish(new PoolAbortedError('the pool closed during the handshake'));
    const timer = setTimeout(() => finish(new HandshakeError(`no response headers within ${timeout} ms`)), timeout);
    stream.once('response', onResponse);
    stream.once('error', onError);
    stream.once('close', onClose);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** Up to `max` bytes of a refusal's body, for the error message; never fails. */
function readSome(stream: ClientHttp2Stream, max: number, timeout: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const finish = (): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', finish);
      stream.off('close', finish);
      stream.off('error', finish);
      resolve(Buffer.concat(chunks).subarray(0, max).toString('utf8').trim());
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= max) finish();
    };
    const timer = setTimeout(finish, Math.min(timeout, 1000));
    stream.on('data', onData);
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
  });
}

function abortable<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new PoolAbortedError('the pool closed'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new PoolAbortedError('the pool closed'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof PoolError ? error : new DialError(`the HTTP/2 session did not start: ${describe(error)}`, { cause: error }));
      },
    );
  });
}

function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) {
    const code = 'code' in error && error.code ? ` (${String(error.code)})` : '';
    return `${String(error.message)}${code}`;
  }
  return String(error);
}
