// X.509 v3 certificate generation (RFC 5280) with ECDSA P-256 keys, using only node:crypto.
import { createHash, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import {
  bitString, boolean, explicit, implicit, integer, octetString, oid, sequence, set, time, utf8String,
} from './der.js';
import { certificateFingerprints, type CertificateFingerprints } from './fingerprint.js';

export interface CertificateOptions {
  commonName?: string;
  altNames?: string[];
  validDays?: number;
}

export interface GeneratedCertificate {
  key: string;
  cert: string;
  /** SHA-256 of the certificate and of its public key: what a client in TLS mode "1" pins (print it for the other side). */
  fingerprint: CertificateFingerprints;
}

export interface CertificateAuthority extends GeneratedCertificate {
  issue(options?: CertificateOptions): GeneratedCertificate;
}

const ECDSA_WITH_SHA256 = sequence(oid('1.2.840.10045.4.3.2')); // parameters absent (RFC 5758)
const CLOCK_SKEW_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

interface Signer {
  name: Buffer; // DER Name, reused byte-for-byte as the issuer
  key: KeyObject;
  keyId: Buffer;
}

function validateCommonName(value: unknown, fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`commonName must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  return value;
}

function validateDays(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new TypeError(`validDays must be a positive integer, got ${String(value)}`);
  }
  return value;
}

function validateAltNames(value: unknown): string[] {
  if (value === undefined) return ['localhost', '127.0.0.1', '::1'];
  if (!Array.isArray(value) || value.length === 0) {
    throw new TypeError(`altNames must be a non-empty array of strings, got ${JSON.stringify(value)}`);
  }
  return value.map((entry: unknown) => {
    // dNSName is an IA5String, so only ASCII is accepted.
    if (typeof entry !== 'string' || entry.length === 0 || !/^[\x21-\x7e]+$/.test(entry)) {
      throw new TypeError(`altNames entries must be non-empty ASCII strings, got ${JSON.stringify(entry)}`);
    }
    return entry;
  });
}

const nameDer = (commonName: string): Buffer =>
  sequence(set(sequence(oid('2.5.4.3'), utf8String(commonName))));

/** 4 or 16 network-order bytes for an address that net.isIP accepts. */
function ipBytes(ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number));
  let text = ip.replace(/%.*$/, ''); // drop a zone id
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [, a, b, c, d] = dotted.map(Number) as [number, number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(parseInt(group, 16), i * 2));
  return out;
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? sequence(oid(id), boolean(true), octetString(value)) : sequence(oid(id), octetString(value));
}

function toPem(label: string, der: Buffer): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

interface Built extends GeneratedCertificate {
  signer: Signer;
}

function build(commonName: string, validDays: number, isCa: boolean, altNames: string[], issuer?: Signer): Built {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // SKI = SHA-1 of the subjectPublicKey BIT STRING value: the uncompressed point 04 || x || y.
  const jwk = publicKey.export({ format: 'jwk' });
  const point = Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x ?? '', 'base64url'), Buffer.from(jwk.y ?? '', 'base64url')]);
  const keyId = createHash('sha1').update(point).digest();
  const name = nameDer(commonName);
  const self: Signer = { name, key: privateKey, keyId };
  const signer = issuer ?? self;

  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01; // positive and never zero

  const extensions = isCa
    ? [
        extension('2.5.29.19', true, sequence(boolean(true))),
        extension('2.5.29.15', true, bitString(Buffer.from([0x06]), 1)), // keyCertSign(5) + cRLSign(6)
        extension('2.5.29.14', false, octetString(keyId)),
      ]
    : [
        extension('2.5.29.19', true, sequence()), // cA DEFAULT FALSE is omitted
        extension('2.5.29.15', true, bitString(Buffer.from([0x80]), 7)), // digitalSignature(0)
        extension('2.5.29.37', false, sequence(oid('1.3.6.1.5.5.7.3.1'), oid('1.3.6.1.5.5.7.3.2'))),
        // GeneralName: dNSName [2] IA5String, iPAddress [7] OCTET STRING
        extension('2.5.29.17', false, sequence(...altNames.map((n) =>
          isIP(n) ? implicit(7, ipBytes(n)) : implicit(2, Buffer.from(n, 'ascii'))))),
        extension('2.5.29.14', false, octetString(keyId)),
        ...(issuer ? [extension('2.5.29.35', false, sequence(implicit(0, issuer.keyId)))] : []),
      ];

  const now = Date.now();
  const tbs = sequence(
    explicit(0, integer(2)), // v3
    integer(serial),
    ECDSA_WITH_SHA256,
    signer.name,
    sequence(time(new Date(now - CLOCK_SKEW_MS)), time(new Date(now + validDays * DAY_MS))),
    name,
    spki,
    explicit(3, sequence(...extensions)),
  );
  const signature = sign('sha256', tbs, { key: signer.key, dsaEncoding: 'der' });
  const cert = sequence(tbs, ECDSA_WITH_SHA256, bitString(signature));
  return {
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    cert: toPem('CERTIFICATE', cert),
    fingerprint: certificateFingerprints(cert),
    signer: self,
  };
}

function leaf(options: CertificateOptions | undefined, issuer?: Signer): GeneratedCertificate {
  const commonName = validateCommonName(options?.commonName, 'localhost');
  const altNames = validateAltNames(options?.altNames);
  const validDays = validateDays(options?.validDays, 365);
  const { key, cert, fingerprint } = build(commonName, validDays, false, altNames, issuer);
  return { key, cert, fingerprint };
}

/** Self-signed end-entity certificate for TLS servers and clients. */
export function createSelfSignedCertificate(options?: CertificateOptions): GeneratedCertificate {
  return leaf(options);
}

/** Root CA (default validity 10 years) whose `issue()` signs leaf certificates. */
export function createCertificateAuthority(options?: { commonName?: string; validDays?: number }): CertificateAuthority {
  const commonName = validateCommonName(options?.commonName, 'nestjs-tunnel-pool CA');
  const validDays = validateDays(options?.validDays, 3650);
  const { key, cert, fingerprint, signer } = build(commonName, validDays, true, []);
  return { key, cert, fingerprint, issue: (leafOptions?: CertificateOptions) => leaf(leafOptions, signer) };
}
