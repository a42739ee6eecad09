import { beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import tls from 'node:tls';
import { createCertificateAuthority, createSelfSignedCertificate, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { connect, eventually, listenRaw, readBytes, sleep } from '../support/net.js';
import { startPair, type PoolPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startPair>) => scope.pair(startPair, ...args);
const { track } = scope;

let selfSigned: GeneratedCertificate;
let authority: CertificateAuthority;
let leaf: GeneratedCertificate;
beforeAll(() => {
  selfSigned = createSelfSignedCertificate();
  authority = createCertificateAuthority();
  leaf = authority.issue({ commonName: 'tunnel.test', altNames: ['tunnel.test', 'localhost', '127.0.0.1'] });
});

async function echoThrough(p: PoolPair): Promise<void> {
  const [id, server] = await p.server.incomingGet(5000);
  track(server);
  const client = track(await p.client.outgoingGet(id, 5000));
  expect(client).toBeInstanceOf(tls.TLSSocket);
  expect((client as tls.TLSSocket).getProtocol()).toBe('TLSv1.3');
  client.write('over tls');
  expect((await readBytes(server, 8)).toString()).toBe('over tls');
  server.write('and back');
  expect((await readBytes(client, 8)).toString()).toBe('and back');
}

describe('tcp transport over TLS 1.3', () => {
  it('mode "1": self-signed certificate, no verification', async () => {
    const p = await pair({ tls: { key: selfSigned.key, cert: selfSigned.cert } }, { tls: '1', minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    expect(p.client.stats.transport).toBe('tls');
    expect(p.server.stats.transport).toBe('tls');
    await echoThrough(p);
  });

  it('mode "1" against a server that made its own certificate ("self-signed")', async () => {
    const p = await pair({ tls: 'self-signed' }, { tls: 'insecure', minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    await echoThrough(p);
  });

  it('mode "2": verified against hostname with a CA made in the test', async () => {
    const p = await pair({ tls: { key: leaf.key, cert: leaf.cert } }, { tls: '2', hostname: 'tunnel.test', ca: authority.cert, minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    await echoThrough(p);
  });

  it('mode "2" verifies an IP hostname against the certificate IP SAN', async () => {
    const p = await pair({ tls: { key: leaf.key, cert: leaf.cert } }, { tls: 'verify', hostname: '127.0.0.1', ca: authority.cert });
    await p.client.waitForActive(1, 5000);
    await echoThrough(p);
  });

  it.each([
    ['the wrong hostname', { hostname: 'other.test', ca: () => authority.cert }, /ERR_TLS_CERT_ALTNAME_INVALID|does not match/],
    ['an untrusted CA', { hostname: 'tunnel.test', ca: () => createCertificateAuthority().cert }, /UNABLE_TO_VERIFY|unable to verify|issuer/i],
    ['no CA (self-signed server, system roots)', { hostname: 'localhost', ca: undefined, selfSigned: true }, /SELF_SIGNED|self.signed|unable to verify/i],
  ])('mode "2" with %s: handshake error, counted, pool stays empty', async (_what, setup, pattern) => {
    const cert = 'selfSigned' in setup ? selfSigned : leaf;
    const ca = setup.ca?.();
    const p = await pair(
      { tls: { key: cert.key, cert: cert.cert } },
      { tls: '2', hostname: setup.hostname, ...(ca ? { ca } : {}), minCap: 1, maxCap: 1 },
    );
    await eventually(() => (p.client.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 1, 5000, 'a handshake failure');
    expect(p.client.active).toBe(0);
    expect(p.client.errorCount).toBeGreaterThanOrEqual(1);
    await expect(p.client.outgoingGet('00000001', 100)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    // The error that was counted says why.
    const transport = p.client.transport;
    await expect(transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_HANDSHAKE',
      message: expect.stringMatching(pattern),
    });
  });

  it('the server refuses TLS 1.2 clients', async () => {
    const server = createServerPool({ port: 0, tls: { key: selfSigned.key, cert: selfSigned.cert } });
    await server.start();
    scope.defer(() => server.close());
    const socket = tls.connect({ port: server.address()!.port, host: '127.0.0.1', rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    const error = await new Promise<{ code?: string }>((resolve) => socket.once('error', resolve));
    socket.destroy();
    expect(String(error.code)).toMatch(/ERR_SSL|ECONNRESET/);
    await eventually(() => (server.stats.refusals.tls ?? 0) === 1, 2000, 'a counted tls refusal');
    expect(server.active).toBe(0);
  });

  it('a silent peer cannot hold a handshake slot past handshakeTimeout, and does not block others', async () => {
    const p = await pair({ tls: 'self-signed', handshakeTimeout: 200, maxCap: 4 }, { tls: '1', minCap: 1, maxCap: 1 });
    const silent = await Promise.all([connect(p.port), connect(p.port), connect(p.port)]);
    for (const socket of silent) {
      socket.on('error', () => undefined);
      track(socket);
    }
    // Others are served while the silent ones sit in their handshake.
    await p.client.waitForActive(1, 5000);
    await sleep(50);
    expect(p.server.stats.handshaking).toBeGreaterThanOrEqual(1);
    await eventually(() => (p.server.stats.refusals['handshake-timeout'] ?? 0) === 3, 3000, 'three handshake timeouts');
    expect(p.server.stats.handshaking).toBe(0);
    await eventually(() => silent.every((socket) => socket.destroyed || socket.readableEnded), 2000, 'silent sockets closed');
  });

  it('builds one secure context per pool and reuses it for every connection', async () => {
    const create = tls.createSecureContext;
    let created = 0;
    const counting = (...args: Parameters<typeof tls.createSecureContext>) => {
      created++;
      return create(...args);
    };
    (tls as { createSecureContext: typeof tls.createSecureContext }).createSecureContext = counting;
    scope.defer(() => {
      (tls as { createSecureContext: typeof tls.createSecureContext }).createSecureContext = create;
    });
    const server = createServerPool({ port: 0, tls: { key: leaf.key, cert: leaf.cert } });
    await server.start();
    scope.defer(() => server.close());
    const client = createClientPool({ address: `127.0.0.1:${server.address()!.port}`, tls: '2', hostname: 'tunnel.test', ca: authority.cert, minCap: 6, maxCap: 6 });
    scope.defer(() => client.close());
    const afterConstruction = created;
    client.start();
    await client.waitForActive(6, 5000);
    expect(afterConstruction).toBe(2); // one server context, one client context
    expect(created).toBe(2); // none per connection
  });
});

// Half-close and idle streams whose peer ends its side, on every transport: test/conformance.
describe('tcp transport over TLS 1.3: a FIN in the handshake', () => {
  const serverTls = () => ({ tls: { key: selfSigned.key, cert: selfSigned.cert } });

  it.each([
    ['before a byte', Buffer.alloc(0)],
    ['in the middle of its ClientHello', Buffer.from('160301020001', 'hex')],
  ])("a peer's FIN %s ends the server's handshake at once and closes the socket", async (_when, sent) => {
    const server = createServerPool({ port: 0, ...serverTls(), handshakeTimeout: 10_000 });
    await server.start();
    scope.defer(() => server.close());
    const peer = track(net.connect({ port: server.address()!.port, host: '127.0.0.1', allowHalfOpen: true }));
    peer.on('error', () => undefined);
    await new Promise((resolve) => peer.once('connect', resolve));
    await eventually(() => server.stats.handshaking === 1, 2000, 'the handshake to start');
    const started = Date.now();
    peer.end(sent);
    await eventually(() => server.stats.handshaking === 0, 2000, 'the handshake to end');
    await eventually(() => peer.readableEnded || peer.destroyed, 2000, 'the server to close its side');
    expect(Date.now() - started).toBeLessThan(2000); // far below the 10 s handshake timeout
    expect(server.stats.refusals['handshake-timeout']).toBeUndefined();
    expect(server.active).toBe(0);
  });

  it.each([
    ['during the TLS handshake', false],
    ['after the TLS handshake, before the ID', true],
  ])("a server's FIN %s ends the client's handshake at once and closes the socket", async (_when, afterTls) => {
    const ended: number[] = [];
    const onSocket = (socket: net.Socket | tls.TLSSocket): void => {
      socket.on('error', () => undefined);
      socket.once('end', () => ended.push(Date.now()));
      socket.resume();
      socket.end();
    };
    let port: number;
    if (afterTls) {
      const raw = tls.createServer({ key: selfSigned.key, cert: selfSigned.cert, allowHalfOpen: true }, onSocket);
      await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
      scope.defer(() => new Promise<void>((resolve) => raw.close(() => resolve())));
      port = (raw.address() as net.AddressInfo).port;
    } else {
      const raw = await listenRaw(onSocket, '127.0.0.1', { allowHalfOpen: true });
      scope.defer(() => raw.close());
      port = raw.port;
    }
    const client = createClientPool({ address: `127.0.0.1:${port}`, tls: '1', minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, handshakeTimeout: 10_000 });
    scope.defer(() => client.close());
    const started = Date.now();
    client.start();
    await eventually(() => (client.stats.failures.POOL_ERR_REFUSED ?? 0) === 1, 2000, 'a refused dial');
    await eventually(() => ended.length === 1, 2000, 'the client to close its side');
    expect(ended[0]! - started).toBeLessThan(2000); // far below the 10 s handshake timeout
    expect(client.active).toBe(0);
  });
});
