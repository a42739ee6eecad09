import type { Http2Stream, ServerHttp2Session, ServerHttp2Stream } from 'node:http2';
import type tls from 'node:tls';
import { SESSION_CLOSE_GRACE } from './http2-settings.js';
import { StreamCutError } from '../../core/errors.js';
import type { StreamOwner } from './stream-guard.js';

/** What a server session needs from its server: its timings, and where its counts go. */
export interface SessionHost {
  readonly keepAlive: number;
  readonly handshakeTimeout: number;
  /** A stream of this session (or of no known session) closed. */
  streamClosed(session: ServerSession | undefined, stream: Http2Stream): void;
  /** This session sent GOAWAY. */
  goawaySent(): void;
  /** This session carried no stream before its deadline ('no-stream'). */
  noStream(): void;
}

/**
 * One HTTP/2 connection of the server, from the end of its TLS handshake to
 * its close: the TLS socket, the Node session on it, the streams it carries,
 * its idle deadline and its retirement (GOAWAY, then dropped). It is also the
 * `StreamOwner` of its streams, so a stream cut by a lost connection says why.
 */
export class ServerSession implements StreamOwner {
  /** Streams opened on it and not closed yet. */
  readonly streams = new Set<ServerHttp2Stream>();
  /** Why its streams are being cut, once the connection died. */
  abortReason: StreamCutError | undefined;
  /** The Node session, once made. */
  session?: ServerHttp2Session;
  /** A stream was ever opened on it: a protocol error before that is a refusal of the connection. */
  carried = false;
  /** GOAWAY sent by retire(): its deadline stands, stream closes do not re-arm the idle timer. */
  private retiring = false;
  private idleTimer?: NodeJS.Timeout;

  constructor(
    private readonly host: SessionHost,
    readonly remoteAddress: string | undefined,
    /** The TLS socket under the session (Node forbids destroying it through `session.socket`). */
    readonly socket?: tls.TLSSocket,
  ) {
    if (!socket) return;
    // Registered before Node's own listeners, which end the streams without
    // an error: ours fail them first, with a typed one.
    socket.once('error', (error: Error) => this.lost(error));
    socket.once('close', () => this.lost());
    // A peer that hangs up (even mid-frame) takes its session with it, at once.
    const hungUp = (): void => {
      if (!this.session || this.session.destroyed) return;
      this.lost(); // the streams in use get their typed error first
      this.session.destroy();
    };
    socket.once('end', hungUp);
    socket.once('close', hungUp);
  }

  /** The Node session Node made on this connection. */
  attach(session: ServerHttp2Session, closing: boolean): void {
    this.session = session;
    session.once('close', () => clearTimeout(this.idleTimer));
    this.armIdle();
    if (closing) this.goaway();
  }

  streamOpened(stream: ServerHttp2Stream): void {
    this.carried = true;
    clearTimeout(this.idleTimer);
    this.streams.add(stream);
  }

  streamClosed(stream: Http2Stream): void {
    this.host.streamClosed(this, stream);
    this.streams.delete(stream as ServerHttp2Stream);
    this.armIdle();
  }

  /**
   * A session with no stream for 2 × keepAlive is closed (GOAWAY), as the Go
   * server does. One that has not carried a stream yet gets no longer than
   * handshakeTimeout to open one (it costs an fd and session memory), and
   * is counted 'no-stream' when it did not. Either way a peer that stays
   * after the GOAWAY is dropped (see retire).
   */
  private armIdle(): void {
    if (this.retiring) return;
    clearTimeout(this.idleTimer);
    if (this.streams.size > 0) return;
    const { keepAlive, handshakeTimeout } = this.host;
    this.idleTimer = this.carried
      ? setTimeout(() => this.retire(), 2 * keepAlive)
      : setTimeout(() => {
          this.host.noStream();
          this.retire();
        }, Math.min(2 * keepAlive, handshakeTimeout));
    this.idleTimer.unref();
  }

  /**
   * GOAWAY, and the session destroyed if it is still open
   * SESSION_CLOSE_GRACE ms later with no stream: Node's close() waits for
   * the peer, and a peer that neither opens a stream nor hangs up would
   * keep the session (and its fd) for good.
   */
  retire(): void {
    if (this.retiring || !this.session) return;
    const session = this.session;
    this.retiring = true;
    this.goaway();
    clearTimeout(this.idleTimer);
    const check = (): void => {
      // Streams still open finish first (a 403 on its way out): look again later.
      if (this.streams.size > 0 && !session.destroyed) {
        this.idleTimer = setTimeout(check, SESSION_CLOSE_GRACE);
        this.idleTimer.unref();
        return;
      }
      // A session Node already destroyed may still wait for its socket to close: the peer may never answer our FIN.
      this.destroy();
    };
    this.idleTimer = setTimeout(check, SESSION_CLOSE_GRACE);
    this.idleTimer.unref();
  }

  /** GOAWAY, once, on a session still open. */
  goaway(): void {
    const session = this.session;
    if (!session || session.closed || session.destroyed) return;
    this.host.goawaySent();
    session.close();
  }

  /** Now: the session and its socket (a session frozen in a pending write does not free its socket on destroy()). */
  destroy(): void {
    this.session?.destroy();
    this.socket?.destroy();
  }

  /** The connection died: its streams are cut with a typed error that says so. */
  private lost(error?: Error): void {
    this.abortReason ??= new StreamCutError('connection-lost', `the HTTP/2 session's connection ${error ? `failed: ${error.message}` : 'closed'}`);
    for (const stream of this.streams) if (!stream.destroyed) stream.destroy(this.abortReason);
  }
}
