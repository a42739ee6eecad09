import { describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { connect, eventually, listenRaw, readBytes, requestThenReply, sleep, type RawServer } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startPair>) => scope.pair(startPair, ...args);
const { track } = scope;

const { handOff } = scope;

describe('tcp transport, plain TCP, end to end', () => {
  it('fills the pool and matches streams by ID; data echoes both ways', async () => {
    const p = await pair({}, { minCap: 4, maxCap: 4 });
    await p.client.waitForActive(4, 5000);
    await eventually(() => p.server.active === 4, 2000, 'server side to hold 4');
    const { id, server, client } = await handOff(p);
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    client.write('ping from client');
    expect((await readBytes(server, 16)).toString()).toBe('ping from client');
    server.write('pong from server');
    expect((await readBytes(client, 16)).toString()).toBe('pong from server');
    // Half-close: the client ends its side, the server sees the end (the
    // answer after it: 'pooled streams are half-open' below).
    client.end();
    await new Promise((resolve) => server.once('end', resolve));
    expect(p.client.stats.transport).toBe('tcp');
  });

  it('keeps bytes the server sends before outgoingGet, in order', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const [id, server] = await p.server.incomingGet(5000);
    track(server);
    server.write('first|');
    server.write('second|');
    server.write('third');
    await sleep(50);
    const client = track(await p.client.outgoingGet(id, 1000));
    expect((await readBytes(client, 18)).toString()).toBe('first|second|third');
  });

  it('resolves outgoingGet issued before its stream exists, when it arrives', async () => {
    // The "server" is a raw socket server the test drives: it sends the ID
    // only when told, long after outgoingGet was called.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    const raw = await listenRaw((socket) => {
      void released.then(() => socket.write('0badc0de' + 'payload'));
    });
    scope.defer(() => raw.close());
    const client = createClientPool({ address: `127.0.0.1:${raw.port}`, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => client.close());
    client.start();
    await eventually(() => raw.sockets.length === 1, 2000, 'the client to dial');
    let settledAt = 0;
    const getting = client.outgoingGet('0badc0de', 5000).then((stream) => {
      settledAt = Date.now();
      return stream;
    });
    await sleep(100);
    expect(settledAt).toBe(0);
    const sentAt = Date.now();
    release();
    const stream = track(await getting);
    expect(settledAt - sentAt).toBeLessThan(1000); // bounded, far below the 60 s interval
    expect((await readBytes(stream, 7)).toString()).toBe('payload');
  });

  it('rejects an unknown ID with POOL_ERR_TIMEOUT', async () => {
    const p = await pair();
    await p.client.waitForActive(1, 5000);
    await expect(p.client.outgoingGet('ffffffff', 100)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    expect(p.client.active).toBe(1);
  });

  it('refuses peers outside allowedIps with a bare close, counted on both sides', async () => {
    const p = await pair({ allowedIps: '10.9.9.9' }, { minCap: 1, maxCap: 1 });
    await eventually(() => (p.client.stats.failures.POOL_ERR_REFUSED ?? 0) >= 1, 5000, 'a refused dial');
    expect(p.server.stats.refusals.ip).toBeGreaterThanOrEqual(1);
    expect(p.client.active).toBe(0);
    expect(p.server.active).toBe(0);
  });

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

  it('refuses beyond maxCap and the client keeps what it got', async () => {
    const p = await pair({ maxCap: 2 }, { minCap: 4, maxCap: 4 });
    await eventually(() => (p.server.stats.refusals.full ?? 0) >= 1, 5000, 'a full refusal');
    expect(p.server.active).toBe(2);
    await p.client.waitForActive(2, 1000);
    expect(p.client.active).toBe(2);
  });

  it.each([
    ['ends it (FIN)', (s: net.Socket) => s.end(), 'end'],
    ['resets it (RST)', (s: net.Socket) => s.resetAndDestroy(), 'error'],
  ])('drops an idle client stream when the peer %s, never crashes, and refills', async (_what, kill, reason) => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    const [id, server] = await p.server.incomingGet(1000);
    kill(server as net.Socket);
    await eventually(() => (p.client.stats.drops[reason] ?? 0) === 1, 3000, `a '${reason}' drop`);
    // Dropped means destroyed: the server's end of it closes too.
    await eventually(() => server.destroyed, 3000, 'the server side to close');
    await expect(p.client.outgoingGet(id, 50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    await p.client.waitForActive(2, 5000);
    expect(p.client.errorCount).toBe(1);
  });

  it('drops idle server streams whose client went away', async () => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    await eventually(() => p.server.active === 2, 2000);
    p.client.flush();
    await eventually(() => (p.server.stats.drops.end ?? 0) + (p.server.stats.drops.error ?? 0) >= 2, 3000, 'server-side drops');
  });

  it('close(): pending gets reject with POOL_ERR_CLOSED, the port is freed, taken streams survive until they end', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    const pendingOut = expect(p.client.outgoingGet('12345678', 10_000)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    const pendingIn = expect(p.server.incomingGet(10_000)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    const closing = p.close();
    await pendingOut;
    await pendingIn;
    await expect(connect(p.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    client.write('still here');
    expect((await readBytes(server, 10)).toString()).toBe('still here');
    // close() waits for the taken streams (up to closeTimeout): the application ends them.
    client.destroy();
    server.destroy();
    await closing;
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

  it('reports a dead server as POOL_ERR_DIAL without crashing', async () => {
    const raw: RawServer = await listenRaw();
    const port = raw.port;
    await raw.close();
    const client: ClientPool = createClientPool({ address: `127.0.0.1:${port}`, minIvl: 20, maxIvl: 20 });
    scope.defer(() => client.close());
    client.start();
    await eventually(() => (client.stats.failures.POOL_ERR_DIAL ?? 0) >= 2, 3000, 'two failed dials');
    expect(client.active).toBe(0);
    expect(client.ready).toBe(true);
  });

  it('single mode: no ID exchange, outgoingGet("") takes any stream of a plain server', async () => {
    const raw = await listenRaw((socket) => socket.pipe(socket));
    scope.defer(() => raw.close());
    const client = createClientPool({ address: `127.0.0.1:${raw.port}`, isSingle: true, minCap: 2, maxCap: 2 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 5000);
    const stream = track(await client.outgoingGet('', 1000));
    stream.write('echo me');
    expect((await readBytes(stream, 7)).toString()).toBe('echo me');
  });
});

describe('tcp transport, plain TCP: pooled streams are half-open', () => {
  const request = Buffer.from('GET / HTTP/1.0\r\n\r\n');
  const reply = randomBytes(1 << 20);

  it.each<[string, 'client' | 'server']>([
    ["a request, the client's FIN, then the reply: the server answers after the client ended its side", 'client'],
    ["the other way: the server's FIN first, then the client's answer", 'server'],
  ])('%s', async (_what, asks) => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    const got = asks === 'client' ? await requestThenReply(client, server, request, reply) : await requestThenReply(server, client, request, reply);
    expect(got.request.equals(request)).toBe(true);
    expect(got.reply.length).toBe(reply.length);
    expect(got.reply.equals(reply)).toBe(true);
    // Both directions ended: both sockets close on their own.
    await eventually(() => client.destroyed && server.destroyed, 2000, 'both sockets to close');
  });

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

  it("an idle server stream whose peer sends FIN leaves the pool ('end') and is destroyed", async () => {
    const server = createServerPool({ port: 0 });
    await server.start();
    scope.defer(() => server.close());
    const peer = track(net.connect({ port: server.address()!.port, host: '127.0.0.1', allowHalfOpen: true }));
    expect((await readBytes(peer, 8)).toString()).toMatch(/^[0-9a-f]{8}$/);
    await eventually(() => server.active === 1, 2000, 'the stream to be pooled');
    peer.end();
    await eventually(() => (server.stats.drops.end ?? 0) === 1, 2000, "an 'end' drop");
    expect(server.active).toBe(0);
    // The server closed its side too (the peer stays half-open until it does).
    await eventually(() => peer.readableEnded, 2000, "the server's FIN");
    await expect(server.incomingGet(50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
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
