/**
 * Mutual TLS and server-certificate pinning on every TLS transport (tcp over
 * TLS, http2, wss), end to end on 127.0.0.1 with certificates made here:
 * - mutual TLS: the server requires a client certificate from its CA; each
 *   pooled stream on the server carries the identity of the client that
 *   presented it (two clients, two identities); a client without a
 *   certificate, or with one from another CA, is refused in the TLS
 *   handshake ('tls') and never becomes a pooled stream;
 * - pinning (client TLS mode "1"): the pinned certificate, or its public
 *   key, is accepted; another self-signed server is refused with
 *   CertificatePinError (POOL_ERR_CERT_PIN); a server on 'self-signed' logs
 *   the fingerprint to pin, and that pin works.
 */
import { beforeAll, describe, expect, it, jest } from '@jest/globals';
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { createCertificateAuthority, createSelfSignedCertificate, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { InvalidOptionsError } from '../../lib/core/errors.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { eventually, requestThenReply } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

jest.setTimeout(60_000);
const scope = useTestScope();

type TlsTransport = 'tcp' | 'http2' | 'ws';
const TRANSPORTS: TlsTransport[] = ['tcp', 'http2', 'ws'];

let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
let serverCert: GeneratedCertificate;
let clientA: GeneratedCertificate;
let clientB: GeneratedCertificate;
let stranger: GeneratedCertificate;
beforeAll(() => {
  ca = createCertificateAuthority({ commonName: 'pool CA' });
  otherCa = createCertificateAuthority({ commonName: 'another CA' });
  serverCert = ca.issue({ commonName: 'localhost' });
  clientA = ca.issue({ commonName: 'client-a' });
  clientB = ca.issue({ commonName: 'client-b' });
  stranger = otherCa.issue({ commonName: 'client-a' }); // same name, wrong CA
});

async function startServer(transport: TlsTransport, tls: unknown, extra: Record<string, unknown> = {}): Promise<ServerPool> {
  const server = createServerPool({ transport, host: '127.0.0.1', port: 0, maxCap: 16, tls, ...extra } as ServerPoolConfig);
  await server.start();
  scope.defer(() => server.close());
  return server;
}

function startClient(transport: TlsTransport, server: ServerPool, options: Record<string, unknown>): ClientPool {
  const client = createClientPool({
    transport,
    address: `127.0.0.1:${server.address()!.port}`,
    minCap: 2,
    maxCap: 2,
    minIvl: 50,
    maxIvl: 200,
    maxBackoff: 300,
    ...options,
  } as ClientPoolConfig);
  client.start();
  scope.defer(() => client.close());
  return client;
}

/** Verified against the CA, as a client of a mutual-TLS server usually is. */
const verified = { tls: '2', hostname: 'localhost' } as const;
const mtlsServer = () => ({ key: serverCert.key, cert: serverCert.cert, ca: ca.cert, requestCert: true });

describe.each(TRANSPORTS)('mutual TLS on %s', (transport) => {
  it('accepts two clients with certificates from the CA, each pooled stream carrying its client', async () => {
    const server = await startServer(transport, mtlsServer());
    const clients = {
      'client-a': startClient(transport, server, { ...verified, ca: ca.cert, cert: clientA.cert, key: clientA.key }),
      'client-b': startClient(transport, server, { ...verified, ca: ca.cert, cert: clientB.cert, key: clientB.key }),
    };
    await eventually(() => server.active >= 4, 20_000, 'both clients to fill the server');
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const [id, serverStream] = await server.incomingGet(5000);
      scope.track(serverStream);
      const identity = streamIdentity(serverStream);
      expect(identity).toMatchObject({ kind: 'certificate', commonName: expect.stringMatching(/^client-[ab]$/) });
      if (identity?.kind !== 'certificate') throw new Error('no certificate identity');
      expect(identity.subject).toContain(`CN=${identity.commonName}`);
      expect(identity.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
      // The identity is the truth: that client (and only it) holds the other end of this ID.
      const owner = clients[identity.commonName as keyof typeof clients];
      const clientStream = scope.track(await owner.outgoingGet(id, 5000));
      await requestThenReply(clientStream, serverStream, Buffer.from(`ping ${i}`), Buffer.from(`pong ${i}`));
      seen.add(identity.commonName!);
    }
    expect([...seen].sort()).toEqual(['client-a', 'client-b']);
    expect(server.stats.refusals['tls']).toBeUndefined();
  });

  it.each([
    ['without a certificate', () => ({})],
    ['with a certificate from another CA', () => ({ cert: stranger.cert, key: stranger.key })],
  ])('refuses a client %s in the TLS handshake (counted tls), never pooling it', async (_what, certificate) => {
    const server = await startServer(transport, mtlsServer());
    // Timeouts far above the wait below: the client must learn of the refusal from the server's alert, not its own timeout.
    const patient = { handshakeTimeout: 120_000, ...(transport === 'ws' ? {} : { dialTimeout: 120_000 }) };
    const client = startClient(transport, server, { ...verified, ca: ca.cert, ...certificate(), ...patient });
    await eventually(() => (server.stats.refusals['tls'] ?? 0) >= 2, 20_000, 'the server to refuse two handshakes');
    await eventually(() => Object.values(client.stats.failures).reduce((a, b) => a + b, 0) >= 2, 20_000, 'the client to see two refusals');
    expect(server.active).toBe(0);
    expect(server.stats.totals.accepted).toBe(0);
    expect(client.active).toBe(0);
    await expect(server.incomingGet(50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
  });

  it('never puts a private key into an options error', () => {
    const attempt = () => createServerPool({ transport, port: 0, tls: { key: serverCert.key } } as ServerPoolConfig);
    expect(attempt).toThrow(InvalidOptionsError);
    expect(attempt).toThrow(/an object with key/);
    try {
      attempt();
    } catch (error) {
      expect((error as Error).message).not.toContain('PRIVATE KEY');
    }
  });

  it('needs ca with requestCert, and both cert and key on the client', async () => {
    expect(() => createServerPool({ transport, port: 0, tls: { key: serverCert.key, cert: serverCert.cert, requestCert: true } } as ServerPoolConfig)).toThrow(InvalidOptionsError);
    expect(() => createClientPool({ transport, address: '127.0.0.1:1', tls: '1', cert: clientA.cert } as ClientPoolConfig)).toThrow(/key/);
  });
});

describe('mutual TLS on a ws pool attached to your own https.Server', () => {
  it('reads the identity of a certificate your server verified (requestCert on the https.Server)', async () => {
    const httpsServer = https.createServer({ key: serverCert.key, cert: serverCert.cert, ca: ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    httpsServer.on('tlsClientError', () => undefined);
    httpsServer.listen(0, '127.0.0.1');
    await once(httpsServer, 'listening');
    scope.defer(() => new Promise<void>((resolve) => {
      httpsServer.closeAllConnections();
      httpsServer.close(() => resolve());
    }));
    const server = createServerPool({ transport: 'ws', server: httpsServer, maxCap: 4 } as ServerPoolConfig);
    await server.start();
    scope.defer(() => server.close());
    const client = startClient('ws', server, { ...verified, ca: ca.cert, cert: clientB.cert, key: clientB.key });
    const [id, serverStream] = await server.incomingGet(20_000);
    scope.track(serverStream);
    expect(streamIdentity(serverStream)).toMatchObject({ kind: 'certificate', commonName: 'client-b' });
    const clientStream = scope.track(await client.outgoingGet(id, 5000));
    await requestThenReply(clientStream, serverStream, Buffer.from('ping'), Buffer.from('pong'));
  });
});

describe.each(TRANSPORTS)('pinning the server certificate in TLS mode "1" on %s', (transport) => {
  let pinned: GeneratedCertificate;
  let impostor: GeneratedCertificate;
  beforeAll(() => {
    pinned = createSelfSignedCertificate({ commonName: 'pinned' });
    impostor = createSelfSignedCertificate({ commonName: 'pinned' });
  });

  it.each([
    ['its certificate (hex)', () => pinned.fingerprint.certificate.hex],
    ['its public key (base64, sha256// prefix)', () => `sha256//${pinned.fingerprint.publicKey.base64}`],
    ['one of several pins', () => [impostor.fingerprint.certificate.hex, pinned.fingerprint.publicKey.hex]],
  ])('accepts the pinned server by %s', async (_what, pin) => {
    const server = await startServer(transport, { key: pinned.key, cert: pinned.cert });
    const client = startClient(transport, server, { tls: '1', pin: pin() });
    const [id, serverStream] = await server.incomingGet(20_000);
    scope.track(serverStream);
    const clientStream = scope.track(await client.outgoingGet(id, 5000));
    await requestThenReply(clientStream, serverStream, Buffer.from('ping'), Buffer.from('pong'));
    expect(client.stats.failures['POOL_ERR_CERT_PIN']).toBeUndefined();
  });

  it('refuses another self-signed server with CertificatePinError, before taking an ID', async () => {
    const server = await startServer(transport, { key: impostor.key, cert: impostor.cert });
    const client = startClient(transport, server, { tls: '1', pin: pinned.fingerprint.certificate.hex });
    await eventually(() => (client.stats.failures['POOL_ERR_CERT_PIN'] ?? 0) >= 2, 20_000, 'two pinned dials to fail');
    expect(client.active).toBe(0);
    expect(Object.keys(client.stats.failures)).toEqual(['POOL_ERR_CERT_PIN']);
  });

  it('sends the impostor not one byte of its own (no ID request, no HTTP/2 preface, no upgrade request)', async () => {
    let received = 0;
    let handshakes = 0;
    const impostorServer = tls.createServer({ key: impostor.key, cert: impostor.cert, minVersion: 'TLSv1.3', ...(transport === 'http2' ? { ALPNProtocols: ['h2'] } : {}) }, (socket) => {
      handshakes++;
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
    });
    impostorServer.on('tlsClientError', () => undefined);
    impostorServer.listen(0, '127.0.0.1');
    await once(impostorServer, 'listening');
    scope.defer(() => new Promise<void>((resolve) => impostorServer.close(() => resolve())));
    const client = createClientPool({
      transport, address: `127.0.0.1:${(impostorServer.address() as AddressInfo).port}`, tls: '1', pin: pinned.fingerprint.publicKey.base64,
      minCap: 2, maxCap: 2, minIvl: 50, maxIvl: 200, maxBackoff: 300,
    } as ClientPoolConfig);
    client.start();
    scope.defer(() => client.close());
    await eventually(() => (client.stats.failures['POOL_ERR_CERT_PIN'] ?? 0) >= 3, 20_000, 'three pinned dials to fail');
    await client.close();
    expect(received).toBe(0);
  });

  it('checks a pin on top of verification in mode "2"', async () => {
    const authority = createCertificateAuthority();
    const verifiedServer = authority.issue({ commonName: 'localhost' });
    const server = await startServer(transport, { key: verifiedServer.key, cert: verifiedServer.cert });
    const client = startClient(transport, server, { tls: '2', hostname: 'localhost', ca: authority.cert, pin: pinned.fingerprint.certificate.hex });
    await eventually(() => (client.stats.failures['POOL_ERR_CERT_PIN'] ?? 0) >= 2, 20_000, 'two pinned dials to fail');
    expect(client.active).toBe(0);
  });

  it('logs, once at start, the fingerprint of a self-signed server for the client to pin', async () => {
    const lines: string[] = [];
    const logger = { log: (m: string) => lines.push(m), warn: () => undefined, error: () => undefined };
    const server = await startServer(transport, 'self-signed', { logger });
    const announced = lines.filter((line) => /pin: "/.test(line));
    expect(announced).toHaveLength(1);
    const pin = /pin: "([0-9A-F:]+)"/.exec(announced[0]!)![1]!;
    const client = startClient(transport, server, { tls: '1', pin });
    const [id, serverStream] = await server.incomingGet(20_000);
    scope.track(serverStream);
    scope.track(await client.outgoingGet(id, 5000));
  });

  it('rejects a pin that is no SHA-256 fingerprint, and a pin without TLS', () => {
    expect(() => createClientPool({ transport, address: '127.0.0.1:1', tls: '1', pin: 'AB:CD' } as ClientPoolConfig)).toThrow(InvalidOptionsError);
    if (transport === 'ws') {
      const agent = new https.Agent();
      expect(() => createClientPool({ transport, address: '127.0.0.1:1', tls: '1', agent, pin: pinned.fingerprint.certificate.hex } as ClientPoolConfig)).toThrow(/agent/);
      agent.destroy();
    }
    if (transport !== 'http2') {
      expect(() => createClientPool({ transport, address: '127.0.0.1:1', pin: pinned.fingerprint.certificate.hex } as ClientPoolConfig)).toThrow(/needs TLS/);
    }
  });
});
