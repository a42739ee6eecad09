/**
 * Every failure a caller of this library can meet is a `PoolError` with a
 * stable `code`. Match on `code` (or `instanceof`), never on the message.
 */
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
} as const;

export type PoolErrorCode = (typeof PoolErrorCode)[keyof typeof PoolErrorCode];

export class PoolError extends Error {
  readonly code: PoolErrorCode;

  constructor(code: PoolErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A get (`outgoingGet`, `incomingGet`, `waitForActive`) ran out of time. */
export class PoolTimeoutError extends PoolError {
  constructor(message: string) {
    super(PoolErrorCode.TIMEOUT, message);
  }
}

/** The pool is closing or closed; pending gets are rejected with this. */
export class PoolClosedError extends PoolError {
  /** `cause`: the error given to `destroy(error)`, when that is how the pool closed. */
  constructor(message = 'the pool is closed', options?: { cause?: unknown }) {
    super(PoolErrorCode.CLOSED, message, options);
  }
}

/** A get or a dial was attempted on a pool that was never started. */
export class PoolNotStartedError extends PoolError {
  constructor(message = 'the pool has not been started: call start() first (the Nest module does it unless autoStart is false)') {
    super(PoolErrorCode.NOT_STARTED, message);
  }
}

/**
 * The server refused a pooled connection: closed it before the ID, or
 * answered with a refusal status. The two subclasses below say why when
 * the wire tells (HTTP/2 and WebSocket statuses); `instanceof
 * PoolRefusedError` catches all three.
 */
export class PoolRefusedError extends PoolError {
  constructor(message: string, options?: { cause?: unknown }, code: PoolErrorCode = PoolErrorCode.REFUSED) {
    super(code, message, options);
  }
}

/** The server does not serve this client's address (`allowedIps`; HTTP 403). */
export class IpNotAllowedError extends PoolRefusedError {
  constructor(message = 'the server does not allow this client address (allowedIps)', options?: { cause?: unknown }) {
    super(message, options, PoolErrorCode.IP_NOT_ALLOWED);
  }
}

/** The server pool holds its maximum of streams (`maxCap`; WebSocket 503). */
export class PoolFullError extends PoolRefusedError {
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
  constructor(message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.DIAL, message, options);
  }
}

/** TLS or the ID exchange failed (bad certificate, wrong hostname, short or malformed ID, timeout). */
export class HandshakeError extends PoolError {
  constructor(message: string, options?: { cause?: unknown }, code: PoolErrorCode = PoolErrorCode.HANDSHAKE) {
    super(code, message, options);
  }
}

/**
 * One end speaks TLS and the other does not: a client with `tls` on dialing
 * a plain server (its TLS layer got the server's ID, not a TLS answer). The
 * message says what to change. A `HandshakeError` with its own code.
 */
export class TlsMismatchError extends HandshakeError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options, PoolErrorCode.TLS_MISMATCH);
  }
}

/** An ID that is not valid for the chosen wire form (or for `outgoingGet`). */
export class InvalidIdError extends PoolError {
  constructor(message: string) {
    super(PoolErrorCode.INVALID_ID, message);
  }
}

/** Options that fail validation; the message names the option, the value and what was expected. */
export class InvalidOptionsError extends PoolError {
  readonly option: string;
  constructor(option: string, message: string) {
    super(PoolErrorCode.INVALID_OPTIONS, `invalid option ${option}: ${message}`);
    this.option = option;
  }
}

/** A server pool could not listen (port in use, address not available, no permission). */
export class ListenError extends PoolError {
  /** The option to change, e.g. 'port' or 'server.port'. */
  readonly option: string;
  constructor(option: string, message: string, options?: { cause?: unknown }) {
    super(PoolErrorCode.LISTEN, message, options);
    this.option = option;
  }
}

/** Two pool registrations with the same name (Nest layer). */
export class DuplicatePoolError extends PoolError {
  constructor(message: string) {
    super(PoolErrorCode.DUPLICATE_POOL, message);
  }
}

/** A get was cancelled through its AbortSignal. */
export class PoolAbortedError extends PoolError {
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
  constructor(message: string) {
    super(PoolErrorCode.MISSING_MODULE, message);
  }
}
