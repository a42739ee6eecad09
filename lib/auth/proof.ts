import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { keyHmac, type AuthKey } from './keys.js';

/** The TLS exporter label both ends use for the channel binding (RFC 5705 / RFC 8446 section 7.5). */
export const EXPORTER_LABEL = 'EXPORTER-nestjs-tunnel-pool-auth';
/** Bytes of a channel binding, a nonce, a proof. */
export const BINDING_BYTES = 32;
export const NONCE_BYTES = 32;
export const PROOF_BYTES = 32;

/** What a proof is bound to besides the nonces: the transport and, on tcp, the ID form. */
export type AuthContext = 'tcp/hex8' | 'tcp/raw4' | 'http2' | 'ws';

const LABEL = Buffer.from('nestjs-tunnel-pool auth v1', 'ascii');

/**
 * The channel binding of a TLS connection: 32 bytes exported from its
 * TLS 1.3 key schedule under `EXPORTER_LABEL`, the same on both ends of one
 * connection and different on any other (it depends on both hellos and the
 * key exchange). `undefined` for a socket without TLS. An `Http2Session`'s
 * `socket` works too (checked on Node 20). The exporter context is empty.
 */
export function channelBinding(socket: unknown): Buffer | undefined {
  const tls = socket as Partial<TLSSocket> | null | undefined;
  if (!tls || typeof tls.exportKeyingMaterial !== 'function' || (tls as { encrypted?: boolean }).encrypted !== true) return undefined;
  return tls.exportKeyingMaterial(BINDING_BYTES, EXPORTER_LABEL, Buffer.alloc(0));
}

/** A fresh nonce from the system's CSPRNG. */
export function newNonce(bytes = NONCE_BYTES): Buffer {
  return randomBytes(bytes);
}

/** Everything one proof covers. Absent fields are empty; every field is length-prefixed, so no two inputs share an encoding. */
export interface ProofInput {
  context: AuthContext;
  /** tcp: the server's challenge nonce. */
  serverNonce?: Buffer;
  clientNonce: Buffer;
  /** http2/ws: the sequence (a per-connection counter when bound, the client's clock in ms when unbound), as sent. */
  seq?: string;
  /** The TLS channel binding, when folded in. */
  binding?: Buffer;
}

const EMPTY = Buffer.alloc(0);

function field(bytes: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** The bytes a proof is the HMAC of: label, role, context, server nonce, client nonce, seq, binding, each as u16 length + bytes. */
export function transcript(role: 'client' | 'server', input: ProofInput): Buffer {
  return Buffer.concat([
    field(LABEL),
    field(Buffer.from(role, 'ascii')),
    field(Buffer.from(input.context, 'ascii')),
    field(input.serverNonce ?? EMPTY),
    field(input.clientNonce),
    field(input.seq === undefined ? EMPTY : Buffer.from(input.seq, 'ascii')),
    field(input.binding ?? EMPTY),
  ]);
}

/** The client's proof: HMAC-SHA256(key, transcript('client', input)). */
export function clientProof(key: AuthKey, input: ProofInput): Buffer {
  return keyHmac(key, transcript('client', input));
}

/** The server's proof, sent back with the ID once the client's proof verified: HMAC-SHA256(key, transcript('server', input)). */
export function serverProof(key: AuthKey, input: ProofInput): Buffer {
  return keyHmac(key, transcript('server', input));
}

/** Constant-time equality of two byte strings (false when the lengths differ). */
export function sameBytes(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Which key, if any, made `proof`. Every key is tried, each with a
 * constant-time comparison and without stopping at a match, so the time
 * taken does not depend on where (or whether) the proof matches.
 */
export function matchClientProof(keys: readonly AuthKey[], input: ProofInput, proof: Buffer): AuthKey | undefined {
  if (proof.length !== PROOF_BYTES) return undefined;
  const bytes = transcript('client', input);
  let matched: AuthKey | undefined;
  for (const key of keys) {
    if (timingSafeEqual(keyHmac(key, bytes), proof) && matched === undefined) matched = key;
  }
  return matched;
}
