import { AuthHandshakeError, AuthRefusedError } from './errors.js';
import type { ClientAuth, ServerAuth } from './keys.js';
import { NONCE_BYTES, PROOF_BYTES, clientProof, matchClientProof, newNonce, sameBytes, serverProof, type AuthContext, type ProofInput } from './proof.js';

/**
 * The tcp/TLS wire of the authentication extension: three messages before
 * the ID, each `magic "NTPA" | version | type | body` (see
 * docs/extensions/auth.md for the byte layout and who speaks when).
 */
export const TCP_AUTH_MAGIC = Buffer.from('NTPA', 'ascii');
export const TCP_AUTH_VERSION = 0x01;
export const TcpAuthType = { CHALLENGE: 0x01, PROOF: 0x02, ACCEPT: 0x03 } as const;
export type TcpAuthType = (typeof TcpAuthType)[keyof typeof TcpAuthType];

const HEADER_BYTES = TCP_AUTH_MAGIC.length + 2;
/** Whole sizes: challenge 38, proof 70, accept 38 bytes. */
export const TCP_MESSAGE_BYTES: Record<TcpAuthType, number> = {
  [TcpAuthType.CHALLENGE]: HEADER_BYTES + NONCE_BYTES,
  [TcpAuthType.PROOF]: HEADER_BYTES + NONCE_BYTES + PROOF_BYTES,
  [TcpAuthType.ACCEPT]: HEADER_BYTES + PROOF_BYTES,
};

function encode(type: TcpAuthType, ...body: Buffer[]): Buffer {
  const out = Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([TCP_AUTH_VERSION, type]), ...body]);
  if (out.length !== TCP_MESSAGE_BYTES[type]) throw new RangeError(`auth message of type ${type} must be ${TCP_MESSAGE_BYTES[type]} bytes, got ${out.length}`);
  return out;
}

export const encodeChallenge = (serverNonce: Buffer): Buffer => encode(TcpAuthType.CHALLENGE, serverNonce);
export const encodeProof = (clientNonce: Buffer, proof: Buffer): Buffer => encode(TcpAuthType.PROOF, clientNonce, proof);
export const encodeAccept = (proof: Buffer): Buffer => encode(TcpAuthType.ACCEPT, proof);

export type TcpParse =
  | { kind: 'need'; missing: number }
  | { kind: 'message'; body: Buffer; rest: Buffer }
  | { kind: 'invalid'; at: 'magic' | 'version' | 'type' };

/**
 * Parses one message of `type` from the start of `bytes`: needs more, the
 * body (the bytes after the 6-byte header) and what follows it, or where
 * it went wrong. A wrong byte is reported as soon as it arrives, so a peer
 * that is not speaking this extension is told apart without waiting.
 */
export function parseTcpAuthMessage(bytes: Uint8Array, type: TcpAuthType): TcpParse {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = Math.min(data.length, TCP_AUTH_MAGIC.length);
  if (!data.subarray(0, magic).equals(TCP_AUTH_MAGIC.subarray(0, magic))) return { kind: 'invalid', at: 'magic' };
  if (data.length > 4 && data[4] !== TCP_AUTH_VERSION) return { kind: 'invalid', at: 'version' };
  if (data.length > 5 && data[5] !== type) return { kind: 'invalid', at: 'type' };
  const size = TCP_MESSAGE_BYTES[type];
  if (data.length < size) return { kind: 'need', missing: size - data.length };
  return { kind: 'message', body: data.subarray(HEADER_BYTES, size), rest: data.subarray(size) };
}

/**
 * Whether bytes a client without auth read as its ID are the start of a
 * challenge (the server wants a proof): the 4-byte magic for raw4, magic +
 * version + type for hex8 (whose ID can never contain them: not hex). A Go
 * raw4 server draws an ID equal to the magic once in 2^32 IDs.
 */
export function looksLikeTcpChallenge(idBytes: Uint8Array): boolean {
  const data = Buffer.from(idBytes.buffer, idBytes.byteOffset, idBytes.byteLength);
  const probe = Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([TCP_AUTH_VERSION, TcpAuthType.CHALLENGE])]).subarray(0, Math.min(data.length, HEADER_BYTES));
  return data.length >= TCP_AUTH_MAGIC.length && data.subarray(0, probe.length).equals(probe);
}

export type TcpIdFormat = 'hex8' | 'raw4';
const contextOf = (idFormat: TcpIdFormat): AuthContext => (idFormat === 'hex8' ? 'tcp/hex8' : 'tcp/raw4');

/** Bound on what one side buffers during the exchange: the largest message. */
const MAX_BUFFER = TCP_MESSAGE_BYTES[TcpAuthType.PROOF];

export type TcpServerStep =
  | { kind: 'need' }
  /** Write `reply` and the ID in one write; `rest` (normally empty) is the stream's first bytes. */
  | { kind: 'accepted'; keyId: string; reply: Buffer; rest: Buffer }
  /** Close the connection without a byte; count it as 'auth'. `reason` is for the server's own log only. */
  | { kind: 'refused'; reason: 'malformed' | 'mismatch' };

/**
 * The server's side of one connection, after accept (and TLS): write
 * `challenge` at once, feed what the client sends to `push` until it says
 * accepted or refused. Issue no ID before `accepted`.
 */
export class TcpServerAuth {
  readonly challenge: Buffer;
  private readonly serverNonce = newNonce();
  private buffer = Buffer.alloc(0);
  private done = false;

  constructor(
    private readonly auth: ServerAuth,
    private readonly idFormat: TcpIdFormat,
    private readonly binding?: Buffer,
  ) {
    this.challenge = encodeChallenge(this.serverNonce);
  }

  push(chunk: Uint8Array): TcpServerStep {
    if (this.done) throw new Error('TcpServerAuth: the exchange is over');
    this.buffer = Buffer.concat([this.buffer, chunk]);
    const parsed = parseTcpAuthMessage(this.buffer.subarray(0, MAX_BUFFER), TcpAuthType.PROOF);
    if (parsed.kind === 'need') return { kind: 'need' };
    this.done = true;
    if (parsed.kind === 'invalid') return { kind: 'refused', reason: 'malformed' };
    const clientNonce = parsed.body.subarray(0, NONCE_BYTES);
    const input = this.input(clientNonce);
    const key = matchClientProof(this.auth.keys, input, parsed.body.subarray(NONCE_BYTES));
    if (!key) return { kind: 'refused', reason: 'mismatch' };
    return { kind: 'accepted', keyId: key.id, reply: encodeAccept(serverProof(key, input)), rest: Buffer.from(this.buffer.subarray(MAX_BUFFER)) };
  }

  private input(clientNonce: Buffer): ProofInput {
    const input: ProofInput = { context: contextOf(this.idFormat), serverNonce: this.serverNonce, clientNonce };
    if (this.binding) input.binding = this.binding;
    return input;
  }
}

export type TcpClientStep =
  | { kind: 'need' }
  /** Write `bytes` (the proof), then keep feeding `push`. */
  | { kind: 'send'; bytes: Buffer }
  /** Authenticated: `rest` is what followed the server's proof, i.e. the ID (and anything after it): read the ID from it as usual. */
  | { kind: 'done'; rest: Buffer };

/**
 * The client's side of one connection, after connect (and TLS): send
 * nothing, feed what the server sends to `push`. It answers the challenge
 * with a proof (`send`), then checks the server's proof (`done`). Throws
 * `AuthHandshakeError` when the server does not speak the extension, sends
 * garbage or cannot prove the key; `ended()` is the error for a connection
 * that ended before `done`.
 */
export class TcpClientAuth {
  private buffer = Buffer.alloc(0);
  private phase: 'challenge' | 'accept' | 'done' = 'challenge';
  private input?: ProofInput;

  constructor(
    private readonly auth: ClientAuth,
    private readonly idFormat: TcpIdFormat,
    private readonly binding?: Buffer,
  ) {}

  push(chunk: Uint8Array): TcpClientStep {
    if (this.phase === 'done') throw new Error('TcpClientAuth: the exchange is over');
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (this.phase === 'challenge') {
      const parsed = parseTcpAuthMessage(this.buffer, TcpAuthType.CHALLENGE);
      if (parsed.kind === 'need') return { kind: 'need' };
      if (parsed.kind === 'invalid') {
        throw new AuthHandshakeError(parsed.at === 'magic' ? 'not-supported' : 'malformed', parsed.at === 'magic' ? undefined : `bad ${parsed.at} in the challenge`);
      }
      if (parsed.rest.length > 0) throw new AuthHandshakeError('malformed', 'bytes after the challenge');
      const input: ProofInput = { context: contextOf(this.idFormat), serverNonce: Buffer.from(parsed.body), clientNonce: newNonce() };
      if (this.binding) input.binding = this.binding;
      this.input = input;
      this.buffer = Buffer.alloc(0);
      this.phase = 'accept';
      return { kind: 'send', bytes: encodeProof(input.clientNonce, clientProof(this.auth.key, input)) };
    }
    const parsed = parseTcpAuthMessage(this.buffer, TcpAuthType.ACCEPT);
    if (parsed.kind === 'need') return { kind: 'need' };
    if (parsed.kind === 'invalid') throw new AuthHandshakeError('malformed', `bad ${parsed.at} in the accept message`);
    this.phase = 'done';
    if (!sameBytes(parsed.body, serverProof(this.auth.key, this.input!))) throw new AuthHandshakeError('server-proof');
    return { kind: 'done', rest: Buffer.from(parsed.rest) };
  }

  /**
   * The error for a connection that ended (or failed) before `done`:
   * `undefined` before any byte (the server's ordinary refusal, e.g. full:
   * report it as the transport does), a refusal of the proof once it was
   * sent, and a malformed exchange otherwise.
   */
  ended(): Error | undefined {
    if (this.phase === 'accept' && this.buffer.length === 0) return new AuthRefusedError();
    if (this.phase === 'challenge' && this.buffer.length === 0) return undefined;
    if (this.phase === 'done') return undefined;
    return new AuthHandshakeError('malformed', 'the connection ended in the middle of a message');
  }
}
