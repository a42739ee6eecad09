import { describe, expect, it } from '@jest/globals';
import { X509Certificate, createHash } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import {
  CertificatePinError, certificateFingerprints, checkPinnedPeer, createCertificateAuthority, createPinnedIdentityCheck,
  createSelfSignedCertificate, parseFingerprint, type GeneratedCertificate,
} from '../../lib/certs/index.js';
import { HandshakeError } from '../../lib/core/errors.js';
import { thrown } from './auth-support.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

async function tlsServer(certificate: { key: string; cert: string }): Promise<number> {
  const server = tls.createServer({ ...certificate, minVersion: 'TLSv1.3' }, (socket) => socket.end('hello'));
  server.on('tlsClientError', () => undefined);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  scope.defer(() => {
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** TLS mode "1" with a pin: no chain verification, the pin checked on 'secureConnect' before a byte is read. */
function dialPinned(port: number, pins: string | string[]): Promise<string> {
  const check = createPinnedIdentityCheck(pins);
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    scope.defer(() => {
      socket.destroy();
    });
    socket.on('error', reject);
    socket.on('secureConnect', () => {
      const error = checkPinnedPeer(socket, check);
      if (error) {
        socket.destroy();
        reject(error);
        return;
      }
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text));
    });
  });
}

let pinned: GeneratedCertificate;
let other: GeneratedCertificate;

describe('certificate fingerprints', () => {
  it('a generated certificate carries its SHA-256 fingerprints, equal to what Node and a SPKI hash compute', () => {
    pinned = createSelfSignedCertificate();
    const x509 = new X509Certificate(pinned.cert);
    expect(pinned.fingerprint.certificate.hex).toBe(x509.fingerprint256);
    expect(pinned.fingerprint.certificate.base64).toBe(createHash('sha256').update(x509.raw).digest('base64'));
    const spki = x509.publicKey.export({ type: 'spki', format: 'der' });
    expect(pinned.fingerprint.publicKey.base64).toBe(createHash('sha256').update(spki).digest('base64'));
    expect(certificateFingerprints(pinned.cert)).toEqual(pinned.fingerprint);
    expect(certificateFingerprints(x509.raw)).toEqual(pinned.fingerprint);
    expect(createCertificateAuthority().fingerprint.certificate.hex).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  it('a pin is read from hex (colons or not, any case), base64, base64url, with sha256/ or SHA256: prefixes', () => {
    const digest = Buffer.from(Array.from({ length: 32 }, (_, i) => i * 7 + 250));
    const hex = digest.toString('hex');
    const spellings = [
      hex, hex.toUpperCase(), hex.match(/../g)!.join(':'), hex.toUpperCase().match(/../g)!.join(':'),
      digest.toString('base64'), digest.toString('base64').replace(/=$/, ''), digest.toString('base64url'),
      `sha256/${digest.toString('base64')}`, `sha256//${digest.toString('base64')}`, `SHA256:${digest.toString('base64').replace(/=$/, '')}`, `  ${hex}\n`,
    ];
    for (const spelling of spellings) expect(parseFingerprint(spelling)).toEqual(digest);
  });

  it.each([
    ['too short', 'AB:CD'], ['SHA-1 length', 'A'.repeat(40)], ['not hex', 'Z'.repeat(64)], ['mixed separators', `${'AB:'.repeat(31)}AB`.replace(':', '-')],
    ['empty', ''], ['base64 of 33 bytes', Buffer.alloc(33).toString('base64')], ['a number', 42],
  ])('a bad pin (%s) is an InvalidOptionsError naming the option', (_name, pin) => {
    expect(thrown(() => parseFingerprint(pin, 'tls.fingerprint'))).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'tls.fingerprint' });
  });

  it('an empty pin list is refused; a bad pin in a list is named by its index', () => {
    expect(thrown(() => createPinnedIdentityCheck([], 'fingerprint'))).toMatchObject({ option: 'fingerprint' });
    expect(thrown(() => createPinnedIdentityCheck([createSelfSignedCertificate().fingerprint.certificate.hex, 'nope']))).toMatchObject({ option: 'fingerprint[1]' });
  });
});

describe('pinning a self-signed server in TLS mode "1" (real TLS on loopback)', () => {
  it('accepts the pinned certificate, by its certificate or its public key fingerprint, in any spelling', async () => {
    pinned ??= createSelfSignedCertificate();
    const port = await tlsServer(pinned);
    await expect(dialPinned(port, pinned.fingerprint.certificate.hex)).resolves.toBe('hello');
    await expect(dialPinned(port, `sha256/${pinned.fingerprint.publicKey.base64}`)).resolves.toBe('hello');
    await expect(dialPinned(port, [createSelfSignedCertificate().fingerprint.certificate.hex, pinned.fingerprint.publicKey.hex])).resolves.toBe('hello');
  });

  it('refuses another self-signed server (same name, same kind of key) with a CertificatePinError showing what it saw', async () => {
    pinned ??= createSelfSignedCertificate();
    other = createSelfSignedCertificate();
    const port = await tlsServer(other);
    const error = await dialPinned(port, [pinned.fingerprint.certificate.hex, pinned.fingerprint.publicKey.base64]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(CertificatePinError);
    expect(error).toBeInstanceOf(HandshakeError); // its own code (POOL_ERR_CERT_PIN), still a handshake failure
    expect(error).toMatchObject({ code: 'POOL_ERR_CERT_PIN', fingerprints: other.fingerprint });
    expect((error as Error).message).toContain(other.fingerprint.certificate.hex);
  });

  it('in mode "2" the same check runs as checkServerIdentity, after the hostname check', async () => {
    const ca = createCertificateAuthority();
    const leaf = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const port = await tlsServer(leaf);
    const dial = (pins: string[]): Promise<void> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({
          host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert, minVersion: 'TLSv1.3',
          checkServerIdentity: createPinnedIdentityCheck(pins, 'fingerprint', tls.checkServerIdentity),
        });
        scope.defer(() => {
          socket.destroy();
        });
        socket.on('secureConnect', () => resolve());
        socket.on('error', reject);
      });
    await expect(dial([leaf.fingerprint.publicKey.hex])).resolves.toBeUndefined();
    const sibling = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    await expect(dial([sibling.fingerprint.certificate.hex])).rejects.toBeInstanceOf(CertificatePinError);
  });

  it('a peer certificate that is missing or unreadable is refused, never thrown', () => {
    const check = createPinnedIdentityCheck(createSelfSignedCertificate().fingerprint.certificate.hex);
    expect(check('x', {} as tls.PeerCertificate)).toBeInstanceOf(CertificatePinError);
    expect(check('x', { raw: Buffer.from('not a certificate') } as tls.PeerCertificate)).toBeInstanceOf(CertificatePinError);
  });
});
