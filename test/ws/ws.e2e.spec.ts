import { describe, expect, it } from '@jest/globals';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { startWsPair, type WsClientConfig } from './ws-support.js';
import { useTestScope } from '../support/scope.js';
import { readOutcome } from '../cut/cut-support.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startWsPair>) => scope.pair(startWsPair, ...args);
const { track } = scope;
const { handOff } = scope;
function waitFor(emitter: NodeJS.EventEmitter, event: string, timeout = 5000): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' within ${timeout} ms`)), timeout);
    emitter.once(event, (...args: unknown[]) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** A raw `ws` server (not our pool) on 127.0.0.1:0 that does what `onConnection` says. */
async function rawWsServer(onConnection: (ws: WebSocket, request: http.IncomingMessage) => void, options: WebSocket.ServerOptions = {}) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, ...options });
  wss.on('connection', (ws, request) => {
    ws.on('error', () => undefined);
    onConnection(ws, request);
  });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  scope.defer(
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  );
  return { wss, port: (wss.address() as net.AddressInfo).port };
}

function wsClient(port: number, extra: WsClientConfig = {}) {
  const pool = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, minIvl: 20, maxIvl: 20, ...extra });
  scope.defer(() => pool.close());
  pool.start();
  return pool;
}

// What every transport does (echo, bytes before pick-up, rendezvous, unknown IDs, allowedIps,
// maxCap, dead server, idle death, close, single mode): test/conformance.
describe('ws transport, end to end', () => {
  it('moves large writes intact in both directions (split into ≤ 1 MiB messages)', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    const big = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
    client.write(big);
    expect((await readBytes(server, big.length, 10_000)).equals(big)).toBe(true);
    server.write(big);
    expect((await readBytes(client, big.length, 10_000)).equals(big)).toBe(true);
  });

  it('takes bytes that share the ID message as the stream’s first bytes', async () => {
    const { port } = await rawWsServer((ws) => ws.send(Buffer.concat([Buffer.from('0badc0de', 'hex'), Buffer.from('early')])));
    const pool = wsClient(port, { minCap: 1, maxCap: 1 });
    const stream = track(await pool.outgoingGet('0badc0de', 5000));
    expect((await readBytes(stream, 5)).toString()).toBe('early');
  });

  it('end() sends the end of data after the data (half-close); the peer reads everything, then end; once it ends too, both close cleanly', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    const chunks: Buffer[] = [];
    server.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = waitFor(server, 'end');
    const finished = waitFor(client, 'finish');
    const closed = Promise.all([waitFor(client, 'close'), waitFor(server, 'close')]);
    client.resume();
    client.end('last words');
    await finished;
    await ended;
    expect(Buffer.concat(chunks).toString()).toBe('last words');
    // Half-open: the server may still answer; its end() closes the WebSocket (1000).
    server.end('an answer after the end');
    // The close handshake completes: both streams close, with no error.
    await closed;
    expect(client.errored).toBeNull();
    expect(server.errored).toBeNull();
  });

  it('without the half-close extension (as with a Go peer), a write after the peer ended fails with EPIPE', async () => {
    const p = await pair({ halfClose: false }, { minCap: 1, maxCap: 1, halfClose: false });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    server.resume();
    client.resume();
    server.end();
    await waitFor(client, 'end');
    const failed = new Promise<{ code?: string }>((resolve) => {
      client.on('error', (error) => resolve(error as { code?: string }));
      client.write('too late', (error) => error && resolve(error as { code?: string }));
    });
    expect((await failed).code).toMatch(/^(EPIPE|ERR_STREAM_WRITE_AFTER_END|ERR_STREAM_DESTROYED)$/);
  });

  it('destroy() before end() closes with 1011: the peer errors, never ends; the idle streams of a closing pool are cut too', async () => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    await eventually(() => p.server.active === 2, 2000, 'server side to hold 2');
    const { server, client } = await handOff(p);
    const outcome = readOutcome(server);
    client.destroy();
    expect(await outcome).toMatchObject({ first: 'error', error: { code: 'ECONNRESET', name: 'StreamCutError', reason: 'closed', closeCode: 1011 } });
    // And the idle ones: closing the client pool cuts them, the server drops its ends as errors.
    await p.client.close();
    await eventually(() => (p.server.stats.drops.error ?? 0) >= 1, 3000, 'an error drop on the server');
  });

  it.each<[string, string, number, (ws: WebSocket) => void]>([
    ['a text message', 'POOL_ERR_HANDSHAKE', 1003, (ws) => ws.send('0badc0de')],
    ['a 3-byte binary message', 'POOL_ERR_INVALID_ID', 1002, (ws) => ws.send(Buffer.from([1, 2, 3]))],
  ])('drops a connection whose first message is %s, counted as %s, closing with %s', async (_what, code, closeCode, send) => {
    const closes: number[] = [];
    const { port } = await rawWsServer((ws) => {
      ws.on('close', (c) => closes.push(c));
      send(ws);
    });
    const pool = wsClient(port, { minCap: 1, maxCap: 1 });
    await eventually(() => (pool.stats.failures[code] ?? 0) >= 2, 5000, `two ${code} failures`);
    expect(pool.active).toBe(0);
    await eventually(() => closes.length >= 1, 3000, 'the server to see the close');
    expect(closes[0]).toBe(closeCode);
  });

  it('a text message on a pooled stream is a protocol error: close 1003, the stream errors', async () => {
    let peer: WebSocket | undefined;
    const { port } = await rawWsServer((ws) => {
      peer = ws;
      ws.send(Buffer.from('0badc0de', 'hex'));
    });
    const pool = wsClient(port, { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    const stream = track(await pool.outgoingGet('0badc0de', 5000));
    const closed = waitFor(peer!, 'close');
    const failed = waitFor(stream, 'error');
    peer!.send('text');
    expect((await failed)[0]).toMatchObject({ code: 'ERR_WS_TEXT_MESSAGE', name: 'WsStreamError' });
    expect((await closed)[0]).toBe(1003);
  });

  it('answers a wrong path with 404 and counts it; path "*" accepts any, as the Go server', async () => {
    const p = await pair({ path: '/tunnel' }, { minCap: 1, maxCap: 1, path: '/other' });
    await eventually(() => (p.server.stats.refusals.path ?? 0) >= 1, 5000, 'a path refusal');
    await expect(p.client.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_REFUSED',
      message: expect.stringMatching(/404/),
    });
    const any = await pair({ path: '*' }, { minCap: 1, maxCap: 1, path: '/any/other/path?x=1' });
    await any.client.waitForActive(1, 5000);
    const right = await pair({ path: '/tunnel' }, { minCap: 1, maxCap: 1, path: '/tunnel?token=1' });
    await right.client.waitForActive(1, 5000);
  });

  it('trustProxy: allowedIps is checked against X-Forwarded-For only when switched on', async () => {
    const forwarded = { headers: { 'X-Forwarded-For': '10.9.9.9, 203.0.113.7' } };
    // Off (default): the header is ignored, the socket's 127.0.0.1 is refused.
    const off = await pair({ allowedIps: '203.0.113.7' }, { minCap: 1, maxCap: 1, ...forwarded });
    await eventually(() => (off.server.stats.refusals.ip ?? 0) >= 1, 5000, 'an ip refusal');
    // On, one proxy: the last entry (what that proxy saw) is checked; the client-written one is not.
    const on = await pair({ allowedIps: '203.0.113.7', trustProxy: true }, { minCap: 1, maxCap: 1, ...forwarded });
    await on.client.waitForActive(1, 5000);
    const spoofed = await pair({ allowedIps: '10.9.9.9', trustProxy: 1 }, { minCap: 1, maxCap: 1, ...forwarded });
    await eventually(() => (spoofed.server.stats.refusals.ip ?? 0) >= 1, 5000, 'a spoof refused');
    // Two proxies: the entry before the last.
    const two = await pair({ allowedIps: '10.9.9.9', trustProxy: 2 }, { minCap: 1, maxCap: 1, ...forwarded });
    await two.client.waitForActive(1, 5000);
  });

  it('sends extra headers (Authorization for a proxy in front) and sets Host from hostname', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const { port } = await rawWsServer((ws, request) => {
      seen.push(request.headers);
      ws.send(Buffer.from('00000000', 'hex'));
    });
    const pool = wsClient(port, { minCap: 1, maxCap: 1, headers: { Authorization: 'Bearer sesame' }, hostname: 'tunnel.test', path: '/t' });
    await pool.waitForActive(1, 5000);
    expect(seen[0]).toMatchObject({ authorization: 'Bearer sesame', host: `tunnel.test:${port}` });
    expect(seen[0]!['sec-websocket-extensions']).toBeUndefined();
  });

  it('dials through an agent (an HTTP CONNECT proxy here)', async () => {
    const serverPool = createServerPool({ transport: 'ws', port: 0 });
    await serverPool.start();
    scope.defer(() => serverPool.close());
    const serverPort = serverPool.address()!.port;
    const connects: string[] = [];
    const proxy = http.createServer();
    proxy.on('connect', (request: http.IncomingMessage, socket: net.Socket) => {
      connects.push(request.url!);
      const [host, port] = request.url!.split(':');
      const upstream = net.connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.pipe(socket).pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
      scope.defer(() => {
        upstream.destroy();
        socket.destroy();
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => proxy.close(() => resolve())));
    const proxyPort = (proxy.address() as net.AddressInfo).port;
    class ConnectAgent extends http.Agent {
      override createConnection(options: http.ClientRequestArgs, callback?: (error: Error | null, stream: Duplex) => void): Duplex | null | undefined {
        const socket = net.connect(proxyPort, '127.0.0.1');
        const target = `${options.host}:${options.port}`;
        socket.once('connect', () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
        socket.once('data', (answer: Buffer) => {
          if (answer.toString().startsWith('HTTP/1.1 200')) callback!(null, socket);
          else callback!(new Error(`proxy said ${answer.toString()}`), socket);
        });
        socket.once('error', (error) => callback!(error, socket));
        return undefined;
      }
    }
    const agent = new ConnectAgent();
    scope.defer(() => agent.destroy());
    const client = wsClient(serverPort, { minCap: 2, maxCap: 2, agent });
    await client.waitForActive(2, 5000);
    expect(connects).toEqual([`127.0.0.1:${serverPort}`, `127.0.0.1:${serverPort}`]);
    const [id, server] = await serverPool.incomingGet(5000);
    track(server);
    const stream = track(await client.outgoingGet(id, 1000));
    stream.write('via proxy');
    expect((await readBytes(server, 9)).toString()).toBe('via proxy');
  });

  // A server that never answers the upgrade: test/conformance (every transport).
  it('handshakeTimeout: a server that upgrades but sends no ID is a counted handshake error', async () => {
    const { port } = await rawWsServer(() => undefined); // upgrades, then silence
    const mute = wsClient(port, { handshakeTimeout: 150 });
    await eventually(() => (mute.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 2, 5000, 'two timeouts waiting for the ID');
    expect(mute.active).toBe(0);
  });

  it('validates its options, naming them', () => {
    expect(() => createServerPool({ transport: 'ws', server: http.createServer(), port: 1234 })).toThrow(/invalid option port: port is for the port the pool opens itself/);
    expect(() => createServerPool({ transport: 'ws', path: 'tunnel' })).toThrow(/invalid option path/);
    expect(() => createServerPool({ transport: 'ws', trustProxy: 'yes' as never })).toThrow(/invalid option trustProxy/);
    expect(() => createServerPool({ transport: 'ws', server: {} as never })).toThrow(/invalid option server/);
    // What host.httpAdapter.getHttpServer() gives in a Nest options factory: an error, not a port of its own.
    expect(() => createServerPool({ transport: 'ws', server: undefined })).toThrow(/invalid option server: got undefined.*pass server: host/);
    expect(() => createClientPool({ transport: 'ws', address: '127.0.0.1:1', headers: { a: 1 } as never })).toThrow(/invalid option headers/);
    expect(() => createClientPool({ transport: 'ws', address: '127.0.0.1:1', agent: {} as never })).toThrow(/invalid option agent/);
    expect(() => createClientPool({ transport: 'ws', address: '127.0.0.1:1', idFormat: 'raw4' } as never)).toThrow(/invalid option idFormat: unknown option/);
    expect(() => createClientPool({ transport: 'ws', address: '127.0.0.1:1', tls: '2' })).toThrow(/invalid option hostname/);
  });
});
