import { describe, expect, it } from '@jest/globals';
import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { createClientPool } from '../../lib/pool-factory.js';
import { eventually, listenRaw, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

/** A client pool that redials fast: after the garbage, the same pool must get a real stream. */
const fast = { minCap: 1, maxCap: 1, minIvl: 20, maxIvl: 20, maxBackoff: 100, handshakeTimeout: 500 } as const;

describe('tcp client: a raw server sends garbage where the ID belongs', () => {
  it.each<[string, string, 'hex8' | 'raw4', (socket: net.Socket) => void]>([
    ['a non-hex ID', 'POOL_ERR_INVALID_ID', 'hex8', (s) => s.end('zzzzzzzz')],
    ['an uppercase hex ID', 'POOL_ERR_INVALID_ID', 'hex8', (s) => s.end('0BADC0DE')],
    ['a 7-byte ID, then a close (wrong length)', 'POOL_ERR_HANDSHAKE', 'hex8', (s) => s.end('0badc0d')],
    ['a 3-byte raw4 ID, then a close (wrong length)', 'POOL_ERR_HANDSHAKE', 'raw4', (s) => s.end(Buffer.from([1, 2, 3]))],
    ['a close before any byte (the bare-close refusal)', 'POOL_ERR_REFUSED', 'hex8', (s) => s.end()],
  ])('%s: dropped, counted as %s (%s); the same pool then takes a valid ID', async (_what, code, idFormat, garbage) => {
    let valid = false;
    const raw = await listenRaw((socket) => {
      socket.resume();
      if (valid) socket.write(idFormat === 'hex8' ? '0badc0de' : Buffer.from('0badc0de', 'hex'));
      else garbage(socket);
    });
    scope.defer(() => raw.close());
    const pool = createClientPool({ address: `127.0.0.1:${raw.port}`, idFormat, ...fast });
    scope.defer(() => pool.close());
    pool.start();
    await eventually(() => (pool.stats.failures[code] ?? 0) >= 1, 3000, `a ${code} failure`);
    expect(Object.keys(pool.stats.failures)).toEqual([code]);
    expect(pool.active).toBe(0);
    expect(pool.stats.totals.created).toBe(0);
    await eventually(() => raw.sockets.every((socket) => socket.destroyed), 2000, 'every garbage connection closed');
    valid = true;
    const stream = scope.track(await pool.outgoingGet('0badc0de', 5000));
    stream.write('ok');
    await eventually(() => raw.sockets.some((socket) => socket.bytesRead > 0), 2000, 'the server to get bytes on the stream');
  });
});

describe('ws client: a raw WebSocket server sends garbage where the ID belongs', () => {
  it.each<[string, string, number, (ws: WebSocket) => void]>([
    ['a 3-byte first message (short ID)', 'POOL_ERR_INVALID_ID', 1002, (ws) => ws.send(Buffer.from([1, 2, 3]))],
    ['an empty first message', 'POOL_ERR_INVALID_ID', 1002, (ws) => ws.send(Buffer.alloc(0))],
    ['a text first message', 'POOL_ERR_HANDSHAKE', 1003, (ws) => ws.send('0badc0de')],
    ['a close before any message', 'POOL_ERR_HANDSHAKE', 1000, (ws) => ws.close(1000)],
  ])('%s: dropped, counted as %s, closed with %s; the same pool then takes a valid ID', async (_what, code, closeCode, garbage) => {
    let valid = false;
    const closes: number[] = [];
    const httpServer = http.createServer();
    const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false });
    wss.on('connection', (ws) => {
      ws.on('error', () => undefined);
      ws.on('close', (c) => closes.push(c));
      if (valid) ws.send(Buffer.concat([Buffer.from('0badc0de', 'hex'), Buffer.from('hi')]));
      else garbage(ws);
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    scope.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const ws of wss.clients) ws.terminate();
          wss.close();
          httpServer.closeAllConnections();
          httpServer.close(() => resolve());
        }),
    );
    const port = (httpServer.address() as net.AddressInfo).port;
    const pool = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, ...fast });
    scope.defer(() => pool.close());
    pool.start();
    await eventually(() => (pool.stats.failures[code] ?? 0) >= 1, 3000, `a ${code} failure`);
    expect(Object.keys(pool.stats.failures)).toEqual([code]);
    expect(pool.active).toBe(0);
    await eventually(() => closes.length >= 1, 3000, 'the server to see the connection close');
    expect(closes[0]).toBe(closeCode);
    valid = true;
    const stream = scope.track(await pool.outgoingGet('0badc0de', 5000));
    expect((await readBytes(stream, 2)).toString()).toBe('hi');
  });
});

describe('ws client: an address ws cannot put in a URL', () => {
  // Regression: ws threw a URL SyntaxError synchronously and the pool counted it as UNKNOWN.
  it('a zoned IPv6 address is a dial failure (POOL_ERR_DIAL) that says why', async () => {
    const pool = createClientPool({ transport: 'ws', address: '[fe80::1%lo]:9', ...fast });
    scope.defer(() => pool.close());
    const errors: unknown[] = [];
    const transport = (pool as unknown as { transport: { dial: (context: unknown) => Promise<unknown> } }).transport;
    await transport.dial({ signal: new AbortController().signal, readId: true }).catch((error: unknown) => errors.push(error));
    expect(errors[0]).toMatchObject({ code: 'POOL_ERR_DIAL', message: expect.stringMatching(/IPv6 zone/) });
    pool.start();
    await eventually(() => (pool.stats.failures.POOL_ERR_DIAL ?? 0) >= 1, 3000, 'a POOL_ERR_DIAL failure');
    expect(Object.keys(pool.stats.failures)).toEqual(['POOL_ERR_DIAL']);
  });
});
