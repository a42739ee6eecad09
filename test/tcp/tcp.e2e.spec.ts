import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, listenRaw, requestThenReply } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startPair>) => scope.pair(startPair, ...args);
const { track } = scope;

// What every transport does (echo, bytes before pick-up, half-close, rendezvous, unknown IDs,
// allowedIps, maxCap, dead server, idle death, close, single mode): test/conformance.
describe('tcp transport, plain TCP, end to end', () => {
  it('compares IPv4-mapped peers on a dual-stack listener correctly', async () => {
    const probe = net.createServer();
    const dualStack = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(0, '::', () => resolve(true));
    });
    await new Promise((resolve) => probe.close(resolve));
    const host = dualStack ? '::' : '0.0.0.0';
    const p = await pair({ host, allowedIps: '127.0.0.1' }, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const [, stream] = await p.server.incomingGet(1000);
    track(stream);
    expect((stream as net.Socket).remoteAddress).toMatch(dualStack ? /^::ffff:127\.0\.0\.1$/ : /^127\.0\.0\.1$/);
  });

  // A peer that ends or destroys an idle stream: test/conformance (idle death). A reset is TCP's own.
  it("drops an idle client stream when the peer resets it (RST) as an 'error', never crashes, and refills", async () => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    const [id, server] = await p.server.incomingGet(1000);
    (server as net.Socket).resetAndDestroy();
    await eventually(() => (p.client.stats.drops.error ?? 0) === 1, 3000, "an 'error' drop");
    await expect(p.client.outgoingGet(id, 50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    await p.client.waitForActive(2, 5000);
    expect(p.client.errorCount).toBe(1);
  });

  it('asks addressResolver on every dial', async () => {
    const server = createServerPool({ port: 0 });
    await server.start();
    scope.defer(() => server.close());
    let calls = 0;
    const client = createClientPool({
      addressResolver: () => {
        calls++;
        return { host: '127.0.0.1', port: server.address()!.port };
      },
      minCap: 3,
      maxCap: 3,
    });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(3, 5000);
    expect(calls).toBe(3);
  });

  it('dials through a user-supplied dialer', async () => {
    const server = createServerPool({ port: 0 });
    await server.start();
    scope.defer(() => server.close());
    const dialed: net.Socket[] = [];
    const client = createClientPool({
      dialer: () => {
        const socket = net.connect(server.address()!.port, '127.0.0.1');
        dialed.push(socket);
        return socket;
      },
      minCap: 2,
      maxCap: 2,
    });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 5000);
    expect(dialed).toHaveLength(2);
  });

});

describe('tcp transport, plain TCP: pooled streams are half-open', () => {
  const request = Buffer.from('GET / HTTP/1.0\r\n\r\n');
  const reply = randomBytes(1 << 20);

  it('also on a net.Server of your own and a socket from your dialer (both made without allowHalfOpen)', async () => {
    const own = net.createServer();
    const server = createServerPool({ server: own, port: 0 });
    await server.start();
    scope.defer(() => server.close());
    const client = createClientPool({ dialer: () => net.connect(server.address()!.port, '127.0.0.1'), minCap: 2, maxCap: 2 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 5000);
    for (const clientFirst of [true, false]) {
      const [id, serverSide] = await server.incomingGet(1000);
      track(serverSide);
      const clientSide = track(await client.outgoingGet(id, 1000));
      const [asker, answerer] = clientFirst ? [clientSide, serverSide] : [serverSide, clientSide];
      const got = await requestThenReply(asker, answerer, request, reply);
      expect(got.reply.equals(reply)).toBe(true);
    }
  });

  it.each([
    ['no ID at all', '', 'POOL_ERR_REFUSED'],
    ['half an ID', '0bad', 'POOL_ERR_HANDSHAKE'],
  ])("a server's FIN during the client's ID read (%s) ends the handshake at once and closes the socket", async (_what, sent, code) => {
    const ended: number[] = [];
    const raw = await listenRaw(
      (socket) => {
        socket.end(sent);
        socket.once('end', () => ended.push(Date.now()));
        socket.resume();
      },
      '127.0.0.1',
      { allowHalfOpen: true },
    );
    scope.defer(() => raw.close());
    const client = createClientPool({ address: `127.0.0.1:${raw.port}`, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, handshakeTimeout: 10_000 });
    scope.defer(() => client.close());
    const started = Date.now();
    client.start();
    await eventually(() => (client.stats.failures[code] ?? 0) === 1, 2000, `a ${code} failure`);
    await eventually(() => ended.length === 1, 2000, 'the client to close its side');
    expect(ended[0]! - started).toBeLessThan(2000); // far below the 10 s handshake timeout
    expect(client.active).toBe(0);
  });
});
