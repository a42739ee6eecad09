/**
 * Every failure a caller of this library can meet is a `PoolError` with a
 * stable `code`. Match on `code` (or `instanceof`, or `isPoolError`), never
 * on the message. The table of classes and codes is docs/ERRORS.md.
 */
import type { CertificateFingerprints } from '../certs/fingerprint.js';

export const PoolErrorCode = {
  TIMEOUT: 'POOL_ERR_TIMEOUT',
  CLOSED: 'POOL_ERR_CLOSED',
  NOT_STARTED: 'POOL_ERR_NOT_STARTED',
  REFUSED: 'POOL_ERR_REFUSED',
  IP_NOT_ALLOWED: 'POOL_ERR_IP_NOT_ALLOWED',
  POOL_FULL: 'POOL_ERR_FULL',
  DIAL: 'POOL_ERR_DIAL',
  HANDSHAKE: 'POOL_ERR_HANDSHAKE',
  INVALID_ID: 'POOL_ERR_INVALID_ID',
  INVALID_OPTIONS: 'POOL_ERR_INVALID_OPTIONS',
  DUPLICATE_POOL: 'POOL_ERR_DUPLICATE_POOL',
  LISTEN: 'POOL_ERR_LISTEN',
  ABORTED: 'POOL_ERR_ABORTED',
  FIRST_STREAM_LOST: 'POOL_ERR_FIRST_STREAM_LOST',
  FIRST_STREAM_TAKEN: 'POOL_ERR_FIRST_STREAM_TAKEN',
  FD_LIMIT: 'POOL_ERR_FD_LIMIT',
  MISSING_MODULE: 'POOL_ERR_MISSING_MODULE',
  TLS_MISMATCH: 'POOL_ERR_TLS_MISMATCH',
  /** The server's certificate matches none of the client's pinned fingerprints (`CertificatePinError`). */
  CERT_PIN: 'POOL_ERR_CERT_PIN',
  /** The server refused this client's authentication proof (the authentication extension). */
  AUTH_REFUSED: 'POOL_ERR_AUTH_REFUSED',
  /** The authentication exchange itself failed (see `AuthHandshakeError.reason`). */
  AUTH: 'POOL_ERR_AUTH',
  /**
   * A pooled stream was cut mid-use (`StreamCutError`). Deliberately not a
   * `POOL_ERR_` code: it is the code Node gives a reset TCP socket, and on
   * plain tcp most cuts reach the application as Node's own socket error,
   * so `error.code === 'ECONNRESET'` means "cut" on every transport.
   */
  STREAM_CUT: 'ECONNRESET',
  /** WebSocket streams (`WsStreamError`): Node-style codes, as a socket's stream errors have. */
  WS_TEXT_MESSAGE: 'ERR_WS_TEXT_MESSAGE',
  WS_DATA_AFTER_END: 'ERR_WS_DATA_AFTER_END',
  WS_HALF_CLOSE_UNSUPPORTED: 'ERR_WS_HALF_CLOSE_UNSUPPORTED',
  WS_NOT_OPEN: 'EPIPE',
  /** The tunnel's control channel received bytes its protocol does not allow (`ControlProtocolError`). */
  CONTROL_PROTOCOL: 'POOL_ERR_CONTROL_PROTOCOL',
  /** The two ends of a control channel share no protocol version (`ControlVersionError`). */
  CONTROL_VERSION: 'POOL_ERR_CONTROL_VERSION',
  /** The control channel's hello or liveness deadline passed (`ControlTimeoutError`). */
  CONTROL_TIMEOUT: 'POOL_ERR_CONTROL_TIMEOUT',
  /** The peer closed the control channel with an error message (`ControlRefusedError`). */
  CONTROL_REFUSED: 'POOL_ERR_CONTROL_REFUSED',
  /** The tunnel could not connect to a route's target (`TargetConnectError`; `reason` says how). */
  TARGET_CONNECT: 'POOL_ERR_TARGET_CONNECT',
  /** A route holds its maximum of concurrent connections (`RouteLimitError`). */
  ROUTE_LIMIT: 'POOL_ERR_ROUTE_LIMIT',
  /** Bytes that are no valid PROXY protocol header (`ProxyHeaderError`; `reason` says what is wrong). */
  PROXY_HEADER: 'POOL_ERR_PROXY_HEADER',
} as const;

export type PoolErrorCode = (typeof PoolErrorCode)[keyof typeof PoolErrorCode];

/**
 * The brand every `PoolError` carries, under a registry symbol: two copies
 * of this package loaded in one process (two versions in node_modules, a
 * bundled and an unbundled copy) see the same symbol, so `instanceof` and
 * `isPoolError` recognise each other's errors.
 */
const kPoolError: unique symbol = Symbol.for('nestjs-tunnel-pool.error') as never;

type Constructor = abstract new (...args: never[]) => unknown;

const ordinaryHasInstance = Function.prototype[Symbol.hasInstance];

export class PoolError extends Error {
  /**
   * The codes an instance of this class may carry, for `instanceof` across
   * copies of the package; a class without its own list (a subclass written
   * outside this module) is matched by its prototype chain only.
   */
  static readonly codes: readonly PoolErrorCode[] | undefined = undefined;

  readonly code: PoolErrorCode;

  constructor(code: PoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /**
   * `error instanceof PoolTimeoutError` holds for an error made by another
   * copy of this package too: it carries the brand and one of the class's
   * codes. An instance of this very copy is matched as usual.
   */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (ordinaryHasInstance.call(this, value)) return true;
    if (!isBranded(value)) return false;
    if (this === PoolError) return true;
    const codes = Object.prototype.hasOwnProperty.call(this, 'codes') ? (this as typeof PoolError).codes : undefined;
    return codes !== undefined && codes.includes(value.code);
  }
}

Object.defineProperty(PoolError.prototype, kPoolError, { value: true, enumerable: false, writable: false });

function isBranded(value: unknown): value is PoolError {
  return typeof value === 'object' && value !== null && (value as { [kPoolError]?: unknown })[kPoolError] === true && typeof (value as { code?: unknown }).code === 'string';
}

/** The class whose instances carry `code`, for `isPoolError`'s narrowing. */
export type PoolErrorFor<C extends PoolErrorCode> = {
  [K in keyof PoolErrorClasses]: C extends InstanceType<PoolErrorClasses[K]>['code'] ? InstanceType<PoolErrorClasses[K]> & { readonly code: C } : never;
}[keyof PoolErrorClasses];

/**
 * Whether `value` is an error of this library (from this copy of the
 * package or another), and with `code`, whether it carries that code:
 *
 *     if (isPoolError(error, 'POOL_ERR_TIMEOUT')) retry(); // error: PoolTimeoutError
 */
export function isPoolError(value: unknown): value is PoolError;
export function isPoolError<C extends PoolErrorCode>(value: unknown, code: C): value is PoolErrorFor<C>;
export function isPoolError(value: unknown, code?: PoolErrorCode): boolean {
  return isBranded(value) && (code === undefined || value.code === code);
}

/** A get (`outgoingGet`, `incomingGet`, `waitForActive`) ran out of time. */
export class PoolTimeoutError extends PoolError {
  static override readonly codes = [PoolErrorCode.TIMEOUT] as const;
  declare readonly code: typeof PoolErrorCode.TIMEOUT;
  constructor(message: string) {
    super(PoolErrorCode.TIMEOUT, message);
  }
}

/**
 * The pool is closing or closed: pending gets are rejected with this, taken
 * streams still open at the close timeout are destroyed with it, and a dial
 * or handshake in flight when the pool closes fails with it.
 */
export class PoolClosedError extends PoolError {
  static override readonly codes = [PoolErrorCode.CLOSED] as const;
  declare readonly code: typeof PoolErrorCode.CLOSED;
  /** `cause`: the error given to `destroy(error)`, when that is how the pool closed. */
  constructor(message = 'the pool is closed', options?: { cause?: unknown }) {
    super(PoolErrorCode.CLOSED, message, options);
  }
}

/** A get or a dial was attempted on a pool that was never started. */
export class PoolNotStartedError extends PoolError {
  static override readonly codes = [PoolErrorCode.NOT_STARTED] as const;
  declare readonly code: typeof PoolErrorCode.NOT_STARTED;
  constructor(message = 'the pool has not been started: call start() first (the Nest module does it unless autoStart is false)') {
    super(PoolErrorCode.NOT_STARTED, message);
  }
}

type RefusalCode = typeof PoolErrorCode.REFUSED | typeof PoolErrorCode.IP_NOT_ALLOWED | typeof PoolErrorCode.POOL_FULL | typeof PoolErrorCode.AUTH_REFUSED;

/**
 * The server refused a pooled connection: closed it before the ID, or
 * answered with a refusal status. The two subclasses below say why when
 * the wire tells (HTTP/2 and WebSocket statuses); `instanceof
 * PoolRefusedError` catches all three.
 */
export class PoolRefusedError extends PoolError {
  static override readonly codes: readonly PoolErrorCode[] = [PoolErrorCode.REFUSED, PoolErrorCode.IP_NOT_ALLOWED, PoolErrorCode.POOL_FULL, PoolErrorCode.AUTH_REFUSED];
  declare readonly code: RefusalCode;
  constructor(message: string, options?: { cause?: unknown }, code: RefusalCode = PoolErrorCode.REFUSED) {
    super(code, message, options);
  }
}

/** The server does not serve this client's address (`allowedIps`; HTTP 403). */
export class IpNotAllowedError extends PoolRefusedError {
  static override readonly codes = [PoolErrorCode.IP_NOT_ALLOWED] as const;
  declare readonly code: typeof PoolErrorCode.IP_NOT_ALLOWED;
  constructor(message = 'the server does not allow this client address (allowedIps)', options?: { cause?: unknown }) {
    super(message, options, PoolErrorCode.IP_NOT_ALLOWED);
  }
}

/** The server pool holds its maximum of streams (`maxCap`; WebSocket 503). */
export class PoolFullError extends PoolRefusedError {
  static override readonly codes = [PoolErrorCode.POOL_FULL] as const;
  declare readonly code: typeof PoolErrorCode.POOL_FULL;
  constructor(message = 'the server pool is full (maxCap)', options?: { cause?: unknown }) {
    super(message, options, PoolErrorCode.POOL_FULL);
  }
}

/**
 * The typed refusal for an HTTP status: 403 is the address rule, 503 a full
 * pool (WebSocket); anything else (HTTP/2's 404 means "full" or "wrong
 * path" alike) is a plain refusal.
 */
export function refusalForStatus(status: number, message: string): PoolRefusedError {
  if (status === 403) return new IpNotAllowedError(message);
  if (status === 503) return new PoolFullError(message);
  return new PoolRefusedError(message);
}

/** Dialing the server failed (refused, unreachable, DNS, dial timeout). */
export class DialError extends PoolError {
  static override readonly codes = [PoolErrorCode.DIAL] as const;
  declare readonly code: typeof PoolErrorCode.DIAL;
  constructor(message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.DIAL, message, options);
  }
}

type HandshakeCode = typeof PoolErrorCode.HANDSHAKE | typeof PoolErrorCode.TLS_MISMATCH | typeof PoolErrorCode.AUTH | typeof PoolErrorCode.CERT_PIN;

/** TLS or the ID exchange failed (bad certificate, wrong hostname, short or malformed ID, timeout). */
export class HandshakeError extends PoolError {
  static override readonly codes: readonly PoolErrorCode[] = [PoolErrorCode.HANDSHAKE, PoolErrorCode.TLS_MISMATCH, PoolErrorCode.AUTH, PoolErrorCode.CERT_PIN];
  declare readonly code: HandshakeCode;
  constructor(message: string, options?: { cause?: unknown }, code: HandshakeCode = PoolErrorCode.HANDSHAKE) {
    super(code, message, options);
  }
}

/**
 * One end speaks TLS and the other does not: a client with `tls` on dialing
 * a plain server (its TLS layer got the server's ID, not a TLS answer). The
 * message says what to change. A `HandshakeError` with its own code.
 */
export class TlsMismatchError extends HandshakeError {
  static override readonly codes = [PoolErrorCode.TLS_MISMATCH] as const;
  declare readonly code: typeof PoolErrorCode.TLS_MISMATCH;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, PoolErrorCode.TLS_MISMATCH);
  }
}

/**
 * The server's certificate matches none of the client's pinned SHA-256
 * fingerprints (`pin`): not the server that was pinned, or its certificate
 * changed. `fingerprints` are the server's (public, safe to show): what to
 * pin if the change is expected. A `HandshakeError` with its own code.
 */
export class CertificatePinError extends HandshakeError {
  static override readonly codes = [PoolErrorCode.CERT_PIN] as const;
  declare readonly code: typeof PoolErrorCode.CERT_PIN;
  readonly fingerprints: CertificateFingerprints | undefined;
  constructor(message: string, fingerprints?: CertificateFingerprints, options?: { cause?: unknown }) {
    super(message, options, PoolErrorCode.CERT_PIN);
    this.fingerprints = fingerprints;
  }
}

/**
 * The server refused this client's authentication proof: a bare close right
 * after the proof (tcp) or a 401 (http2, ws). The wire never says why; the
 * message lists what to check. A `PoolRefusedError`, so the client pool backs
 * off as for any refusal.
 */
export class AuthRefusedError extends PoolRefusedError {
  static override readonly codes = [PoolErrorCode.AUTH_REFUSED] as const;
  declare readonly code: typeof PoolErrorCode.AUTH_REFUSED;
  constructor(
    message = 'the server refused the authentication proof: check that both ends share the key (auth.key), that the clocks agree within maxClockSkew (ws:// only), and that channelBinding is set alike (it must be false behind a proxy that terminates TLS)',
    options?: { cause?: unknown },
  ) {
    super(message, options, PoolErrorCode.AUTH_REFUSED);
  }
}

/** Why an authenticated handshake failed on the client (never sent on the wire). */
export type AuthFailure =
  /** This client authenticates; the server sent an ID (or a 200/101) without asking for a proof: it does not authenticate (a Go pool, or no auth set). */
  | 'not-supported'
  /** This client does not authenticate; the server asked for a proof (set auth.key). */
  | 'required'
  /** The server's own proof did not verify: it does not hold the key (an impostor, or a different key). */
  | 'server-proof'
  /** A message of the exchange was not what the protocol allows (magic, version, type, length, header syntax). */
  | 'malformed';

const AUTH_FAILURE_MESSAGES: Record<AuthFailure, string> = {
  'not-supported': 'the server does not authenticate pooled connections (a Go pool, or a server without auth): it sent no challenge; remove auth on this client or set auth on the server',
  required: 'the server requires authentication of pooled connections: set auth.key on this client',
  'server-proof': 'the server could not prove that it holds the key: it is not the server you configured (or it has another key); the connection was dropped before its ID',
  malformed: 'the server sent a malformed authentication message',
};

/** A client's authenticated handshake failed; `reason` says how (stable values, see `AuthFailure`). */
export class AuthHandshakeError extends HandshakeError {
  static override readonly codes = [PoolErrorCode.AUTH] as const;
  declare readonly code: typeof PoolErrorCode.AUTH;
  readonly reason: AuthFailure;
  constructor(reason: AuthFailure, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${AUTH_FAILURE_MESSAGES[reason]} (${detail})` : AUTH_FAILURE_MESSAGES[reason], options, PoolErrorCode.AUTH);
    this.reason = reason;
  }
}

/** An ID that is not valid for the chosen wire form (or for `outgoingGet`). */
export class InvalidIdError extends PoolError {
  static override readonly codes = [PoolErrorCode.INVALID_ID] as const;
  declare readonly code: typeof PoolErrorCode.INVALID_ID;
  constructor(message: string) {
    super(PoolErrorCode.INVALID_ID, message);
  }
}

/** Options that fail validation; the message names the option, the value and what was expected. */
export class InvalidOptionsError extends PoolError {
  static override readonly codes = [PoolErrorCode.INVALID_OPTIONS] as const;
  declare readonly code: typeof PoolErrorCode.INVALID_OPTIONS;
  readonly option: string;
  constructor(option: string, message: string) {
    super(PoolErrorCode.INVALID_OPTIONS, `invalid option ${option}: ${message}`);
    this.option = option;
  }
}

/** A server pool could not listen (port in use, address not available, no permission). */
export class ListenError extends PoolError {
  static override readonly codes = [PoolErrorCode.LISTEN] as const;
  declare readonly code: typeof PoolErrorCode.LISTEN;
  /** The option to change, e.g. 'port' or 'server.port'. */
  readonly option: string;
  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.LISTEN, message, options);
    this.option = option;
  }
}

/** Two pool registrations with the same name (Nest layer). */
export class DuplicatePoolError extends PoolError {
  static override readonly codes = [PoolErrorCode.DUPLICATE_POOL] as const;
  declare readonly code: typeof PoolErrorCode.DUPLICATE_POOL;
  constructor(message: string) {
    super(PoolErrorCode.DUPLICATE_POOL, message);
  }
}

/**
 * A get was cancelled through the caller's own AbortSignal. (The pool's
 * close is a `PoolClosedError`, never this.)
 */
export class PoolAbortedError extends PoolError {
  static override readonly codes = [PoolErrorCode.ABORTED] as const;
  declare readonly code: typeof PoolErrorCode.ABORTED;
  constructor(message = 'the operation was aborted') {
    super(PoolErrorCode.ABORTED, message);
  }
}

/**
 * The reserved first stream (`reserveFirstId`, ID `00000000`) died before
 * `firstStream()` took it: the peer ended or reset it. A pool issues that ID
 * once in its life, so it never comes again; `firstStream()` rejects with
 * this (the stream's own error, if any, in `cause`).
 */
export class FirstStreamLostError extends PoolError {
  static override readonly codes = [PoolErrorCode.FIRST_STREAM_LOST] as const;
  declare readonly code: typeof PoolErrorCode.FIRST_STREAM_LOST;
  constructor(message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.FIRST_STREAM_LOST, message, options);
  }
}

/**
 * `firstStream()` after the reserved first stream (`reserveFirstId`, ID
 * `00000000`) was already taken, by an earlier call or by another call
 * waiting at the same time. A pool issues that ID once in its life, so such
 * a call could only wait for ever; it rejects with this at once instead.
 */
export class FirstStreamTakenError extends PoolError {
  static override readonly codes = [PoolErrorCode.FIRST_STREAM_TAKEN] as const;
  declare readonly code: typeof PoolErrorCode.FIRST_STREAM_TAKEN;
  constructor(message: string) {
    super(PoolErrorCode.FIRST_STREAM_TAKEN, message);
  }
}

/**
 * A client pool did not dial: the process is near its limit on open file
 * descriptors (`ulimit -n`), and the last ones are left to the rest of the
 * application. Raise the limit or lower `maxCap`.
 */
export class FdLimitError extends PoolError {
  static override readonly codes = [PoolErrorCode.FD_LIMIT] as const;
  declare readonly code: typeof PoolErrorCode.FD_LIMIT;
  constructor(message: string) {
    super(PoolErrorCode.FD_LIMIT, message);
  }
}

/**
 * A Nest provider of this library was set up without the module it needs
 * (e.g. `PoolHealthIndicator` without `PoolHealthModule`); the message
 * names the import that fixes it.
 */
export class MissingModuleError extends PoolError {
  static override readonly codes = [PoolErrorCode.MISSING_MODULE] as const;
  declare readonly code: typeof PoolErrorCode.MISSING_MODULE;
  constructor(message: string) {
    super(PoolErrorCode.MISSING_MODULE, message);
  }
}

/**
 * Why a pooled stream was cut: the peer reset it (tcp RST, HTTP/2
 * RST_STREAM), its connection or session died under it, the peer stopped
 * answering keep-alive pings, an HTTP/2 GOAWAY excluded it, or the peer
 * closed the WebSocket with an error code (or, with half-close, before its
 * end of data).
 */
export type StreamCutReason = 'reset' | 'connection-lost' | 'ping-timeout' | 'goaway' | 'closed';

/** What the wire said about a cut, when it says anything. */
export interface StreamCutDetails {
  /** HTTP/2: the RST_STREAM code the stream closed with. */
  rstCode?: number;
  /** WebSocket: the close code (1006: the connection went without a close frame). */
  closeCode?: number;
  cause?: unknown;
}

/**
 * A pooled stream was cut mid-use, on any transport: it errors with this
 * instead of ending, so a reader never takes a cut for a clean end. `code`
 * is `'ECONNRESET'` (see `PoolErrorCode.STREAM_CUT`), as on a reset TCP
 * socket, so one check covers Node's own socket errors on tcp and this
 * class; `reason` says what happened, `rstCode` / `closeCode` what the wire
 * said.
 */
export class StreamCutError extends PoolError {
  static override readonly codes = [PoolErrorCode.STREAM_CUT] as const;
  declare readonly code: typeof PoolErrorCode.STREAM_CUT;
  readonly reason: StreamCutReason;
  /** Set only when known (no key at all otherwise). */
  declare readonly rstCode?: number;
  declare readonly closeCode?: number;

  constructor(reason: StreamCutReason, message: string, details: StreamCutDetails = {}) {
    super(PoolErrorCode.STREAM_CUT, message, details.cause === undefined ? undefined : { cause: details.cause });
    this.reason = reason;
    if (details.rstCode !== undefined) (this as { rstCode?: number }).rstCode = details.rstCode;
    if (details.closeCode !== undefined) (this as { closeCode?: number }).closeCode = details.closeCode;
  }
}

type WsStreamCode =
  | typeof PoolErrorCode.WS_TEXT_MESSAGE
  | typeof PoolErrorCode.WS_DATA_AFTER_END
  | typeof PoolErrorCode.WS_HALF_CLOSE_UNSUPPORTED
  | typeof PoolErrorCode.WS_NOT_OPEN;

/**
 * A pooled WebSocket stream failed for a reason that is no cut: the peer
 * sent a text message (`ERR_WS_TEXT_MESSAGE`; close 1003) or data after its
 * end-of-data message (`ERR_WS_DATA_AFTER_END`; close 1002), this side's
 * end may have cut a peer without the half-close extension short
 * (`ERR_WS_HALF_CLOSE_UNSUPPORTED`), or a write came after the peer closed
 * (`EPIPE`, as on a socket).
 */
export class WsStreamError extends PoolError {
  static override readonly codes = [
    PoolErrorCode.WS_TEXT_MESSAGE,
    PoolErrorCode.WS_DATA_AFTER_END,
    PoolErrorCode.WS_HALF_CLOSE_UNSUPPORTED,
    PoolErrorCode.WS_NOT_OPEN,
  ] as const;
  declare readonly code: WsStreamCode;
  /** The WebSocket close code, when the error comes with a close. */
  declare readonly closeCode?: number;

  constructor(code: WsStreamCode, message: string, closeCode?: number) {
    super(code, message);
    if (closeCode !== undefined) (this as { closeCode?: number }).closeCode = closeCode;
  }
}

/** What was wrong with the bytes a control channel received (stable values). */
export type ControlProtocolFailure =
  /** The stream did not start with the control preamble: the peer does not speak the tunnel control protocol. */
  | 'preamble'
  /** A frame announced a body longer than the protocol allows. */
  | 'too-large'
  /** A message body did not parse (length, value out of range, invalid UTF-8, trailing bytes). */
  | 'malformed'
  /** A message type this end must understand but does not know. */
  | 'unknown-type'
  /** A well-formed message where the exchange does not allow it (an OPEN before the hello, a second hello). */
  | 'unexpected'
  /** The stream ended in the middle of a frame. */
  | 'truncated'
  /** A tunnelled connection's pooled stream did not start with its 8-byte header (`NTPR`/`NTPF` and its conn). */
  | 'stream-header';

/**
 * The tunnel's control channel received bytes its protocol does not allow;
 * `reason` says which rule they broke. The channel is destroyed with it.
 */
export class ControlProtocolError extends PoolError {
  static override readonly codes = [PoolErrorCode.CONTROL_PROTOCOL] as const;
  declare readonly code: typeof PoolErrorCode.CONTROL_PROTOCOL;
  readonly reason: ControlProtocolFailure;
  constructor(reason: ControlProtocolFailure, message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.CONTROL_PROTOCOL, message, options);
    this.reason = reason;
  }
}

/** How connecting to a tunnel route's target failed (stable values). */
export type TargetConnectFailure =
  /** Nothing listens there: the target answered the connect with a reset (`ECONNREFUSED`). */
  | 'refused'
  /** The connect did not complete within `timeout` (no answer to the SYN: a full backlog, a firewall that drops). */
  | 'timeout'
  /** No route to the host or network (`EHOSTUNREACH`, `ENETUNREACH`, `EADDRNOTAVAIL`). */
  | 'unreachable'
  /** The host name did not resolve (`ENOTFOUND`, `EAI_AGAIN`). */
  | 'dns'
  /** The caller's `signal` aborted the connect. */
  | 'aborted'
  /** Any other socket error (in `cause`). */
  | 'failed';

/**
 * The tunnel could not reach a route's target; `reason` says how, `host`
 * and `port` where it tried. The public side of such a connection is cut
 * (a reset), never ended cleanly.
 */
export class TargetConnectError extends PoolError {
  static override readonly codes = [PoolErrorCode.TARGET_CONNECT] as const;
  declare readonly code: typeof PoolErrorCode.TARGET_CONNECT;
  readonly reason: TargetConnectFailure;
  readonly host: string;
  readonly port: number;
  constructor(reason: TargetConnectFailure, host: string, port: number, message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.TARGET_CONNECT, message, options);
    this.reason = reason;
    this.host = host;
    this.port = port;
  }
}

/**
 * A route already holds its `maxConnections` concurrent connections: the
 * next one is refused at once (and counted), not queued.
 */
export class RouteLimitError extends PoolError {
  static override readonly codes = [PoolErrorCode.ROUTE_LIMIT] as const;
  declare readonly code: typeof PoolErrorCode.ROUTE_LIMIT;
  readonly limit: number;
  constructor(limit: number, message = `the route holds its maximum of ${limit} concurrent connections (maxConnections)`) {
    super(PoolErrorCode.ROUTE_LIMIT, message);
    this.limit = limit;
  }
}

/** What is wrong with a PROXY protocol header (stable values). */
export type ProxyHeaderFailure =
  /** The bytes start with neither the v1 nor the v2 signature. */
  | 'signature'
  /** A v2 header with a version other than 2, or a command other than LOCAL/PROXY. */
  | 'version'
  /** A protocol/family the parser does not know, or addresses of the wrong length for it. */
  | 'family'
  /** An address or port that does not parse. */
  | 'address'
  /** A v1 line longer than 107 bytes, or without its CRLF. */
  | 'too-long'
  /** The stream ended, or `timeout` passed, before a whole header came. */
  | 'truncated';

/** Bytes that are no valid PROXY protocol v1/v2 header; `reason` says what is wrong. */
export class ProxyHeaderError extends PoolError {
  static override readonly codes = [PoolErrorCode.PROXY_HEADER] as const;
  declare readonly code: typeof PoolErrorCode.PROXY_HEADER;
  readonly reason: ProxyHeaderFailure;
  constructor(reason: ProxyHeaderFailure, message: string) {
    super(PoolErrorCode.PROXY_HEADER, `invalid PROXY protocol header (${reason}): ${message}`);
    this.reason = reason;
  }
}

/** An inclusive range of control protocol versions. */
export interface ControlVersionRange {
  readonly min: number;
  readonly max: number;
}

/**
 * The two ends of a control channel share no protocol version: upgrade the
 * older end. `local` and `peer` are the ranges each end speaks.
 */
export class ControlVersionError extends PoolError {
  static override readonly codes = [PoolErrorCode.CONTROL_VERSION] as const;
  declare readonly code: typeof PoolErrorCode.CONTROL_VERSION;
  readonly local: ControlVersionRange;
  readonly peer: ControlVersionRange;
  constructor(local: ControlVersionRange, peer: ControlVersionRange, message?: string) {
    super(
      PoolErrorCode.CONTROL_VERSION,
      message ??
        `the tunnel control channel peers share no protocol version: this end speaks ${local.min}..${local.max}, the peer ${peer.min}..${peer.max}; upgrade the older end`,
    );
    this.local = local;
    this.peer = peer;
  }
}

/**
 * A control channel deadline passed: no hello answer in time (`phase`
 * 'hello'), or nothing at all from the peer, not even a pong, within the
 * liveness timeout ('liveness'). The channel is destroyed with it.
 */
export class ControlTimeoutError extends PoolError {
  static override readonly codes = [PoolErrorCode.CONTROL_TIMEOUT] as const;
  declare readonly code: typeof PoolErrorCode.CONTROL_TIMEOUT;
  readonly phase: 'hello' | 'liveness';
  constructor(phase: 'hello' | 'liveness', message: string) {
    super(PoolErrorCode.CONTROL_TIMEOUT, message);
    this.phase = phase;
  }
}

/**
 * The peer closed the control channel with an ERROR message: it refused
 * this client (`reason` 'not-allowed', 'duplicate'), is shutting down, or
 * found a protocol error on its side. `text` is the peer's own words.
 */
export class ControlRefusedError extends PoolError {
  static override readonly codes = [PoolErrorCode.CONTROL_REFUSED] as const;
  declare readonly code: typeof PoolErrorCode.CONTROL_REFUSED;
  readonly reason: string;
  readonly text: string;
  constructor(reason: string, text: string) {
    super(PoolErrorCode.CONTROL_REFUSED, `the tunnel peer closed the control channel (${reason})${text ? `: ${text}` : ''}`);
    this.reason = reason;
    this.text = text;
  }
}

/**
 * Every error class of this module by name: `PoolErrorFor` reads the codes
 * from it, and the error-table spec checks that no exported class is
 * missing from it.
 */
export const poolErrorClasses = {
  PoolError,
  PoolTimeoutError,
  PoolClosedError,
  PoolNotStartedError,
  PoolRefusedError,
  IpNotAllowedError,
  PoolFullError,
  DialError,
  HandshakeError,
  TlsMismatchError,
  CertificatePinError,
  AuthRefusedError,
  AuthHandshakeError,
  InvalidIdError,
  InvalidOptionsError,
  ListenError,
  DuplicatePoolError,
  PoolAbortedError,
  FirstStreamLostError,
  FirstStreamTakenError,
  FdLimitError,
  MissingModuleError,
  StreamCutError,
  WsStreamError,
  ControlProtocolError,
  ControlVersionError,
  ControlTimeoutError,
  ControlRefusedError,
  TargetConnectError,
  RouteLimitError,
  ProxyHeaderError,
} as const;

type PoolErrorClasses = Omit<typeof poolErrorClasses, 'PoolError'>;
