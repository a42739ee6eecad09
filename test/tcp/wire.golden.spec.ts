import { describe, expect, it } from '@jest/globals';
import type net from 'node:net';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { connect, eventually, listenRaw, readBytes, readToEnd } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

// Golden tests against ../shared/wire-traces: what crosses the wire, byte by byte.

const scope = useTestScope();

async function server(options: Parameters<typeof createServerPool>[0]) {
  const pool = createServerPool({ port: 0, ...options });
  await pool.start();
  scope.defer(() => pool.close());
  return pool;
}

/** Everything a raw client receives in its first chunk. */
async function firstChunk(port: number): Promise<{ socket: net.Socket; chunk: Buffer }> {
  const socket = await connect(port);
  scope.defer(() => void socket.destroy());
  const chunk = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
  return { socket, chunk };
}

describe('wire: server side (pool-v105.txt, pool-latest.txt)', () => {
  it('hex8 (default): the ID is 8 lowercase ASCII hex bytes in a single write, nothing else', async () => {
    const pool = await server({});
    const { chunk } = await firstChunk(pool.address()!.port);
    expect(chunk).toHaveLength(8);
    expect(chunk.toString('latin1')).toMatch(/^[0-9a-f]{8}$/);
    const [id, stream] = await pool.incomingGet(1000);
    scope.track(stream);
    expect(id).toBe(chunk.toString('latin1'));
  });

  it('raw4: 4 raw bytes, 00000000 first, then random', async () => {
    const pool = await server({ idFormat: 'raw4' });
    const first = await firstChunk(pool.address()!.port);
    expect(first.chunk.toString('hex')).toBe('00000000');
    const second = await firstChunk(pool.address()!.port);
    expect(second.chunk).toHaveLength(4);
    expect(second.chunk.toString('hex')).not.toBe('00000000');
    const taken = [await pool.incomingGet(1000), await pool.incomingGet(1000)];
    for (const [, stream] of taken) scope.track(stream);
    expect(taken.map(([id]) => id)).toEqual(['00000000', second.chunk.toString('hex')]);
  });

  it.each([
    ['IP mismatch', { allowedIps: '10.9.9.9' }],
    ['pool full', { maxCap: 1 }],
  ])('%s: a bare close, 0 bytes', async (_what, options) => {
    const pool = await server(options);
    if ('maxCap' in options) await firstChunk(pool.address()!.port); // takes the only slot
    const socket = await connect(pool.address()!.port);
    scope.defer(() => void socket.destroy());
    expect(await readToEnd(socket, 2000)).toHaveLength(0);
  });
});

describe('wire: client side against a raw Go-like server', () => {
  async function rawServer(reply: (socket: net.Socket) => void) {
    const raw = await listenRaw(reply);
    scope.defer(() => raw.close());
    return raw;
  }
  function client(port: number, extra: Parameters<typeof createClientPool>[0] = {}) {
    const pool = createClientPool({ address: `127.0.0.1:${port}`, minIvl: 20, maxIvl: 20, ...extra });
    scope.defer(() => pool.close());
    pool.start();
    return pool;
  }

  it('hex8: takes the 8 bytes as the ID and keeps the bytes written in the same segment', async () => {
    const raw = await rawServer((socket) => socket.write('edc60f09hello'));
    const pool = client(raw.port);
    const stream = await pool.outgoingGet('edc60f09', 3000);
    scope.defer(() => void stream.destroy());
    expect((await readBytes(stream, 5)).toString()).toBe('hello');
  });

  it('raw4: hex-encodes the 4 bytes', async () => {
    const raw = await rawServer((socket) => socket.write(Buffer.from([0x06, 0x2b, 0xff, 0x90, 0x41])));
    const pool = client(raw.port, { idFormat: 'raw4' });
    const stream = await pool.outgoingGet('062bff90', 3000);
    scope.defer(() => void stream.destroy());
    expect((await readBytes(stream, 1)).toString()).toBe('A');
  });

  it('an ID split over several segments is still read whole', async () => {
    const raw = await rawServer((socket) => {
      socket.write('abcd');
      setTimeout(() => socket.write('1234'), 30);
    });
    const pool = client(raw.port);
    const stream = await pool.outgoingGet('abcd1234', 3000);
    stream.destroy();
  });

  it.each([
    ['uppercase hex', 'EDC60F09'],
    ['non-hex', 'xyz12345'],
  ])('hex8 rejects %s: POOL_ERR_INVALID_ID counted, nothing pooled', async (_what, bytes) => {
    const raw = await rawServer((socket) => socket.write(bytes));
    const pool = client(raw.port);
    await eventually(() => (pool.stats.failures.POOL_ERR_INVALID_ID ?? 0) >= 1, 3000, 'an invalid-ID failure');
    expect(pool.active).toBe(0);
  });

  it('a close before the ID is a refusal (POOL_ERR_REFUSED); a short ID a handshake error', async () => {
    const refusing = await rawServer((socket) => socket.destroy());
    const a = client(refusing.port);
    const short = await rawServer((socket) => socket.end('abc'));
    const b = client(short.port);
    await eventually(() => (a.stats.failures.POOL_ERR_REFUSED ?? 0) >= 1, 3000, 'a refusal');
    await eventually(() => (b.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 1, 3000, 'a handshake failure');
    expect(a.active + b.active).toBe(0);
  });

  it('a server that never sends the ID is cut at handshakeTimeout', async () => {
    const raw = await rawServer(() => undefined);
    const pool = client(raw.port, { handshakeTimeout: 100 });
    await eventually(() => (pool.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 1, 3000, 'a handshake timeout');
    await eventually(() => raw.sockets.length > 0 && raw.sockets.every((s) => s.destroyed || s.readableEnded), 3000, 'the sockets closed');
  });
});
