/**
 * Several clients on one server, end to end on 127.0.0.1 over every TLS
 * transport with mutual TLS: two client pools present certificates with
 * different common names; the server hands out the streams of one client
 * (`incomingGet({ client })`), exactly the stream a client names
 * (`incomingGet({ id, client })`, the forward tunnel), and counts per client
 * (`stats.clients`). Data crosses each pair to prove the two ends match.
 */
import { beforeAll, describe, expect, it, jest } from '@jest/globals';
import { createCertificateAuthority, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { eventually, requestThenReply, sleep } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

jest.setTimeout(60_000);
const scope = useTestScope();

type TlsTransport = 'tcp' | 'http2' | 'ws';
const TRANSPORTS: TlsTransport[] = ['tcp', 'http2', 'ws'];

let ca: CertificateAuthority;
let serverCert: GeneratedCertificate;
let alice: GeneratedCertificate;
let bob: GeneratedCertificate;
beforeAll(() => {
  ca = createCertificateAuthority({ commonName: 'identity CA' });
  serverCert = ca.issue({ commonName: 'localhost' });
  alice = ca.issue({ commonName: 'alice' });
  bob = ca.issue({ commonName: 'bob' });
});

async function startServer(transport: TlsTransport): Promise<ServerPool> {
  const server = createServerPool({
    transport,
    host: '127.0.0.1',
    port: 0,
    maxCap: 32,
    tls: { key: serverCert.key, cert: serverCert.cert, ca: ca.cert, requestCert: true },
  } as ServerPoolConfig);
  await server.start();
  scope.defer(() => server.close());
  return server;
}

function startClient(transport: TlsTransport, server: ServerPool, certificate: GeneratedCertificate, count: number): ClientPool {
  const client = createClientPool({
    transport,
    address: `127.0.0.1:${server.address()!.port}`,
    tls: '2',
    hostname: 'localhost',
    ca: ca.cert,
    cert: certificate.cert,
    key: certificate.key,
    minCap: count,
    maxCap: count,
    minIvl: 50,
    maxIvl: 200,
    maxBackoff: 300,
  } as ClientPoolConfig);
  client.start();
  scope.defer(() => client.close());
  return client;
}

/**
 * The IDs of a client pool's ready streams, as the client side of a forward
 * tunnel knows them (the server told it each one). The client pool has no
 * public listing of them yet, so the spec reads its idle set.
 */
function readyIds(client: ClientPool): string[] {
  return [...(client as unknown as { idle: { ids(): Iterable<string> } }).idle.ids()];
}

describe.each(TRANSPORTS)('several clients on one %s server (mutual TLS)', (transport) => {
  it('incomingGet({ client }) hands out only that client\'s streams, and stats.clients follows each client', async () => {
    const server = await startServer(transport);
    const clients = { alice: startClient(transport, server, alice, 3), bob: startClient(transport, server, bob, 3) };
    await eventually(() => server.active >= 6, 20_000, 'both clients to fill the server');
    expect(server.stats.clients).toMatchObject({ 'cert:alice': { idle: 3, taken: 0 }, 'cert:bob': { idle: 3, taken: 0 } });

    // Five of bob's streams in a row: his three idle ones, then the ones his pool dials to replace them.
    for (let i = 0; i < 5; i++) {
      const [id, serverStream] = await server.incomingGet({ client: 'cert:bob', timeout: 10_000 });
      scope.track(serverStream);
      expect(streamIdentity(serverStream)).toMatchObject({ kind: 'certificate', commonName: 'bob' });
      const clientStream = scope.track(await clients.bob.outgoingGet(id, 5000));
      await requestThenReply(clientStream, serverStream, Buffer.from(`bob ${i}`), Buffer.from(`ok ${i}`));
    }
    // Alice's streams were never touched, and the per-client figures say so.
    const stats = server.stats.clients!;
    expect(stats['cert:bob']!.taken).toBe(5);
    expect(stats['cert:bob']!.accepted).toBeGreaterThanOrEqual(5);
    expect(stats['cert:alice']).toMatchObject({ idle: 3, accepted: 3, taken: 0 });

    // By identity object too: alice's stream, matched by her certificate's label.
    const [id, serverStream] = await server.incomingGet({ client: { kind: 'certificate', subject: 'CN=alice', commonName: 'alice', fingerprint: 'ignored' }, timeout: 5000 });
    scope.track(serverStream);
    const clientStream = scope.track(await clients.alice.outgoingGet(id, 5000));
    await requestThenReply(clientStream, serverStream, Buffer.from('alice'), Buffer.from('ok'));
    expect(server.stats.clients!['cert:alice']!.taken).toBe(1);
    expect(server.stats.totals.taken).toBe(6);
  });

  it('a filtered get waiting for one client is served by that client\'s next stream, not by another\'s', async () => {
    const server = await startServer(transport);
    const bobs = startClient(transport, server, bob, 2);
    await eventually(() => server.active >= 2, 20_000, 'bob to fill the server');
    const waiting = server.incomingGet({ client: 'cert:alice', timeout: 20_000 });
    const alices = startClient(transport, server, alice, 1);
    const [id, serverStream] = await waiting;
    scope.track(serverStream);
    expect(streamIdentity(serverStream)).toMatchObject({ commonName: 'alice' });
    const clientStream = scope.track(await alices.outgoingGet(id, 5000));
    await requestThenReply(clientStream, serverStream, Buffer.from('hello'), Buffer.from('world'));
    expect(server.stats.clients!['cert:bob']).toMatchObject({ idle: 2, taken: 0 });
    expect(bobs.active).toBe(2);
  });

  it('take by ID: the server takes exactly the stream a client names, and refuses it to another client', async () => {
    const server = await startServer(transport);
    const alices = startClient(transport, server, alice, 3);
    startClient(transport, server, bob, 2);
    await eventually(() => server.active >= 5 && readyIds(alices).length >= 3, 20_000, 'both clients to fill the server');
    // Alice takes one of her ready streams and names it (the forward tunnel's "open" on the control channel).
    const named = readyIds(alices).at(-1)!;
    const clientStream = scope.track(await alices.outgoingGet(named, 5000));
    // She writes at once, before the server has taken it (the control message may come later than the
    // data): on tcp and http2, whose idle streams must stay quiet, an authenticated stream keeps the bytes.
    clientStream.write('early ');
    await sleep(300); // time for them to reach the idle stream on the server; nothing here depends on it being enough
    // Bob cannot claim it, and it stays in the pool.
    await expect(server.incomingGet({ id: named, client: 'cert:bob', timeout: 5000 })).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID' });
    const [id, serverStream] = await server.incomingGet({ id: named, client: 'cert:alice', timeout: 5000 });
    scope.track(serverStream);
    expect(id).toBe(named);
    expect(streamIdentity(serverStream)).toMatchObject({ commonName: 'alice' });
    const { request, reply } = await requestThenReply(clientStream, serverStream, Buffer.from('forward'), Buffer.from('tunnel'));
    expect([String(request), String(reply)]).toEqual(['early forward', 'tunnel']);
    expect(server.stats.drops['unexpected-data']).toBeUndefined();
    // Named again: it is gone.
    await expect(server.incomingGet({ id: named, timeout: 5000 })).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID' });
  });
});
