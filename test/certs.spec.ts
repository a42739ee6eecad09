import { afterEach, describe, expect, it } from '@jest/globals';
import { X509Certificate, createHash, createPrivateKey, type KeyObject } from 'node:crypto';
import type { AddressInfo, Socket } from 'node:net';
import * as tls from 'node:tls';
import { types } from 'node:util';
import { encodeLength, integer, oid, sequence, time } from '../lib/certs/der.js';
import {
  createCertificateAuthority,
  createSelfSignedCertificate,
  type CertificateOptions,
} from '../lib/certs/index.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/** SHA-1 of the uncompressed EC point, i.e. the expected subjectKeyIdentifier. */
function keyId(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
  return createHash('sha1').update(point).digest();
}

// ---- TLS plumbing: every server and socket is tracked and torn down after each test ----
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function startEchoServer(key: string, cert: string): Promise<number> {
  const server = tls.createServer({ key, cert, minVersion: 'TLSv1.3' }, (socket) => socket.pipe(socket));
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined); // rejected handshakes are expected in some tests
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function connect(options: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', minVersion: 'TLSv1.3', ...options });
    cleanups.push(async () => {
      socket.destroy();
    });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

function echo(socket: tls.TLSSocket, byte: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    socket.once('data', resolve);
    socket.once('error', reject);
    socket.write(Buffer.from([byte]));
  });
}

async function expectRejectCode(promise: Promise<unknown>, code?: string): Promise<string> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e as NodeJS.ErrnoException,
  );
  expect(types.isNativeError(error)).toBe(true); // jest's realm differs from Node's, so no instanceof
  expect(typeof error?.code).toBe('string');
  if (code !== undefined) expect(error?.code).toBe(code);
  return error?.code ?? '';
}

describe('certificate contents (X509Certificate)', () => {
  it('self-signed leaf: CN, SANs, not a CA, matching key, validity window', () => {
    const before = Date.now();
    const { key, cert } = createSelfSignedCertificate();
    const x509 = new X509Certificate(cert);

    expect(key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(cert).toMatch(/^-----BEGIN CERTIFICATE-----\n/);
    expect(x509.subject).toBe('CN=localhost');
    expect(x509.issuer).toBe('CN=localhost');
    expect(x509.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(x509.ca).toBe(false);
    expect(x509.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    expect(x509.checkPrivateKey(createPrivateKey(key))).toBe(true);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.raw.includes(Buffer.concat([Buffer.from([0x04, 0x14]), keyId(x509.publicKey)]))).toBe(true);

    // notBefore = now - 5 min, notAfter = now + 365 days (second precision)
    const from = Date.parse(x509.validFrom);
    const to = Date.parse(x509.validTo);
    expect(from).toBeGreaterThanOrEqual(before - 5 * 60_000 - 1000);
    expect(from).toBeLessThanOrEqual(Date.now() - 5 * 60_000);
    expect(to - from).toBeGreaterThanOrEqual(365 * DAY_MS + 5 * 60_000 - 1000);
    expect(to - from).toBeLessThanOrEqual(365 * DAY_MS + 5 * 60_000 + 1000);
  });

  it('custom CN, DNS and IPv4/IPv6 altNames, GeneralizedTime after 2049', () => {
    const { cert } = createSelfSignedCertificate({
      commonName: 'tunnel.internal',
      altNames: ['tunnel.internal', '*.pool.example', '10.1.2.3', '2001:db8::42', '::ffff:192.0.2.1', 'fe80::1%eth0'],
      validDays: 40_000,
    });
    const x509 = new X509Certificate(cert);
    expect(x509.subject).toBe('CN=tunnel.internal');
    expect(x509.subjectAltName).toBe(
      'DNS:tunnel.internal, DNS:*.pool.example, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:42, ' +
        'IP Address:0:0:0:0:0:FFFF:C000:201, IP Address:FE80:0:0:0:0:0:0:1',
    );
    expect(new Date(x509.validTo).getUTCFullYear()).toBeGreaterThan(2100);
  });

  it('CA and issued leaf: flags, issuer chaining, signatures, key identifiers', () => {
    const authority = createCertificateAuthority({ commonName: 'Test Root' });
    const caX509 = new X509Certificate(authority.cert);
    expect(caX509.subject).toBe('CN=Test Root');
    expect(caX509.ca).toBe(true);
    expect(caX509.subjectAltName).toBeUndefined();
    expect(caX509.checkIssued(caX509)).toBe(true);
    expect(caX509.verify(caX509.publicKey)).toBe(true);
    expect(caX509.checkPrivateKey(createPrivateKey(authority.key))).toBe(true);

    const issued = authority.issue({ commonName: 'svc', altNames: ['localhost', '127.0.0.1'], validDays: 7 });
    const leaf = new X509Certificate(issued.cert);
    expect(leaf.subject).toBe('CN=svc');
    expect(leaf.issuer).toBe('CN=Test Root');
    expect(leaf.ca).toBe(false);
    expect(leaf.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(leaf.checkIssued(caX509)).toBe(true);
    expect(leaf.verify(caX509.publicKey)).toBe(true);
    expect(leaf.verify(leaf.publicKey)).toBe(false);
    expect(leaf.checkPrivateKey(createPrivateKey(issued.key))).toBe(true);
    expect(leaf.checkPrivateKey(createPrivateKey(authority.key))).toBe(false);

    // authorityKeyIdentifier: SEQUENCE { [0] <CA's SKI> }
    const caKeyId = keyId(caX509.publicKey);
    expect(caX509.raw.includes(Buffer.concat([Buffer.from([0x04, 0x14]), caKeyId]))).toBe(true);
    expect(leaf.raw.includes(Buffer.concat([Buffer.from([0x30, 0x16, 0x80, 0x14]), caKeyId]))).toBe(true);

    const other = new X509Certificate(createCertificateAuthority().cert);
    expect(leaf.checkIssued(other)).toBe(false);
    expect(leaf.verify(other.publicKey)).toBe(false);
  });

  it('hostname checks against the SANs', () => {
    const legacy = new X509Certificate(createCertificateAuthority().issue().cert).toLegacyObject();
    expect(tls.checkServerIdentity('localhost', legacy)).toBeUndefined();
    expect(tls.checkServerIdentity('127.0.0.1', legacy)).toBeUndefined();
    expect(tls.checkServerIdentity('::1', legacy)).toBeUndefined();
    expect(tls.checkServerIdentity('wrong.example', legacy)).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    expect(tls.checkServerIdentity('10.0.0.1', legacy)).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('serial numbers are positive, 16 bytes and differ', () => {
    const a = new X509Certificate(createSelfSignedCertificate().cert).serialNumber;
    const b = new X509Certificate(createSelfSignedCertificate().cert).serialNumber;
    expect(a).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(b).toMatch(/^[0-7][0-9A-F]{31}$/);
    expect(a).not.toBe(b);
  });
});

describe('TLS 1.3', () => {
  it('self-signed leaf serves TLS 1.3 to a non-verifying client and echoes a byte', async () => {
    const { key, cert } = createSelfSignedCertificate();
    const port = await startEchoServer(key, cert);
    const socket = await connect({ port, rejectUnauthorized: false });
    expect(socket.getProtocol()).toBe('TLSv1.3');
    expect(socket.authorized).toBe(false);
    expect(await echo(socket, 0x2a)).toEqual(Buffer.from([0x2a]));
  });

  it('self-signed leaf verifies as its own trust anchor', async () => {
    const { key, cert } = createSelfSignedCertificate();
    const port = await startEchoServer(key, cert);
    const socket = await connect({ port, ca: cert, servername: 'localhost', rejectUnauthorized: true });
    expect(socket.authorized).toBe(true);
    expect(await echo(socket, 7)).toEqual(Buffer.from([7]));
  });

  it('issued leaf verifies against its CA by hostname and by IP', async () => {
    const authority = createCertificateAuthority();
    const { key, cert } = authority.issue();
    const port = await startEchoServer(key, cert);

    const byName = await connect({ port, ca: authority.cert, servername: 'localhost', rejectUnauthorized: true });
    expect(byName.authorized).toBe(true);
    expect(byName.getProtocol()).toBe('TLSv1.3');
    expect(await echo(byName, 1)).toEqual(Buffer.from([1]));

    // No servername: Node checks the identity against host '127.0.0.1' (iPAddress SAN).
    const byIp = await connect({ port, ca: authority.cert, rejectUnauthorized: true });
    expect(byIp.authorized).toBe(true);
    expect(await echo(byIp, 2)).toEqual(Buffer.from([2]));
  });

  it('issued leaf is rejected by a different CA and for a name outside altNames', async () => {
    const authority = createCertificateAuthority();
    const { key, cert } = authority.issue();
    const port = await startEchoServer(key, cert);

    const otherCa = createCertificateAuthority().cert;
    const code = await expectRejectCode(connect({ port, ca: otherCa, servername: 'localhost', rejectUnauthorized: true }));
    expect(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']).toContain(code);

    await expectRejectCode(
      connect({ port, ca: authority.cert, servername: 'wrong.example', rejectUnauthorized: true }),
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
    await expectRejectCode(
      connect({
        port,
        ca: authority.cert,
        servername: 'localhost',
        rejectUnauthorized: true,
        checkServerIdentity: (_host, peer) => tls.checkServerIdentity('wrong.example', peer),
      }),
      'ERR_TLS_CERT_ALTNAME_INVALID',
    );
  });
});

describe('input validation', () => {
  const bad: Array<[string, CertificateOptions, RegExp]> = [
    ['validDays 0', { validDays: 0 }, /validDays.*\b0\b/],
    ['validDays negative', { validDays: -3 }, /validDays.*-3/],
    ['validDays fractional', { validDays: 1.5 }, /validDays.*1\.5/],
    ['validDays NaN', { validDays: Number.NaN }, /validDays.*NaN/],
    ['validDays string', { validDays: '30' as unknown as number }, /validDays.*30/],
    ['empty commonName', { commonName: '' }, /commonName.*""/],
    ['non-string commonName', { commonName: 42 as unknown as string }, /commonName.*42/],
    ['empty altNames entry', { altNames: ['localhost', ''] }, /altNames.*""/],
    ['non-string altNames entry', { altNames: [null as unknown as string] }, /altNames.*null/],
    ['non-ASCII altNames entry', { altNames: ['bücher.example'] }, /altNames.*bücher/],
    ['empty altNames', { altNames: [] }, /altNames.*\[\]/],
  ];

  it.each(bad)('createSelfSignedCertificate rejects %s', (_label, options, message) => {
    expect(() => createSelfSignedCertificate(options)).toThrow(TypeError);
    expect(() => createSelfSignedCertificate(options)).toThrow(message);
  });

  it.each(bad)('authority.issue rejects %s', (_label, options, message) => {
    const authority = createCertificateAuthority();
    expect(() => authority.issue(options)).toThrow(message);
  });

  it.each([
    ['validDays 0', { validDays: 0 }, /validDays/],
    ['empty commonName', { commonName: '' }, /commonName/],
  ])('createCertificateAuthority rejects %s', (_label, options, message) => {
    expect(() => createCertificateAuthority(options)).toThrow(TypeError);
    expect(() => createCertificateAuthority(options)).toThrow(message);
  });
});

describe('der', () => {
  it.each([
    [0, '00'],
    [127, '7f'],
    [128, '8180'],
    [255, '81ff'],
    [256, '820100'],
    [65_535, '82ffff'],
    [65_536, '83010000'],
  ])('encodeLength(%i) = %s', (length, hex) => {
    expect(encodeLength(length).toString('hex')).toBe(hex);
  });

  it('wraps long contents with long-form lengths', () => {
    expect(sequence(Buffer.alloc(200)).subarray(0, 3).toString('hex')).toBe('3081c8');
    const big = sequence(Buffer.alloc(300, 1));
    expect(big.subarray(0, 4).toString('hex')).toBe('3082012c');
    expect(big.length).toBe(304);
  });

  it('encodes INTEGER, OID and times', () => {
    expect(integer(2).toString('hex')).toBe('020102');
    expect(integer(Buffer.from([0x80])).toString('hex')).toBe('02020080');
    expect(integer(Buffer.from([0x00, 0x00, 0x7f])).toString('hex')).toBe('02017f');
    expect(integer(Buffer.from([0x00, 0x00])).toString('hex')).toBe('020100');
    expect(oid('1.2.840.10045.4.3.2').toString('hex')).toBe('06082a8648ce3d040302');
    expect(oid('2.5.29.19').toString('hex')).toBe('0603551d13');
    expect(time(new Date('2049-12-31T23:59:59Z')).toString('ascii')).toBe('\x17\x0d491231235959Z');
    expect(time(new Date('2050-01-01T00:00:00Z')).toString('ascii')).toBe('\x18\x0f20500101000000Z');
  });
});
