import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';

export type { ClientIdentity } from '../core/stream-identity.js';
import type { ClientIdentity } from '../core/stream-identity.js';

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
