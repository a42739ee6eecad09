import { beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import tls from 'node:tls';
import { createSelfSignedCertificate, type GeneratedCertificate } from '../../lib/certs/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, listenRaw } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const { track } = scope;

let selfSigned: GeneratedCertificate;
beforeAll(() => {
  selfSigned = createSelfSignedCertificate();
});

// What every TLS transport does (TLS modes 1 and 2, a verification that fails, TLS 1.2
// refused, one secure context per pool, a silent handshake cut) and what every transport
// does (half-close, idle streams whose peer ends its side...): test/conformance.
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
