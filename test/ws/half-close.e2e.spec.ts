/**
 * Issue 10, item 2, ws half-close: between two ends of this library a
 * pooled WebSocket stream is half-open like tcp and http2 (the extension in
 * docs/extensions/ws-half-close.md, negotiated in the upgrade); with a peer
 * that cannot half-close, data that can no longer be delivered surfaces as
 * an error, never as a short clean end. Go-like peers (a plain `ws` client
 * or server, no header) see the same wire as before.
 */
import { describe, expect, it } from '@jest/globals';
import type http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import WebSocket, { WebSocketServer } from 'ws';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { useTestScope } from '../support/scope.js';
import { closedOf, readHashed, startKind, writeRandom } from '../reliability/support.js';
import { readOutcome } from '../cut/cut-support.js';

const scope = useTestScope();
const MiB = 1 << 20;
const HEADER = 'x-tunnel-pool-half-close';

/** A ws server pool alone (no client pool of ours), for peers the test drives. */
async function wsServerPool(): Promise<{ server: ServerPool; port: number }> {
  const server = createServerPool({ transport: 'ws', host: '127.0.0.1', port: 0 });
  await server.start();
  scope.defer(() => server.close());
  return { server, port: server.address()!.port };
}

describe.each(['ws', 'wss'] as const)('%s half-close between two ends of this library', (kind) => {
  it('request, end(), then a 4 MiB reply: every byte crosses both ways, then both ends close cleanly', async () => {
    const p = await scope.pair(startKind, kind, {}, { minCap: 1, maxCap: 1 });
    const { client, server } = await scope.handOff(p);
    // The client sends its request and its end...
    const [requestWritten, requestRead] = await Promise.all([
      writeRandom(client, 4 * MiB, 1).then((hash) => {
        client.end();
        return hash;
      }),
      readHashed(server, 4 * MiB),
    ]);
    expect(requestRead).toBe(requestWritten);
    // ...the server reads that end, then answers on the half-open stream.
    expect(await readOutcome(server)).toMatchObject({ first: 'end', bytes: 0 });
    const [replyWritten, replyRead] = await Promise.all([writeRandom(server, 4 * MiB, 2), readHashed(client, 4 * MiB)]);
    expect(replyRead).toBe(replyWritten);
    const clientEnd = readOutcome(client);
    server.end();
    expect(await clientEnd).toMatchObject({ first: 'end', bytes: 0 });
    await Promise.all([closedOf(client, 20_000), closedOf(server, 20_000)]);
    expect(client.errored).toBeNull();
    expect(server.errored).toBeNull();
  });

  it('a pipe() echo: the client ends first and still reads the whole echo', async () => {
    const p = await scope.pair(startKind, kind, {}, { minCap: 1, maxCap: 1 });
    const { client, server } = await scope.handOff(p);
    server.pipe(server); // echo, and end after the request's end
    const read = readHashed(client, 4 * MiB);
    const written = await writeRandom(client, 4 * MiB, 3);
    client.end();
    expect(await read).toBe(written);
    expect(await readOutcome(client)).toMatchObject({ first: 'end', bytes: 0 });
  });
});

describe('ws half-close: negotiation and peers that cannot half-close', () => {
  it('a Go-like client (no offer) gets no answer header, and its data and close 1000 cross as before', async () => {
    const p = await wsServerPool();
    const headers: http.IncomingHttpHeaders[] = [];
    const goLike = new WebSocket(`ws://127.0.0.1:${p.port}/`, { perMessageDeflate: false });
    scope.defer(() => void goLike.terminate());
    goLike.on('upgrade', (response) => headers.push(response.headers));
    const idMessage = new Promise<Buffer>((resolve) => goLike.once('message', (data) => resolve(data as Buffer)));
    await new Promise<void>((resolve, reject) => {
      goLike.once('open', () => resolve());
      goLike.once('error', reject);
    });
    expect(headers[0]![HEADER]).toBeUndefined();
    expect((await idMessage).toString('hex')).toBe('00000000');
    const [, server] = await p.server.incomingGet(5000);
    scope.track(server);
    const outcome = readOutcome(server, 20_000, true);
    goLike.send(Buffer.from('from a Go peer'));
    goLike.close(1000);
    const result = await outcome;
    expect(result.first).toBe('end');
    expect(Buffer.concat(result.data).toString()).toBe('from a Go peer');
  });

  it('toward a Go-like client, end() is still close 1000 (no end-of-data message on its wire)', async () => {
    const p = await wsServerPool();
    const goLike = new WebSocket(`ws://127.0.0.1:${p.port}/`, { perMessageDeflate: false });
    scope.defer(() => void goLike.terminate());
    const messages: Buffer[] = [];
    goLike.on('message', (data) => messages.push(data as Buffer));
    const closed = new Promise<number>((resolve) => goLike.once('close', (code) => resolve(code)));
    const [, server] = await p.server.incomingGet(5000);
    scope.track(server);
    server.end('bye');
    expect(await closed).toBe(1000);
    expect(messages.map((m) => m.toString())).toEqual(['\0\0\0\0', 'bye']);
  });

  it('the client offers the extension and the server answers it; halfClose: false on either side turns it off', async () => {
    const seen: Array<string | undefined> = [];
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
    wss.on('connection', (ws, request) => {
      seen.push(request.headers[HEADER] as string | undefined);
      ws.send(Buffer.from('0badc0de', 'hex'));
    });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    scope.defer(() => new Promise<void>((resolve) => { for (const c of wss.clients) c.terminate(); wss.close(() => resolve()); }));
    const port = (wss.address() as net.AddressInfo).port;
    for (const halfClose of [true, false]) {
      const pool = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, minCap: 1, maxCap: 1, minIvl: 20, maxIvl: 20, halfClose });
      scope.defer(() => pool.close());
      pool.start();
      scope.track(await pool.outgoingGet('0badc0de', 5000));
    }
    expect(seen).toEqual(['1', undefined]);
  });

  it.each([
    ['the client', {}, { halfClose: false }],
    ['the server', { halfClose: false }, {}],
  ])('without the extension (%s turned it off), request, end(), reply: the end()ing side errors instead of reading a short reply; the replying side errors too', async (_who, serverExtra, clientExtra) => {
    const p = await scope.pair(startKind, 'ws', serverExtra, { minCap: 1, maxCap: 1, ...clientExtra });
    const { client, server } = await scope.handOff(p);
    server.on('error', () => undefined);
    // Request, FIN, reply: the server answers once it has read the request's end.
    const serverOutcome = new Promise<Error | null>((resolve) => {
      server.once('error', (error) => resolve(error));
      server.once('close', () => resolve(server.errored));
    });
    server.on('end', () => void writeRandom(server, 2 * MiB, 5).catch(() => undefined));
    server.resume();
    const outcome = readOutcome(client);
    await writeRandom(client, 2 * MiB, 4);
    client.end();
    const result = await outcome;
    expect(result.first).toBe('error');
    expect(result.error).toMatchObject({ code: 'ERR_WS_HALF_CLOSE_UNSUPPORTED', name: 'WsStreamError', closeCode: expect.any(Number) });
    expect(result.bytes).toBeLessThan(2 * MiB);
    // The echo that could no longer be delivered is an error on the echoing side too.
    expect(await serverOutcome).toMatchObject({ code: expect.stringMatching(/^(EPIPE|ERR_STREAM_WRITE_AFTER_END|ERR_STREAM_DESTROYED)$/) });
  });

  it('data after the end-of-data message is a protocol error (close 1002), not more stream', async () => {
    const p = await wsServerPool();
    const peer = new WebSocket(`ws://127.0.0.1:${p.port}/`, { perMessageDeflate: false, headers: { 'X-Tunnel-Pool-Half-Close': '1' } });
    scope.defer(() => void peer.terminate());
    const closed = new Promise<number>((resolve) => peer.once('close', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      peer.once('open', () => resolve());
      peer.once('error', reject);
    });
    const [, server] = await p.server.incomingGet(5000);
    scope.track(server);
    server.on('error', () => undefined);
    server.resume();
    peer.send(Buffer.alloc(0));
    peer.send(Buffer.from('after the end'));
    expect(await closed).toBe(1002);
    expect(server.errored).toMatchObject({ code: 'ERR_WS_DATA_AFTER_END' });
  });
});
