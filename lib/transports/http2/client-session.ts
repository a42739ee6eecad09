import { randomBytes } from 'node:crypto';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import type tls from 'node:tls';
import { closedGracefully, guardStream, type StreamOwner } from './stream-guard.js';
import { StreamCutError } from '../../core/errors.js';
import { HeaderClientAuth, type ClientHeaderProof } from '../../auth/header.js';
import type { ClientAuth } from '../../auth/keys.js';
import { channelBinding } from '../../auth/proof.js';

export type SessionState = 'connecting' | 'ready' | 'draining' | 'closed';

export interface ClientSessionConfig {
  /** Sent as `:authority`: the hostname without a port. */
  authority: string;
  keepAlive: number;
  pingTimeout: number;
  /** RST_STREAMs this side may cost a session before it is retired (see README). */
  resetBudget: number;
  initialWindowSize: number;
  sessionWindowSize: number;
  maxSessionMemory: number;
  /** Shared-key authentication: a proof on every request. */
  auth?: ClientAuth;
}

export interface ClientSessionEvents {
  /** The session takes no new streams any more (GOAWAY, retired, dead, closed). */
  onUnusable(session: ClientSession): void;
  onClosed(session: ClientSession): void;
}

/**
 * One HTTP/2 session of a client transport: how many streams it carries,
 * how many the peer allows, how many resets it has cost, and its PINGs.
 * A session in any state but 'ready' opens no new streams.
 */
export class ClientSession implements StreamOwner {
  state: SessionState = 'connecting';
  /**
   * Streams open on it (idle, handed out or handshaking), plus slots
   * reserved for a request about to be made. Only the session counts them:
   * `reserve()` up, a stream's close (or a failed `request()`) down.
   */
  get open(): number {
    return this.openCount;
  }
  private openCount = 0;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS (100, HTTP/2's recommended floor, until its SETTINGS arrive). */
  peerMaxStreams = 100;
  /** Streams that closed without both END_STREAMs: each may have cost an RST_STREAM. */
  resets = 0;
  streamsOpened = 0;
  goaways = 0;
  /**
   * The server answered a proof on this session with its 401 challenge. It
   * then retires the session (GOAWAY), and the streams it did not process
   * fail for that reason: they report the refusal, not a cut.
   */
  authRefused = false;
  pingRttMs: number | null = null;
  pingTimeouts = 0;
  readonly ready: Promise<void>;
  private readonly session: ClientHttp2Session;
  private readonly streams = new Set<ClientHttp2Stream>();
  /** The proofs of this session's requests, numbered 0, 1, 2, … and bound to its TLS connection. */
  private readonly auth?: HeaderClientAuth;
  private pingTimer?: NodeJS.Timeout;
  private pingDeadline?: NodeJS.Timeout;
  private unusableSignalled = false;
  /** drain() was called: close the session once nothing is open on it. */
  private draining = false;
  /** Set when the session was cut from our side or its socket died, so streams say why. */
  private deathReason?: StreamCutError;

  constructor(
    readonly socket: tls.TLSSocket,
    private readonly config: ClientSessionConfig,
    private readonly events: ClientSessionEvents,
    readyTimeout: number,
  ) {
    // Registered before Node's own listeners, which end the streams without
    // an error: ours fail them first, with a typed one.
    const lost = (error?: Error): void => {
      this.deathReason ??= new StreamCutError('connection-lost', `the HTTP/2 session's connection ${error ? `failed: ${error.message}` : 'closed'}`);
      this.markUnusable();
      for (const stream of this.streams) if (!stream.destroyed) stream.destroy(this.deathReason);
    };
    socket.once('error', lost);
    socket.once('close', () => lost());
    // The socket is secured before the session starts: its channel binding is known before the first request.
    if (config.auth) this.auth = new HeaderClientAuth(config.auth, 'http2', config.auth.channelBinding ? channelBinding(socket) : undefined);
    this.session = http2.connect(`https://${config.authority}`, {
      createConnection: () => socket,
      settings: { enablePush: false, initialWindowSize: config.initialWindowSize },
      maxSessionMemory: config.maxSessionMemory,
      peerMaxConcurrentStreams: 100,
    });
    this.session.on('error', () => undefined); // surfaced through the streams and 'close'
    this.session.on('goaway', (code, lastStreamId) => this.goaway(code, lastStreamId));
    this.session.on('remoteSettings', (settings) => {
      if (settings.maxConcurrentStreams !== undefined) this.peerMaxStreams = settings.maxConcurrentStreams;
    });
    this.session.once('close', () => this.closed());
    this.ready = new Promise<void>((resolve, reject) => {
      const fail = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      const timer = setTimeout(() => fail(new Error(`no SETTINGS from the server within ${readyTimeout} ms`)), readyTimeout);
      this.session.once('connect', () => {
        try {
          this.session.setLocalWindowSize(config.sessionWindowSize);
        } catch {
          // A session that died on connect fails below.
        }
      });
      this.session.once('remoteSettings', () => {
        clearTimeout(timer);
        if (this.state !== 'connecting') return reject(new Error('the HTTP/2 session closed while starting'));
        this.state = 'ready';
        this.startPings();
        resolve();
      });
      this.session.once('close', () => fail(new Error('the HTTP/2 session closed before the server\'s SETTINGS arrived')));
      // A TLS 1.3 server refuses a client certificate after the client's handshake is done: its alert
      // ends the connection before the session starts, and the session may never report it.
      // (A no-op once ready: the promise is settled.)
      const early = (error?: Error): void => fail(new Error(`the connection ${error ? `failed (${error.message})` : 'closed'} before the server's SETTINGS arrived`));
      if (socket.destroyed) early();
      socket.once('error', early);
      socket.once('close', () => early());
    });
    this.ready.catch(() => this.destroy());
  }

  /** Streams this session can still open without passing the peer's limit or the reset budget. */
  freeSlots(): number {
    if (this.state !== 'ready') return 0;
    return Math.min(this.peerMaxStreams - this.open, this.config.resetBudget - this.resets - this.open);
  }

  /** Reserves a slot for a `request()` about to be made (the caller checked `freeSlots()`). */
  reserve(): void {
    this.openCount++;
  }

  /** The proof for the next request on this session (authentication on), or undefined. */
  proof(): ClientHeaderProof | undefined {
    return this.auth?.proof();
  }

  /** Opens a pooled stream: `POST /stream` (with `extra` headers), streamed body, `0x00` written at once, in a slot `reserve()` took. */
  request(extra: Record<string, string> = {}): ClientHttp2Stream {
    let stream: ClientHttp2Stream;
    try {
      stream = this.session.request(
        { ':method': 'POST', ':path': '/stream', ':scheme': 'https', ':authority': this.config.authority, ...extra },
        { endStream: false },
      );
    } catch (error) {
      this.openCount--;
      this.markUnusable();
      throw error;
    }
    this.streamsOpened++;
    this.streams.add(stream);
    guardStream(stream, this);
    stream.write(Buffer.of(0));
    return stream;
  }

  get abortReason(): StreamCutError | undefined {
    return this.deathReason;
  }

  streamClosed(stream: ClientHttp2Stream): void {
    this.streams.delete(stream);
    this.openCount--;
    if (!closedGracefully(stream)) this.countReset();
    this.closeIfDrained();
  }

  /**
   * No new streams; the session closes (GOAWAY) once the last open one has
   * ended. Not before: a request still queued on this side may reach the
   * server after the GOAWAY, which a Node server answers with a GOAWAY of
   * its own that fails that request.
   */
  drain(): void {
    if (this.state === 'closed') return;
    this.draining = true;
    this.markUnusable();
    this.closeIfDrained();
  }

  /** Kills the session and every stream on it. */
  destroy(error?: StreamCutError): void {
    if (error) this.deathReason ??= error;
    this.markUnusable();
    if (!this.session.destroyed) this.session.destroy(error);
    // A session frozen in a pending write does not free its socket on
    // destroy() (Node waits for the write to flush); the socket goes too.
    this.socket.destroy();
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  // ---- internals ------------------------------------------------------

  private closeIfDrained(): void {
    if (this.draining && this.open === 0 && !this.session.closed && !this.session.destroyed) this.session.close();
  }

  private countReset(): void {
    this.resets++;
    // Past half the budget the session takes no new streams (freeSlots keeps
    // resets + open under the budget) and is closed once its streams end.
    if (this.state === 'ready' && this.resets >= this.config.resetBudget / 2) this.drain();
  }

  private goaway(_code: number, lastStreamId: number): void {
    this.goaways++;
    this.markUnusable();
    // Streams the peer never processed will not be served: they leave now.
    // Node closes them too; doing it here makes it immediate and says why.
    for (const stream of this.streams) {
      if (stream.id !== undefined && stream.id > lastStreamId && !stream.destroyed) {
        stream.destroy(new StreamCutError('goaway', `the server sent GOAWAY with last stream ${lastStreamId}; stream ${stream.id} was not processed`));
      }
    }
  }

  private startPings(): void {
    this.pingTimer = setInterval(() => this.ping(), this.config.keepAlive);
    this.pingTimer.unref();
  }

  private ping(): void {
    if (this.pingDeadline || this.session.destroyed) return;
    const sent = this.session.ping(randomBytes(8), (error, duration) => {
      clearTimeout(this.pingDeadline);
      this.pingDeadline = undefined;
      if (!error) this.pingRttMs = Math.round(duration * 1000) / 1000;
    });
    if (!sent) return;
    this.pingDeadline = setTimeout(() => {
      this.pingTimeouts++;
      this.destroy(new StreamCutError('ping-timeout', `the server did not answer a PING within ${this.config.pingTimeout} ms`));
    }, this.config.pingTimeout);
    this.pingDeadline.unref();
  }

  private markUnusable(): void {
    if (this.state === 'ready' || this.state === 'connecting') this.state = 'draining';
    if (!this.unusableSignalled) {
      this.unusableSignalled = true;
      this.events.onUnusable(this);
    }
  }

  private closed(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.pingDeadline);
    this.markUnusable();
    this.state = 'closed';
    this.events.onClosed(this);
  }
}
