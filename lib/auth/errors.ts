import { HandshakeError, PoolRefusedError, type PoolErrorCode } from '../core/errors.js';

/**
 * The codes of the authentication extension. They belong in `PoolErrorCode`
 * (lib/core/errors.ts) once the transports are wired; until then they live
 * here so lib/core stays untouched while it is being restructured.
 */
export const AuthErrorCode = {
  /** The server refused this client's proof (wrong key, stale or replayed proof). */
  REFUSED: 'POOL_ERR_AUTH_REFUSED',
  /** The exchange itself failed: the server does not authenticate, or could not prove the key, or sent garbage. */
  FAILED: 'POOL_ERR_AUTH',
} as const;

export type AuthErrorCode = (typeof AuthErrorCode)[keyof typeof AuthErrorCode];

/**
 * The server refused this client's proof: a bare close right after the
 * proof (tcp) or a 401 (http2, ws). The wire never says why; the message
 * lists what to check. A `PoolRefusedError`, so the client pool backs off as
 * for any refusal.
 */
export class AuthRefusedError extends PoolRefusedError {
  constructor(
    message = 'the server refused the authentication proof: check that both ends share the key (auth.key), that the clocks agree within maxClockSkew (ws:// only), and that channelBinding is set alike (it must be false behind a proxy that terminates TLS)',
    options?: { cause?: unknown },
  ) {
    super(message, options, AuthErrorCode.REFUSED as unknown as PoolErrorCode);
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

const MESSAGES: Record<AuthFailure, string> = {
  'not-supported': 'the server does not authenticate pooled connections (a Go pool, or a server without auth): it sent no challenge; remove auth on this client or set auth on the server',
  required: 'the server requires authentication of pooled connections: set auth.key on this client',
  'server-proof': 'the server could not prove that it holds the key: it is not the server you configured (or it has another key); the connection was dropped before its ID',
  malformed: 'the server sent a malformed authentication message',
};

/** A client's authenticated handshake failed; `reason` says how (stable values, see `AuthFailure`). */
export class AuthHandshakeError extends HandshakeError {
  readonly reason: AuthFailure;
  constructor(reason: AuthFailure, detail?: string, options?: { cause?: unknown }) {
    super(detail ? `${MESSAGES[reason]} (${detail})` : MESSAGES[reason], options, AuthErrorCode.FAILED as unknown as PoolErrorCode);
    this.reason = reason;
  }
}
