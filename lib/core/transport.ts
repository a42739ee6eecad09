import type { Duplex } from 'node:stream';

/**
 * The seam between the pool core and a transport. The core knows pooled
 * streams only as `Duplex`es; a transport knows nothing of pools. A new
 * transport is one folder that implements these two interfaces.
 */

export interface DialContext {
  /** Aborted when the pool closes: stop, destroy what was opened, reject. */
  readonly signal: AbortSignal;
  /** False in single mode: no ID exchange, return `id: null`. */
  readonly readId: boolean;
}

export interface DialResult {
  /** The server-assigned ID (8 lowercase hex chars), or null in single mode. */
  readonly id: string | null;
  /** The pooled stream, positioned just after the ID: bytes after it are still unread. */
  readonly stream: Duplex;
}

export interface ClientTransport {
  /** A short name for stats and logs: 'tcp', 'tls', 'http2', 'ws'... */
  readonly kind: string;
  /**
   * Opens one pooled stream and runs the ID handshake. Rejects with a
   * `PoolError` (`DialError`, `HandshakeError`, `PoolRefusedError`,
   * `InvalidIdError`...) and leaves nothing open when it fails.
   */
  dial(context: DialContext): Promise<DialResult>;
  /**
   * Releases what the transport shares between streams (sessions, agents).
   * `timeout` is the pool's close timeout: then the pool cuts the streams
   * the application still holds, and what the transport still holds open
   * shortly after is destroyed, so nothing outlives the close.
   */
  close(timeout: number): Promise<void>;
  /**
   * Checked when an idle stream is taken: false if the transport knows the
   * stream cannot carry data any more although the stream itself has not
   * said so yet (its session got GOAWAY, its socket is closing...).
   */
  isUsable?(stream: Duplex): boolean;
  /** Transport-specific figures merged into the pool's stats. */
  stats?(): Record<string, unknown>;
}

/**
 * Why a server pool turned a connection away before its handshake: `full`
 * (maxCap), `busy` (maxHandshakes), `peer-busy` (maxHandshakesPerPeer: this
 * address holds its share of handshakes), `connection-busy`
 * (maxHandshakesPerConnection: this connection does), `ip` (allowedIps),
 * `closed` (the pool is closing). What `ServerAcceptor.admit` and
 * `ServerAcceptor.connecting` answer instead of a slot.
 */
export type Refusal = 'full' | 'busy' | 'peer-busy' | 'connection-busy' | 'ip' | 'closed';

/**
 * Every reason a server pool counts in `stats.refusals`, one table for all
 * transports (the keys are public: a name here is never renamed). Grouped by
 * where it is decided; each entry is the one-line meaning shown in the docs.
 */
export const REFUSAL_REASONS = {
  // The pool's admission (`admit` / `connecting`).
  full: 'the pool holds maxCap streams (idle plus handshaking)',
  busy: 'maxHandshakes connections are in their handshake',
  'peer-busy': 'this peer address holds its maxHandshakesPerPeer share',
  'connection-busy': 'this connection holds its maxHandshakesPerConnection share (HTTP/2)',
  ip: 'the peer address is outside allowedIps',
  closed: 'the pool is closing',
  fds: 'the process is near its file descriptor limit (the peer sees "busy")',
  // The listener.
  'accept-emfile': "the listener's accept failed: out of descriptors for the process",
  'accept-enfile': "the listener's accept failed: out of descriptors for the system",
  'accept-error': "the listener's accept failed otherwise",
  // The front door: the connection's own handshake (TLS, deadline), every transport.
  tls: 'the TLS handshake failed (not TLS, bad version, reset during it)',
  alpn: 'TLS without the required ALPN protocol (http2: h2)',
  'handshake-timeout': 'the handshake did not complete within handshakeTimeout',
  'closed-in-handshake': 'the peer closed (or ended) before its handshake completed',
  'socket-error': 'the connection failed (e.g. was reset) before its ID was written (tcp/TLS)',
  auth: 'a missing, malformed, stale, replayed or wrong authentication proof (the wire never says which)',
  // http2.
  'bad-preface': 'bytes after TLS that do not start with the HTTP/2 connection preface',
  'h2-protocol': 'HTTP/2 frames the server cannot take, before any stream',
  'not-found': 'a request other than POST /stream',
  sessions: 'maxSessions connections are open (closed bare at accept)',
  'peer-sessions': 'this peer address holds maxSessionsPerPeer connections (closed bare at accept)',
  'no-stream': 'a session that opened no stream within its deadline',
  // ws.
  'not-upgrade': 'a plain HTTP request on the pool\'s own port (426)',
  'bad-request': 'bytes the HTTP parser cannot take (400)',
  'headers-too-large': 'request headers past the parser\'s limit (431)',
  path: 'an upgrade to a path the pool does not serve (404)',
  'bad-upgrade': 'an upgrade request ws refuses (bad key, version, method: 400/405)',
} as const satisfies Record<Refusal, string> & Record<string, string>;

/**
 * A reason a server counts: one of `REFUSAL_REASONS`, or, for a transport
 * written outside this package, its own reason under a prefix of its name
 * (`'unix:bad-hello'`), which can never collide with a built-in one.
 */
export type RefusalReason = keyof typeof REFUSAL_REASONS | `${string}:${string}`;

/** The reasons the front door counts for a connection's own handshake. */
export type HandshakeFailure = 'tls' | 'alpn' | 'handshake-timeout' | 'closed-in-handshake' | 'socket-error' | 'auth';

/** The reasons a failed accept on a listener is counted under. */
export type AcceptFailure = 'accept-emfile' | 'accept-enfile' | 'accept-error';

/** How `ServerAcceptor.connecting` treats the address it is given. */
export interface ConnectingOptions {
  /**
   * Check the address against `allowedIps` here (default true). False when
   * the address to check is only known later (a ws server behind a trusted
   * proxy learns it from `X-Forwarded-For`); the slot then counts in
   * the total only (the address is a proxy's; the peer's share is taken at
   * `admit`, with the address the proxy names).
   */
  readonly checkAddress?: boolean;
}

/** A slot and an ID reserved for a connection that is still handshaking. */
export interface Admission {
  readonly id: string;
  /** The peer has been sent its ID: the stream joins the pool. */
  accept(stream: Duplex): void;
  /** The handshake failed; `reason` is counted in the stats. */
  fail(reason: RefusalReason, error?: unknown): void;
}

export interface ServerAcceptor {
  /** The pool's limits, for transports that advertise or enforce them (HTTP/2 SETTINGS). */
  readonly limits: { readonly maxCap: number };
  /**
   * Called for each new pooled stream, before any TLS on tcp: checks
   * capacity (idle plus handshaking against maxCap), then the peer address,
   * then the handshake slots (in total, for the peer address, and for
   * `connection` when several pooled streams share one, as on HTTP/2), and
   * reserves an ID. 'busy', 'peer-busy' and 'connection-busy' are as full
   * for the peer (tcp: bare close; ws: 503; http2: 404). A string is a
   * refusal; the transport turns it away in its own way (bare close, 403,
   * 503...).
   */
  admit(remoteAddress: string | undefined, connection?: object): Admission | Refusal;
  /** Counts a refusal the transport decided on its own (bad ALPN, wrong path...); `remoteAddress` goes to the diagnostics event. */
  refused(reason: RefusalReason, remoteAddress?: string): void;
  /**
   * For a transport whose connection handshake (TLS, an HTTP upgrade) comes
   * before any pooled stream is admitted: called at accept, before any TLS.
   * Checks the peer address (`allowedIps`), then takes one handshake slot
   * for that connection (in total and for its address), or refuses ('ip',
   * 'busy', 'peer-busy', 'closed'; close the connection bare). Call the
   * returned function once the connection's handshake is over, whichever
   * way; further calls do nothing.
   */
  connecting(remoteAddress?: string, options?: ConnectingOptions): (() => void) | Refusal;
  /** Says something once through the pool's logger (e.g. the fingerprint of a certificate made at start-up). Never a secret. */
  log?(message: string): void;
}

export interface ServerTransport {
  readonly kind: string;
  /** Whether this wire form issues `00000000` as the first ID of a pool's life. */
  readonly firstIdZero: boolean;
  /** Starts accepting; resolves once listening. */
  listen(acceptor: ServerAcceptor): Promise<void>;
  /** The bound address once listening. */
  address(): { address: string; port: number; family: string } | null;
  /** Stops accepting, frees the listener, aborts handshakes in progress; `timeout` as for `ClientTransport.close`. */
  close(timeout: number): Promise<void>;
  /** As `ClientTransport.isUsable`. */
  isUsable?(stream: Duplex): boolean;
  /**
   * True when the clients of this transport send nothing on a pooled stream
   * before the server hands it out (they learn its ID from the server's
   * application first). Bytes that arrive on an idle stream then come from
   * a stranger or a misconfigured peer: the pool drops the stream (counted
   * 'unexpected-data', or the reason `refuseIdleData` gives) instead of
   * handing the bytes to the application.
   */
  readonly quietIdle?: boolean;
  /**
   * With `quietIdle`: looks at the bytes that arrived on an idle stream
   * (already read out of it). Returns a reason when it recognises them (a
   * TLS ClientHello on a plain port: 'tls-on-plain'), having answered the
   * peer and taken over closing the stream; undefined leaves it to the pool,
   * which destroys it ('unexpected-data').
   */
  refuseIdleData?(stream: Duplex, bytes: Buffer): 'tls-on-plain' | undefined;
  stats?(): Record<string, unknown>;
}
