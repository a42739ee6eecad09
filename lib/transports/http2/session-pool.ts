import net from 'node:net';
import type tls from 'node:tls';
import { DialError, HandshakeError } from '../../core/errors.js';
import { connectTcp, secureConnect } from '../common/connect.js';
import { describeError } from '../common/describe-error.js';
import { formatEndpoint, type Endpoint } from '../common/endpoint.js';
import { poolClosed, untilClosed } from '../common/pool-signal.js';
import type { ClientTlsConfig } from '../common/tls.js';
import { ClientSession, type ClientSessionConfig } from './client-session.js';
import { SESSION_CLOSE_GRACE } from './http2-settings.js';
import { clientSessionClosed, clientSessionOpened } from '../../diagnostics/pool-events.js';

export interface SessionPoolConfig extends Omit<ClientSessionConfig, 'authority'> {
  endpoint: () => Promise<Endpoint>;
  tls: ClientTlsConfig;
  maxSessions: number;
  /** Bound on TCP connect, TLS and the server's SETTINGS, in ms. */
  dialTimeout: number;
}

/**
 * The HTTP/2 sessions of one client transport: which one takes the next
 * stream, when another is opened, and how they all close.
 *
 * Never more streams on one session than the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS; more sessions (up to `maxSessions`) when
 * the pool needs more; a new stream goes to the least loaded session. A
 * session that receives GOAWAY, loses its socket, misses a PING or has
 * spent half its reset budget opens no new streams; if it was the last
 * usable one, a replacement is opened at once. Sessions open one at a time:
 * every dial that needs one waits for the same.
 */
export class SessionPool {
  private readonly sessions = new Set<ClientSession>();
  private opening?: Promise<ClientSession>;
  private closing?: Promise<void>;
  /** Aborted at close: a session being opened then is given up. */
  private readonly lifecycle = new AbortController();
  /** Counters of sessions already gone (the live ones count for themselves). */
  private readonly gone = { streamsOpened: 0, goaways: 0, resets: 0, pingTimeouts: 0 };
  private sessionsOpened = 0;
  private lastPingRttMs: number | null = null;
  private lastPeerMaxStreams: number | null = null;
  private readonly closedListeners = new Map<ClientSession, Array<() => void>>();

  constructor(private readonly config: SessionPoolConfig) {}

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  /**
   * A session with a slot reserved for one request: the least loaded ready
   * one, else a new one. `signal` is the pool's; its close is a `PoolClosedError`.
   */
  async acquire(signal: AbortSignal): Promise<ClientSession> {
    for (let attempt = 0; attempt < this.config.maxSessions + 4; attempt++) {
      if (signal.aborted || this.closing) throw poolClosed();
      const ready = this.leastLoaded();
      if (ready) {
        ready.reserve();
        return ready;
      }
      if (!this.opening && this.sessions.size >= this.config.maxSessions) {
        throw new DialError(
          `all ${this.sessions.size} HTTP/2 sessions (maxSessions) are full or closing: the server allows ${this.lastPeerMaxStreams ?? '?'} streams per session`,
        );
      }
      await untilClosed(this.opening ?? this.startSession(), signal, (error) => new DialError(`the HTTP/2 session did not start: ${describeError(error)}`, { cause: error }));
    }
    throw new DialError('no HTTP/2 session had a free stream slot');
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
    let { resets, streamsOpened, goaways, pingTimeouts } = this.gone;
    const peerMaxConcurrentStreams: number[] = [];
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
      sessionsOpened: this.sessionsOpened,
      streamsOpened,
      activeStreams,
      peerMaxConcurrentStreams,
      goaways,
      pingTimeouts,
      lastPingRttMs: this.lastPingRttMs,
      resets,
    };
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
    const socket = await this.connect(endpoint, signal);
    if (signal.aborted) {
      socket.destroy();
      throw poolClosed();
    }
    const { tls: tlsConfig, keepAlive, pingTimeout, resetBudget, initialWindowSize, sessionWindowSize, maxSessionMemory, auth } = this.config;
    const session = new ClientSession(
      socket,
      {
        authority: tlsConfig.hostname ?? (net.isIP(endpoint.host) === 6 ? `[${endpoint.host}]` : endpoint.host),
        keepAlive,
        pingTimeout,
        resetBudget,
        initialWindowSize,
        sessionWindowSize,
        maxSessionMemory,
        ...(auth ? { auth } : {}),
      },
      { onUnusable: (s) => this.unusable(s), onClosed: (s) => this.forget(s) },
      this.config.dialTimeout,
    );
    this.sessionsOpened++;
    this.sessions.add(session);
    clientSessionOpened(this, session, socket.remoteAddress);
    try {
      await session.ready;
    } catch (error) {
      throw new HandshakeError(`the HTTP/2 session with ${where} did not start: ${describeError(error)}`, { cause: error });
    }
    this.lastPeerMaxStreams = session.peerMaxStreams;
    return session;
  }

  /** TCP, then TLS 1.3 with ALPN h2 (the shared connect helpers), each within `dialTimeout`. */
  private async connect(endpoint: Endpoint, signal: AbortSignal): Promise<tls.TLSSocket> {
    const { keepAlive, dialTimeout } = this.config;
    const raw = await connectTcp(endpoint, { keepAlive, timeout: dialTimeout }, signal);
    const secured = await secureConnect(raw, this.config.tls, dialTimeout, signal, { ALPNProtocols: ['h2'] });
    if (secured.alpnProtocol !== 'h2') {
      secured.destroy();
      throw new HandshakeError(`the server at ${formatEndpoint(endpoint)} did not negotiate HTTP/2 (ALPN ${JSON.stringify(secured.alpnProtocol)}, expected "h2")`);
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
    clientSessionClosed(session);
    this.gone.streamsOpened += session.streamsOpened;
    this.gone.resets += session.resets;
    this.gone.goaways += session.goaways;
    this.gone.pingTimeouts += session.pingTimeouts;
    if (session.pingRttMs !== null) this.lastPingRttMs = session.pingRttMs;
    const listeners = this.closedListeners.get(session) ?? [];
    this.closedListeners.delete(session);
    for (const listener of listeners) listener();
  }

  private whenClosed(session: ClientSession, listener: () => void): void {
    if (!this.sessions.has(session)) return listener();
    const listeners = this.closedListeners.get(session) ?? [];
    listeners.push(listener);
    this.closedListeners.set(session, listeners);
  }
}
