// SHA-256 fingerprints of certificates and public keys, and pinning a server to one (TLS mode "1").
import { X509Certificate, createHash } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import { CertificatePinError, InvalidOptionsError } from '../core/errors.js';

export { CertificatePinError };

/** A SHA-256 fingerprint in the two usual spellings. */
export interface Fingerprint {
  /** Upper-case hex pairs joined by colons, as `openssl x509 -fingerprint -sha256` prints it: `AB:CD:…`. */
  hex: string;
  /** Standard base64 with padding (44 characters), as HPKP's `pin-sha256` and curl's `--pinnedpubkey sha256//` write it. */
  base64: string;
}

export interface CertificateFingerprints {
  /** Of the DER certificate: changes whenever the certificate is re-issued. */
  certificate: Fingerprint;
  /** Of the DER SubjectPublicKeyInfo: survives re-issuing a certificate for the same key. */
  publicKey: Fingerprint;
}

/** What a fingerprint can be taken of: PEM text, DER bytes, an X509Certificate, or `getPeerCertificate()`'s result. */
export type CertificateSource = string | Buffer | X509Certificate | Pick<PeerCertificate, 'raw'>;

export function formatFingerprint(digest: Buffer): Fingerprint {
  return { hex: digest.toString('hex').toUpperCase().match(/../g)!.join(':'), base64: digest.toString('base64') };
}

function x509(source: CertificateSource): X509Certificate {
  if (source instanceof X509Certificate) return source;
  if (typeof source === 'string' || Buffer.isBuffer(source)) return new X509Certificate(source);
  return new X509Certificate(source.raw);
}

/** SHA-256 digests of the certificate and of its public key. */
export function fingerprintDigests(source: CertificateSource): { certificate: Buffer; publicKey: Buffer } {
  const cert = x509(source);
  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  return { certificate: createHash('sha256').update(cert.raw).digest(), publicKey: createHash('sha256').update(spki).digest() };
}

/** Both fingerprints of a certificate, in both spellings: what to pin. */
export function certificateFingerprints(source: CertificateSource): CertificateFingerprints {
  const digests = fingerprintDigests(source);
  return { certificate: formatFingerprint(digests.certificate), publicKey: formatFingerprint(digests.publicKey) };
}

const HEX = /^(?:[0-9a-f]{2}:){31}[0-9a-f]{2}$|^[0-9a-f]{64}$/i;
const BASE64 = /^[A-Za-z0-9+/]{43}=?$|^[A-Za-z0-9_-]{43}$/;

/**
 * A pin as a user writes it → the 32 digest bytes. Accepts hex (`AB:CD:…`
 * or 64 digits, any case) and base64 (standard with or without `=`, or
 * base64url), optionally prefixed `sha256/`, `sha256//` or `SHA256:` (HPKP,
 * curl, OpenSSH). Anything else is an InvalidOptionsError naming `option`.
 */
export function parseFingerprint(text: unknown, option = 'fingerprint'): Buffer {
  if (typeof text !== 'string') throw new InvalidOptionsError(option, `got ${typeof text}, expected a SHA-256 fingerprint ("AB:CD:…" hex or base64)`);
  const body = text.trim().replace(/^(?:sha256\/\/?|sha256:)/i, '');
  let digest: Buffer | undefined;
  if (HEX.test(body)) digest = Buffer.from(body.replace(/:/g, ''), 'hex');
  else if (BASE64.test(body)) digest = Buffer.from(body.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (digest?.length !== 32) {
    throw new InvalidOptionsError(option, `got ${JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text)}, expected a SHA-256 fingerprint: 32 bytes as "AB:CD:…" hex (64 digits) or base64 (44 characters)`);
  }
  return digest;
}

/**
 * A check with `tls.checkServerIdentity`'s signature that accepts exactly a
 * server whose certificate, or its public key, hashes (SHA-256) to one of
 * `pins`, and returns a `CertificatePinError` otherwise. Pins are parsed at
 * once (bad ones throw InvalidOptionsError naming `option`).
 *
 * Node calls `checkServerIdentity` only for a chain it verified, so:
 * - TLS mode "1" (self-signed): connect with `rejectUnauthorized: false` and
 *   call it yourself on 'secureConnect' (`checkPinnedPeer`) before reading
 *   a byte;
 * - TLS mode "2": pass it as `checkServerIdentity` (it runs
 *   `tls.checkServerIdentity` for the hostname first).
 */
export function createPinnedIdentityCheck(
  pins: string | readonly string[],
  option = 'fingerprint',
  verifyHostname?: (hostname: string, cert: PeerCertificate) => Error | undefined,
): (hostname: string, cert: PeerCertificate) => Error | undefined {
  const list = typeof pins === 'string' ? [pins] : [...pins];
  if (list.length === 0) throw new InvalidOptionsError(option, 'got an empty list, expected one or more SHA-256 fingerprints');
  const digests = list.map((pin, i) => parseFingerprint(pin, typeof pins === 'string' ? option : `${option}[${i}]`));
  return (hostname, cert) => {
    const hostError = verifyHostname?.(hostname, cert);
    if (hostError) return hostError;
    if (!cert || !Buffer.isBuffer(cert.raw) || cert.raw.length === 0) {
      return new CertificatePinError('the server sent no certificate to check against the pinned fingerprint');
    }
    let seen: { certificate: Buffer; publicKey: Buffer };
    try {
      seen = fingerprintDigests(cert);
    } catch (error) {
      return new CertificatePinError(`the server's certificate could not be read: ${(error as Error).message}`);
    }
    // Compare every pin with both digests; all are public, so no constant-time compare is needed.
    if (digests.some((pin) => pin.equals(seen.certificate) || pin.equals(seen.publicKey))) return undefined;
    const fingerprints = { certificate: formatFingerprint(seen.certificate), publicKey: formatFingerprint(seen.publicKey) };
    return new CertificatePinError(
      `the server's certificate (SHA-256 ${fingerprints.certificate.hex}, public key ${fingerprints.publicKey.base64}) matches no pinned fingerprint (${option}): it is not the server you pinned, or its certificate changed`,
      fingerprints,
    );
  };
}

/** Runs a pinned check on a connected TLS socket (TLS mode "1": call it on 'secureConnect', destroy the socket on an error). */
export function checkPinnedPeer(socket: TLSSocket, check: (hostname: string, cert: PeerCertificate) => Error | undefined, hostname = ''): Error | undefined {
  return check(hostname, socket.getPeerCertificate(true));
}
