/**
 * Issue 10, item 3: ws messages have a size limit by default (maxPayload
 * 1 MiB, the largest message this library sends). A peer that announces a
 * bigger one (here 1 GiB, of which it sends 1 KiB) is closed with 1009
 * before the payload is buffered, and counted, on the server (a hostile
 * client) and on the client (a hostile server). The library's own traffic,
 * written in 1 MiB messages, still passes.
 */
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { oversizedFrameHeader, wsOversized } from '../../bench/attacks.js';
import { createClientPool, createServerPool, type ClientPoolConfig } from '../../lib/pool-factory.js';
import { eventually } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { clientConfig, serverConfig, startKind, testCertificate, writeRandom, type Kind } from './support.js';

const scope = useTestScope();

function oversizedCount(stats: { transportStats: Record<string, unknown> }): unknown {
  return stats.transportStats.oversizedMessages;
}

/** Reads `total` bytes and hashes them. */
function hashRead(stream: Duplex, total: number, timeout = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let read = 0;
    const timer = setTimeout(() => reject(new Error(`read ${read} of ${total} bytes in ${timeout} ms`)), timeout);
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      read += chunk.length;
      if (read >= total) {
        clearTimeout(timer);
        resolve(hash.digest('hex'));
      }
    });
    stream.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}

describe.each<Kind>(['ws', 'wss'])('%s: a message above maxPayload', (kind) => {
  it('from a client: closed with 1009 and counted on the server; 3 MiB of the library\'s own writes still pass', async () => {
    const p = await scope.pair(startKind, kind, {}, { minCap: 1, maxCap: 1, minIvl: 20, maxIvl: 20 });
    await p.client.waitForActive(1, 10_000);
    const code = await wsOversized({ port: p.port, tls: kind === 'wss' });
    expect(code).toBe(1009);
    await eventually(() => oversizedCount(p.server.stats) === 1, 5000, 'the server to count the oversized message');
    // What the library itself writes (one write of 3 MiB leaves as 1 MiB messages) is within the default.
    const { server, client } = await scope.handOff(p);
    const total = 3 << 20;
    const [written, read] = await Promise.all([writeRandom(client, total, 7), hashRead(server, total)]);
    expect(read).toBe(written);
    expect(oversizedCount(p.server.stats)).toBe(1);
  }, 60_000);

  it('from a server: the client closes with 1009 and counts it', async () => {
    const closeCodes: number[] = [];
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    const { key, cert } = testCertificate();
    const hostile = kind === 'wss' ? https.createServer({ key, cert }) : http.createServer();
    hostile.on('upgrade', (request, socket, head) =>
      wss.handleUpgrade(request, socket, head, (ws) => {
        ws.on('error', () => undefined);
        ws.on('close', (code) => closeCodes.push(code));
        ws.send(Buffer.from([0, 0, 0, 1]), { binary: true });
        // Then the start of a 1 GiB message (a server's frames are not masked).
        setTimeout(() => socket.write(Buffer.concat([oversizedFrameHeader(1 << 30, false), Buffer.alloc(1024)])), 50);
      }),
    );
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    const sockets = new Set<net.Socket>();
    hostile.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    scope.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of sockets) socket.destroy();
          hostile.close(() => resolve());
        }),
    );
    const port = (hostile.address() as net.AddressInfo).port;
    const client = createClientPool({ ...clientConfig(kind, { minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50, maxBackoff: 200 }), address: `127.0.0.1:${port}` } as ClientPoolConfig);
    scope.defer(() => client.close());
    client.start();
    await eventually(() => closeCodes.includes(1009), 10_000, 'the client to close with 1009');
    expect(Number(oversizedCount(client.stats))).toBeGreaterThanOrEqual(1);
  }, 30_000);
});

it('maxPayload below the largest message this library sends is refused as an option', () => {
  expect(() => createServerPool(serverConfig('ws', { maxPayload: 64 * 1024 }))).toThrow(/maxPayload/);
  expect(() => createServerPool(serverConfig('ws', { maxPayload: 0 }))).toThrow(/maxPayload/);
});
