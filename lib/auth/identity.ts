import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';

/**
 * Who is at the other end of an authenticated pooled stream: the key it
 * proved (shared-key auth), or the certificate it presented (mutual TLS).
 * What the server will attach to each pooled stream, filter
 * `incomingGet({ client })` on and count stats by.
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

/** The identity of a key that verified. */
export const keyIdentity = (id: string): ClientIdentity => ({ kind: 'key', id });

/**
 * The identity of a client certificate (`tlsSocket.getPeerCertificate()`
 * on a server with `requestCert`, after it was verified), or `undefined`
 * when the client sent none or it cannot be read. Never throws.
 */
export function certificateIdentity(cert: Partial<PeerCertificate> | undefined | null): ClientIdentity | undefined {
  if (!cert || !Buffer.isBuffer(cert.raw) || cert.raw.length === 0) return undefined;
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert.raw);
  } catch {
    return undefined;
  }
  const commonNames = x509.subject.split('\n').filter((line) => line.startsWith('CN=')).map((line) => line.slice(3));
  const identity: ClientIdentity = { kind: 'certificate', subject: x509.subject, fingerprint: x509.fingerprint256 };
  if (commonNames.length === 1) identity.commonName = commonNames[0]!;
  return identity;
}

/**
 * One string per identity, for stats keys and log lines: `key:<id>`, or
 * `cert:<common name>` (`cert:sha256:<fingerprint>` without a single CN).
 */
export function identityLabel(identity: ClientIdentity): string {
  if (identity.kind === 'key') return `key:${identity.id}`;
  return identity.commonName !== undefined ? `cert:${identity.commonName}` : `cert:sha256:${identity.fingerprint}`;
}
