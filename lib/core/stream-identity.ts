import type { Duplex } from 'node:stream';

/**
 * Who is at the other end of an authenticated pooled stream: the key it
 * proved (shared-key authentication), or the certificate it presented
 * (mutual TLS). A transport attaches it when the stream's handshake proves
 * it; the pool and the application read it with `streamIdentity()`.
 */
export type ClientIdentity =
  | { kind: 'key'; id: string }
  | {
      kind: 'certificate';
      /** The subject as Node prints it (`X509Certificate.subject`): one `TYPE=value` per line, in certificate order. */
      subject: string;
      /** The subject's common name, when it has exactly one. */
      commonName?: string;
      /** SHA-256 of the DER certificate, `AB:CD:…`: unique even where subjects repeat. */
      fingerprint: string;
    };

const identities = new WeakMap<Duplex, ClientIdentity>();

/** Attaches what the handshake of `stream` proved about its peer (transports call this before handing the stream to the pool). */
export function setStreamIdentity(stream: Duplex, identity: ClientIdentity): void {
  identities.set(stream, identity);
}

/** The identity the transport proved for this pooled stream; undefined on a pool without authentication. */
export function streamIdentity(stream: Duplex): ClientIdentity | undefined {
  return identities.get(stream);
}
