import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSelfSignedCertificate } from '../lib/index.js';
import { hasClientSide, hasServerSide, SampleConfigError, type SampleConfig, type TunnelTls } from './config.js';

/**
 * The TLS material of one process: the pools' certificate (server side) and
 * what the client side trusts. The tunnel's control channel rides on a
 * pooled stream, so it is as protected as every other stream.
 */
export interface TunnelTlsMaterial {
  mode: TunnelTls;
  /** Server side: the certificate the pool listener and the control server present. */
  server?: { key: string; cert: string };
  /** Client side, mode "2": the certificate(s) to trust, and the name to verify. */
  ca?: string;
  hostname: string;
}

/** Reads a PEM file and checks it holds what `variable` is for, so a wrong file is named by its variable. */
function readPem(variable: string, path: string, holds: 'certificate' | 'key'): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new SampleConfigError([`${variable}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`]);
  }
  try {
    if (holds === 'certificate') new X509Certificate(pem);
    else createPrivateKey(pem);
  } catch {
    throw new SampleConfigError([`${variable}: ${JSON.stringify(path)} is not a PEM ${holds === 'certificate' ? 'certificate ("-----BEGIN CERTIFICATE-----")' : 'private key ("-----BEGIN PRIVATE KEY-----" or similar)'}`]);
  }
  return pem;
}

/** The server's certificate and key files, read and checked to belong together. */
function readServerPair(certPath: string, keyPath: string): { cert: string; key: string } {
  const cert = readPem('TLS_CERT_FILE', certPath, 'certificate');
  const key = readPem('TLS_KEY_FILE', keyPath, 'key');
  if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
    throw new SampleConfigError([`TLS_KEY_FILE: the key in ${JSON.stringify(keyPath)} does not belong to the certificate in TLS_CERT_FILE (${JSON.stringify(certPath)})`]);
  }
  return { cert, key };
}

/**
 * Reads the PEM files named in the config, or makes a certificate now (with
 * node:crypto, valid for localhost, 127.0.0.1, ::1 and the listen host).
 */
export function loadTlsMaterial(config: SampleConfig): TunnelTlsMaterial {
  const material: TunnelTlsMaterial = { mode: config.tls, hostname: config.tlsHostname };
  if (config.tls === '0') return material;
  if (hasServerSide(config.role)) {
    const { cert, key } = config.tlsFiles;
    material.server = cert && key
      ? readServerPair(cert, key)
      : createSelfSignedCertificate({
          commonName: config.tlsHostname,
          altNames: [...new Set(['localhost', '127.0.0.1', '::1', config.tlsHostname, config.host])],
        });
  }
  if (hasClientSide(config.role) && config.tls === '2') {
    // In `both` the client trusts the certificate this very process made.
    material.ca = config.tlsFiles.ca ? readPem('TLS_CA_FILE', config.tlsFiles.ca, 'certificate') : material.server?.cert;
  }
  return material;
}
