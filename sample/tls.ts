import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { createSelfSignedCertificate } from '../lib/index.js';
import { hasClientSide, hasServerSide, SampleConfigError, type SampleConfig, type TunnelTls } from './config.js';
import type { Endpoint } from './endpoints.js';

/**
 * The TLS material of one process. The control connection uses the same
 * mode and certificate as the pool, so IDs never cross the wire in clear
 * text when the pooled streams do not.
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

/** The control listener: TLS 1.3 with the pool's certificate, or plain TCP in mode "0". */
export function createControlServer(material: TunnelTlsMaterial, onConnection: (socket: net.Socket) => void): net.Server {
  if (!material.server) return net.createServer({ noDelay: true }, onConnection);
  const server = tls.createServer({ ...material.server, minVersion: 'TLSv1.3' }, onConnection);
  // A peer that fails the handshake only costs its own connection.
  server.on('tlsClientError', (_error, socket) => socket.destroy());
  return server;
}

/** Dials the control listener; the socket is ready on `readyEvent`. */
export function connectControl(material: TunnelTlsMaterial, to: Endpoint): { socket: net.Socket; readyEvent: 'connect' | 'secureConnect' } {
  if (material.mode === '0') {
    return { socket: net.connect({ host: to.host, port: to.port, noDelay: true }), readyEvent: 'connect' };
  }
  const options: tls.ConnectionOptions = {
    host: to.host,
    port: to.port,
    minVersion: 'TLSv1.3',
    // Mode "1" is the pool's "TLS without verification"; mode "2" verifies.
    rejectUnauthorized: material.mode === '2',
  };
  if (net.isIP(material.hostname) === 0) options.servername = material.hostname;
  if (material.mode === '2') {
    if (material.ca) options.ca = material.ca;
    const hostname = material.hostname;
    options.checkServerIdentity = (_host, cert) => tls.checkServerIdentity(hostname, cert);
  }
  return { socket: tls.connect(options), readyEvent: 'secureConnect' };
}
