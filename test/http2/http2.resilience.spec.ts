import { describe, expect, it } from '@jest/globals';
import { constants, type ServerHttp2Stream } from 'node:http2';
import tls from 'node:tls';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { connect, eventually, readBytes, readToEnd } from '../support/net.js';
import { h2Stats, nextError, startH2Pair, startProxy, startRawH2Server, testCertificate } from './h2-support.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startH2Pair>) => scope.pair(startH2Pair, ...args);
const { track } = scope;

describe('http2 transport: sessions that fail', () => {
  it('GOAWAY mid-life: streams above the last stream ID leave at once, the others stay usable, a new session refills', async () => {
    const raw = await startRawH2Server();
    scope.defer(() => raw.close());
    const client = createClientPool({ transport: 'http2', address: `127.0.0.1:${raw.port}`, tls: '1', minCap: 4, maxCap: 4, minIvl: 50, maxIvl: 50 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(4, 5000);
    expect([...raw.streamIds.values()]).toEqual([1, 3, 5, 7]);
    // The server processed streams 1 and 3 only.
    raw.sessions[0]!.goaway(constants.NGHTTP2_NO_ERROR, 3);
    await eventually(() => (client.stats.drops.error ?? 0) === 2, 5000, 'streams 5 and 7 to leave');
    expect(h2Stats(client).goaways).toBeGreaterThanOrEqual(1); // (Node's server answers our GOAWAY with its own)
    // Refilled on a second session; the old one opens nothing new.
    await eventually(() => client.active === 4 && raw.sessions.length === 2, 5000, 'a refill on a new session');
    expect(raw.streamIds.get('00000005')).toBe(1); // first stream of the new session
    // Streams 1 and 3 of the old session still carry data.
    for (const id of ['00000001', '00000002']) {
      const stream = track(await client.outgoingGet(id, 1000));
      stream.write(`echo ${id}`);
      expect((await readBytes(stream, 13)).toString()).toBe(`echo ${id}`);
    }
    await expect(client.outgoingGet('00000003', 100)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
  });

  it('the server\'s socket dies mid-transfer: typed errors on the streams in use, the pool recovers', async () => {
    const server = createServerPool({ transport: 'http2', port: 0, tls: testCertificate() });
    await server.start();
    scope.defer(() => server.close());
    const proxy = await startProxy(server.address()!.port);
    scope.defer(() => proxy.close());
    const client = createClientPool({ transport: 'http2', address: `127.0.0.1:${proxy.port}`, tls: '1', minCap: 3, maxCap: 3, minIvl: 50, maxIvl: 50 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(3, 5000);
    const [id, serverStream] = await server.incomingGet(5000);
    const clientStream = track(await client.outgoingGet(id, 5000));
    track(serverStream);
    serverStream.resume();
    const pump = setInterval(() => clientStream.write(Buffer.alloc(1024)), 2);
    scope.defer(() => clearInterval(pump));
    const clientError = nextError(clientStream);
    const serverError = nextError(serverStream);
    await new Promise((resolve) => setTimeout(resolve, 30));
    proxy.cut();
    expect(await clientError).toMatchObject({ code: 'ECONNRESET', name: 'StreamCutError', reason: 'connection-lost' });
    expect(await serverError).toMatchObject({ code: 'ECONNRESET', reason: 'connection-lost' });
    clearInterval(pump);
    // The idle ones left, a new session refills, and it works.
    await eventually(() => h2Stats(client).sessionsOpened === 2 && client.active === 3, 5000, 'a refill on a new session');
    const [id2, server2] = await server.incomingGet(5000);
    const client2 = track(await client.outgoingGet(id2, 5000));
    track(server2);
    client2.write('after the cut');
    expect((await readBytes(server2, 13)).toString()).toBe('after the cut');
  });

  it.each([
    ['CANCEL', constants.NGHTTP2_CANCEL],
    ['NO_ERROR', constants.NGHTTP2_NO_ERROR],
  ])('RST_STREAM(%s) on an idle pooled stream: it leaves the pool, which refills', async (_name, code) => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    const [, server] = await p.server.incomingGet(5000);
    (server as ServerHttp2Stream).close(code); // RST_STREAM to the client, whose stream is idle in its pool
    const dropped = (): number => Object.values(p.client.stats.drops).reduce((sum, n) => sum + n, 0);
    await eventually(() => dropped() === 1, 5000, 'the idle stream to leave');
    await eventually(() => p.client.active === 2 && h2Stats(p.client).streamsOpened === 3, 5000, 'a refill');
    expect(h2Stats(p.client).sessions).toBe(1);
  });

  it('a PING not answered within pingTimeout marks the session dead: its idle streams leave, a new session is made', async () => {
    const server = createServerPool({ transport: 'http2', port: 0, tls: testCertificate() });
    await server.start();
    scope.defer(() => server.close());
    const proxy = await startProxy(server.address()!.port);
    scope.defer(() => proxy.close());
    const client = createClientPool({
      transport: 'http2', address: `127.0.0.1:${proxy.port}`, tls: '1', minCap: 2, maxCap: 2, minIvl: 50, maxIvl: 50, keepAlive: 100, pingTimeout: 400,
    });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 5000);
    await eventually(() => typeof h2Stats(client).lastPingRttMs === 'number', 5000, 'a PING round trip');
    proxy.freeze(); // the peer stops answering; the socket stays open
    await eventually(() => h2Stats(client).pingTimeouts === 1, 5000, 'a PING timeout');
    await eventually(() => (client.stats.drops.error ?? 0) === 2, 5000, 'the idle streams to leave');
    await eventually(() => client.active === 2 && h2Stats(client).sessionsOpened === 2, 5000, 'a refill on a new session');
    expect(proxy.connections).toBe(2);
  });
});

describe('http2 transport: who the server serves', () => {
  async function server() {
    const pool = createServerPool({ transport: 'http2', port: 0, tls: testCertificate() });
    await pool.start();
    scope.defer(() => pool.close());
    return pool;
  }

  it('refuses a plain-TCP client (counted as tls)', async () => {
    const pool = await server();
    const socket = await connect(pool.address()!.port);
    scope.defer(() => void socket.destroy());
    socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    expect((await readToEnd(socket, 5000)).length).toBeLessThan(100); // at most a TLS alert
    await eventually(() => pool.stats.refusals.tls === 1, 2000, 'a tls refusal');
  });

  it.each([
    ['offering only http/1.1', ['http/1.1']],
    ['offering no ALPN at all', undefined],
  ])('drops a TLS client %s (counted as alpn)', async (_what, protocols) => {
    const pool = await server();
    const socket = tls.connect({ port: pool.address()!.port, host: '127.0.0.1', rejectUnauthorized: false, ...(protocols ? { ALPNProtocols: protocols } : {}) });
    scope.defer(() => void socket.destroy());
    const outcome = await new Promise<string>((resolve) => {
      socket.once('error', (error: { code?: string }) => resolve(`error ${String(error.code)}`));
      socket.once('close', () => resolve('closed'));
    });
    expect(outcome).toMatch(/closed|error/);
    await eventually(() => pool.stats.refusals.alpn === 1, 2000, 'an alpn refusal');
    expect(pool.active).toBe(0);
  });
});

describe('http2 transport: stream resets', () => {
  it('5000 hand-offs whose application side destroys its streams do not break the pool', async () => {
    const p = await pair({ maxCap: 1024 }, { minCap: 64, maxCap: 64, minIvl: 1, maxIvl: 20 });
    await p.client.waitForActive(64, 10_000);
    const deadline = Date.now() + 60_000;
    for (let i = 0; i < 5000; i++) {
      if (Date.now() > deadline) throw new Error(`only ${i} hand-offs within 60 s`);
      const [id, server] = await p.server.incomingGet(5000);
      const client = await p.client.outgoingGet(id, 5000);
      if (i % 100 === 0) {
        client.write('x');
        expect((await readBytes(server, 1)).toString()).toBe('x');
      }
      client.destroy(); // RST_STREAM from the client: what Node's rapid-reset protection counts
      server.destroy();
    }
    await eventually(() => h2Stats(p.client).resets >= 5000, 5000, 'every destroy counted as a reset');
    const stats = h2Stats(p.client);
    // Sessions were retired before the server's limit, never killed by it.
    expect(stats.sessionsOpened).toBeGreaterThanOrEqual(5000 / 800);
    expect(p.client.stats.drops.error ?? 0).toBe(0);
    expect(p.client.stats.failures).toEqual({});
    await p.client.waitForActive(64, 10_000);
  }, 90_000);

  it('close() destroys a session stuck in a write shortly after the close timeout, cutting the stream the application held', async () => {
    const server = createServerPool({ transport: 'http2', port: 0, tls: testCertificate() });
    await server.start();
    scope.defer(() => server.close());
    const proxy = await startProxy(server.address()!.port);
    scope.defer(() => proxy.close());
    const client = createClientPool({ transport: 'http2', address: `127.0.0.1:${proxy.port}`, tls: '1', minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => client.close());
    client.start();
    const [id, serverSide] = await server.incomingGet(5000);
    const clientSide = track(await client.outgoingGet(id, 5000));
    serverSide.on('error', () => undefined);
    const cut = nextError(clientSide, 5000);
    proxy.stall(); // nothing is read any more: the session's socket backs up
    clientSide.write(Buffer.alloc(16 << 20));
    await eventually(() => clientSide.writableLength > 0, 2000, 'the write to back up');
    await client.close(300);
    expect(await cut).toMatchObject({ code: 'POOL_ERR_CLOSED' });
    await eventually(() => h2Stats(client).sessions === 0, 3000, 'the stuck session to be destroyed');
  });
});
