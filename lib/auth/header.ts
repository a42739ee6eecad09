import { AuthHandshakeError } from './errors.js';
import type { ClientAuth, ServerAuth } from './keys.js';
import { PROOF_BYTES, clientProof, matchClientProof, newNonce, sameBytes, serverProof, type ProofInput } from './proof.js';
import { ReplayCache, ReplayWindow } from './replay.js';

/**
 * The http2/ws wire of the authentication extension: one request header
 * carries the client's proof, the same header on the 200 (http2) or 101
 * (ws) response carries the server's. See docs/extensions/auth.md.
 */
export const AUTH_HEADER = 'x-tunnel-pool-auth';
/** `WWW-Authenticate` of a refusal (401): says a proof is wanted, never why one failed. */
export const AUTH_CHALLENGE = 'X-Tunnel-Pool-Auth v1';
/** A refusal: status 401 with these headers and this body, the same for every cause. */
export const AUTH_REFUSAL = {
  status: 401,
  headers: { 'www-authenticate': AUTH_CHALLENGE, 'content-type': 'text/plain; charset=utf-8' },
  body: 'unauthorized\n',
} as const;

/** Client nonce in a header: 16 bytes (22 base64url characters). */
export const HEADER_NONCE_BYTES = 16;
/** Longest request header value accepted: anything longer is refused unread. */
export const MAX_HEADER_LENGTH = 96;

const REQUEST = /^v1\.(0|[1-9][0-9]{0,15})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/;
const RESPONSE = /^v1\.([A-Za-z0-9_-]{43})$/;

export interface AuthRequestHeader {
  /** Bound: the proof's number on its connection. Unbound: the client's clock, ms since the epoch. */
  seq: number;
  nonce: Buffer;
  proof: Buffer;
}

/** `v1.<seq>.<nonce>.<proof>`: seq in decimal, nonce (16 bytes) and proof (32 bytes) in unpadded base64url. */
export function encodeAuthRequestHeader(header: AuthRequestHeader): string {
  if (!Number.isSafeInteger(header.seq) || header.seq < 0 || header.nonce.length !== HEADER_NONCE_BYTES || header.proof.length !== PROOF_BYTES) {
    throw new RangeError('auth header: seq must be a safe non-negative integer, nonce 16 bytes, proof 32 bytes');
  }
  return `v1.${header.seq}.${header.nonce.toString('base64url')}.${header.proof.toString('base64url')}`;
}

/** One base64url text → bytes, only in its canonical form (no second spelling of the same bytes). */
function canonical(text: string, bytes: number): Buffer | undefined {
  const out = Buffer.from(text, 'base64url');
  return out.length === bytes && out.toString('base64url') === text ? out : undefined;
}

/**
 * Parses a request header value as Node hands it over (a string, or an
 * array when the header came twice: refused). Anything but the exact
 * syntax is `undefined`; never throws.
 */
export function parseAuthRequestHeader(value: unknown): AuthRequestHeader | undefined {
  if (typeof value !== 'string' || value.length > MAX_HEADER_LENGTH) return undefined;
  const match = REQUEST.exec(value);
  if (!match) return undefined;
  const seq = Number(match[1]);
  const nonce = canonical(match[2]!, HEADER_NONCE_BYTES);
  const proof = canonical(match[3]!, PROOF_BYTES);
  if (!Number.isSafeInteger(seq) || !nonce || !proof) return undefined;
  return { seq, nonce, proof };
}

/** `v1.<proof>` on the 200/101 response. */
export function encodeAuthResponseHeader(proof: Buffer): string {
  if (proof.length !== PROOF_BYTES) throw new RangeError('auth header: proof must be 32 bytes');
  return `v1.${proof.toString('base64url')}`;
}

export function parseAuthResponseHeader(value: unknown): Buffer | undefined {
  if (typeof value !== 'string' || value.length > MAX_HEADER_LENGTH) return undefined;
  const match = RESPONSE.exec(value);
  return match ? canonical(match[1]!, PROOF_BYTES) : undefined;
}

/** Whether a refusal response (401) came from a server that wants a proof: what a client without auth reports as 'required'. */
export function isAuthChallenge(status: number, wwwAuthenticate: unknown): boolean {
  const values = Array.isArray(wwwAuthenticate) ? wwwAuthenticate : [wwwAuthenticate];
  return status === 401 && values.some((value) => typeof value === 'string' && value.trim() === AUTH_CHALLENGE);
}

export type HeaderTransport = 'http2' | 'ws';

function proofInput(transport: HeaderTransport, seq: number, nonce: Buffer, binding: Buffer | undefined): ProofInput {
  const input: ProofInput = { context: transport, clientNonce: nonce, seq: String(seq) };
  if (binding) input.binding = binding;
  return input;
}

/** One proof a client sends: the header value, and the check of the server's answer. */
export interface ClientHeaderProof {
  header: string;
  /** Checks the server's `x-tunnel-pool-auth` response header (string, array, or absent); throws `AuthHandshakeError` unless the server proved the key. */
  verifyResponse(value: unknown): void;
}

/**
 * The client side, one per connection: per http2 session (every request on
 * it) or per ws upgrade. `binding` is the connection's channel binding
 * (`channelBinding(socket)`, computed after TLS and before the first
 * request) when `auth.channelBinding` and the connection runs TLS; then the
 * proofs are numbered 0, 1, 2, … Without one, each proof carries the clock.
 */
export class HeaderClientAuth {
  private next = 0;

  constructor(
    private readonly auth: ClientAuth,
    private readonly transport: HeaderTransport,
    private readonly binding?: Buffer,
    private readonly now: () => number = Date.now,
  ) {}

  proof(): ClientHeaderProof {
    const seq = this.binding ? this.next++ : Math.floor(this.now());
    const nonce = newNonce(HEADER_NONCE_BYTES);
    const input = proofInput(this.transport, seq, nonce, this.binding);
    const key = this.auth.key;
    return {
      header: encodeAuthRequestHeader({ seq, nonce, proof: clientProof(key, input) }),
      verifyResponse(value: unknown): void {
        if (value === undefined) throw new AuthHandshakeError('not-supported', 'no proof on the response');
        const proof = parseAuthResponseHeader(value);
        if (!proof) throw new AuthHandshakeError('malformed', 'the response proof header');
        if (!sameBytes(proof, serverProof(key, input))) throw new AuthHandshakeError('server-proof');
      },
    };
  }
}

export type HeaderCheck =
  /** Serve the stream; put `responseHeader` in the 200/101 response as `x-tunnel-pool-auth`. */
  | { ok: true; keyId: string; responseHeader: string }
  /** Answer `AUTH_REFUSAL` (401), count 'auth'. `reason` is for the server's own log only. */
  | { ok: false; reason: 'missing' | 'malformed' | 'stale' | 'replay' | 'mismatch' };

/** The server side of one connection (http2 session, ws connection): checks each request's header. */
export class HeaderConnectionAuth {
  private readonly window?: ReplayWindow;

  constructor(
    private readonly server: HeaderServerAuth,
    private readonly binding?: Buffer,
  ) {
    if (binding) this.window = new ReplayWindow();
  }

  check(value: unknown): HeaderCheck {
    if (value === undefined) return { ok: false, reason: 'missing' };
    const header = parseAuthRequestHeader(value);
    if (!header) return { ok: false, reason: 'malformed' };
    const cache = this.server.cache;
    if (!this.binding && !cache.fresh(header.seq)) return { ok: false, reason: 'stale' };
    const input = proofInput(this.server.transport, header.seq, header.nonce, this.binding);
    const key = matchClientProof(this.server.auth.keys, input, header.proof);
    if (!key) return { ok: false, reason: 'mismatch' };
    // Only a verified proof reaches the replay state, so a stranger cannot fill it.
    const fresh = this.window ? this.window.accept(header.seq) : cache.accept(header.nonce.toString('base64url'), header.seq);
    if (!fresh) return { ok: false, reason: 'replay' };
    return { ok: true, keyId: key.id, responseHeader: encodeAuthResponseHeader(serverProof(key, input)) };
  }
}

/**
 * The server side, one per server pool: holds the replay cache of unbound
 * proofs; `connection(binding)` per http2 session or ws connection, with
 * the connection's channel binding when `auth.channelBinding` and it runs
 * TLS.
 */
export class HeaderServerAuth {
  readonly cache: ReplayCache;

  constructor(
    readonly auth: ServerAuth,
    readonly transport: HeaderTransport,
    now: () => number = Date.now,
  ) {
    this.cache = new ReplayCache(auth.maxClockSkew, auth.replayCacheSize, now);
  }

  connection(binding?: Buffer): HeaderConnectionAuth {
    return new HeaderConnectionAuth(this, binding);
  }
}
