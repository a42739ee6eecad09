import { describe, expect, it } from '@jest/globals';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes, sleep } from '../support/net.js';
import { startProxy } from '../support/proxy.js';
import { asWs, pattern, startWsPair } from './ws-support.js';
import { useTestScope } from '../support/scope.js';

// Keep-alive: both ends ping every keepAlive; a peer that has answered pings
// and then goes silent is dropped after pongTimeout. Idle pooled streams,
// which the pool never reads, still answer pings.

const scope = useTestScope();
const pair = (...args: Parameters<typeof startWsPair>) => scope.pair(startWsPair, ...args);
const { track } = scope;
function nextError(stream: Duplex, timeout = 5000): Promise<{ code?: string; message: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no error within ${timeout} ms`)), timeout);
    stream.once('error', (error) => {
      clearTimeout(timer);
      resolve(error as { code?: string; message: string });
    });
  });
}

/** A raw `ws` server that sends an ID and then only does what the test says (e.g. no pongs: a Go npws idle connection). */
async function rawWsServer(options: WebSocket.ServerOptions, onConnection: (ws: WebSocket) => void = () => undefined) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, ...options });
  const sockets: WebSocket[] = [];
  wss.on('connection', (ws) => {
    sockets.push(ws);
    ws.on('error', () => undefined);
    ws.send(Buffer.from('0badc0de', 'hex'));
    onConnection(ws);
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  scope.defer(
    () =>
      new Promise<void>((resolve) => {
        for (const ws of sockets) ws.terminate();
        wss.close(() => resolve());
      }),
  );
  return { port: (wss.address() as net.AddressInfo).port, sockets };
}

const FAST = { keepAlive: 200, pongTimeout: 300 };

describe('ws keep-alive', () => {
  it('drops idle and taken streams on both ends when the path goes silent (TCP proxy stops forwarding)', async () => {
    const server = { ...FAST };
    const serverPool = createServerPool({ transport: 'ws', port: 0, ...server });
    await serverPool.start();
    scope.defer(() => serverPool.close());
    const proxy = await startProxy(serverPool.address()!.port);
    scope.defer(() => proxy.close());
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${proxy.port}`, ...FAST, minCap: 2, maxCap: 2, minIvl: 60_000, maxIvl: 60_000, refill: 'rounds' });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 5000);
    const [id, theirs] = await serverPool.incomingGet(1000);
    track(theirs);
    const mine = track(await client.outgoingGet(id, 1000));
    mine.write('alive');
    expect((await readBytes(theirs, 5)).toString()).toBe('alive');
    // Let a few ping rounds pass: both ends learn that the other answers pings.
    await sleep(700);
    expect(mine.errored).toBeNull();
    expect(client.active).toBe(1);
    const mineFailed = nextError(mine);
    const theirsFailed = nextError(theirs);
    proxy.freeze();
    // A peer gone silent is a cut, as an unanswered HTTP/2 PING is.
    expect(await mineFailed).toMatchObject({ code: 'ECONNRESET', name: 'StreamCutError', reason: 'ping-timeout' });
    expect(await theirsFailed).toMatchObject({ code: 'ECONNRESET', name: 'StreamCutError', reason: 'ping-timeout' });
    await eventually(() => (client.stats.drops.error ?? 0) === 1, 3000, 'the idle client stream dropped');
    await eventually(() => (serverPool.stats.drops.error ?? 0) === 1, 3000, 'the idle server stream dropped');
    expect(client.active + serverPool.active).toBe(0);
  });

  it('answers pings on idle pooled streams, server side and client side', async () => {
    const p = await pair({ keepAlive: 60_000 }, { keepAlive: 60_000, minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    // A raw client pings an idle server-pool stream that nobody took.
    const raw = new WebSocket(`ws://127.0.0.1:${p.port}/`, { perMessageDeflate: false });
    raw.on('error', () => undefined);
    scope.defer(() => raw.terminate());
    const id = await new Promise<Buffer>((resolve) => raw.once('message', (data) => resolve(data as Buffer)));
    expect(id).toHaveLength(4);
    await eventually(() => p.server.active === 2, 2000, 'the raw client to be pooled');
    const pongs: string[] = [];
    raw.on('pong', (data) => pongs.push(data.toString()));
    for (let i = 0; i < 3; i++) raw.ping(`p${i}`);
    await eventually(() => pongs.length === 3, 3000, 'three pongs');
    expect(pongs).toEqual(['p0', 'p1', 'p2']);
    expect(p.server.active).toBe(2);

    // A raw server pings an idle client-pool stream.
    const server = await rawWsServer({});
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${server.port}`, keepAlive: 60_000, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(1, 5000);
    const got: string[] = [];
    server.sockets[0]!.on('pong', (data) => got.push(data.toString()));
    server.sockets[0]!.ping('idle?');
    await eventually(() => got.length === 1, 3000, 'a pong from the idle client stream');
    expect(got).toEqual(['idle?']);
  });

  it('keeps a peer that never answers pings (Go npws idle connections) unless requirePong', async () => {
    const silent = await rawWsServer({ autoPong: false });
    const lenient = createClientPool({ transport: 'ws', address: `127.0.0.1:${silent.port}`, ...FAST, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => lenient.close());
    lenient.start();
    await lenient.waitForActive(1, 5000);
    const pings: number[] = [];
    silent.sockets[0]!.on('ping', () => pings.push(Date.now()));
    await eventually(() => pings.length >= 4, 5000, 'four ping rounds');
    expect(lenient.active).toBe(1);
    expect(lenient.stats.drops).toEqual({});

    const strict = createClientPool({ transport: 'ws', address: `127.0.0.1:${silent.port}`, ...FAST, requirePong: true, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => strict.close());
    strict.start();
    await eventually(() => (strict.stats.drops.error ?? 0) >= 1, 5000, 'the silent peer dropped');
  });

  it('drops a peer that answered pings and then stops (autoPong switched off under it)', async () => {
    const server = await rawWsServer({});
    const pool = createClientPool({ transport: 'ws', address: `127.0.0.1:${server.port}`, ...FAST, minIvl: 60_000, maxIvl: 60_000 });
    scope.defer(() => pool.close());
    pool.start();
    await pool.waitForActive(1, 5000);
    const ws = server.sockets[0]!;
    let pings = 0;
    ws.on('ping', () => pings++);
    await eventually(() => pings >= 2, 5000, 'two answered pings');
    // ws answers pings through this flag; the peer is still there, reading, but silent.
    (ws as unknown as { _autoPong: boolean })._autoPong = false;
    await eventually(() => (pool.stats.drops.error ?? 0) === 1, 5000, 'a keep-alive drop');
  });

  it('a reader that stops reading is not dropped: its end pauses and the other hears its pings', async () => {
    const p = await pair({ ...FAST }, { ...FAST, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    await p.client.waitForActive(1, 5000);
    const [id, server] = await p.server.incomingGet(1000);
    track(server);
    const client = track(await p.client.outgoingGet(id, 1000));
    // 4 MiB towards a server stream nobody reads: its socket pauses, the writer backs up.
    const total = 4 * 1024 * 1024;
    let written = 0;
    const writeMore = (): void => {
      while (written < total) {
        const length = Math.min(64 * 1024, total - written);
        const more = client.write(pattern(written, length));
        written += length;
        if (!more) {
          client.once('drain', writeMore);
          return;
        }
      }
    };
    writeMore();
    await eventually(() => asWs(server).socketPaused, 5000, 'the server socket to pause');
    await sleep(1500); // several keep-alive periods with the server side paused
    expect(client.errored).toBeNull();
    expect(server.errored).toBeNull();
    const received = await readBytes(server, total, 20_000);
    expect(received.equals(pattern(0, total))).toBe(true);
  });
});
