import { describe, expect, it } from '@jest/globals';
import net from 'node:net';
import tls from 'node:tls';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { readToEnd } from '../support/net.js';
import { acceptKey, clientFrame, Collector, OP, parseFrames, serverFrame, upgradeRequest, type WsServerConfig } from './ws-support.js';
import { useTestScope } from '../support/scope.js';

// Golden tests against ../shared/wire-traces/npws-server.txt and
// npws-client.txt: what crosses the wire, byte by byte, as the Go npws pools
// send it.

const scope = useTestScope();

async function server(options: WsServerConfig = {}): Promise<ServerPool> {
  const pool = createServerPool({ transport: 'ws', port: 0, keepAlive: 60_000, ...options });
  await pool.start();
  scope.defer(() => pool.close());
  return pool;
}

/** A raw client (the trace's wiredump) that sent the upgrade request. */
async function rawClient(port: number, path = '/', secure = false): Promise<Collector> {
  const socket = secure
    ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1', 'x-probe'] })
    : net.connect(port, '127.0.0.1');
  scope.defer(() => void socket.destroy());
  await new Promise<void>((resolve, reject) => {
    socket.once(secure ? 'secureConnect' : 'connect', () => resolve());
    socket.once('error', reject);
  });
  const collector = new Collector(socket);
  socket.write(upgradeRequest(port, path));
  return collector;
}

/** The 101 head and the frames after it, once `count` frames arrived. */
async function upgraded(client: Collector, count: number): Promise<{ head: string; frames: ReturnType<typeof parseFrames>['frames'] }> {
  const { head } = await client.head();
  const data = await client.wait((d) => parseFrames(d.subarray(d.indexOf('\r\n\r\n') + 4)).frames.length >= count, 5000, `${count} frames`);
  return { head, frames: parseFrames(data.subarray(data.indexOf('\r\n\r\n') + 4)).frames };
}

describe('wire: server side (npws-server.txt)', () => {
  it('101 with the accept for the trace’s key, then one unmasked BINARY frame of 4 bytes 00000000, then random IDs', async () => {
    const pool = await server();
    const client = await rawClient(pool.address()!.port);
    const { head, frames } = await upgraded(client, 1);
    expect(head.startsWith('HTTP/1.1 101 Switching Protocols\r\n')).toBe(true);
    expect(head).toMatch(/\r\nUpgrade: websocket\r\n/i);
    expect(head).toMatch(/\r\nConnection: Upgrade\r\n/i);
    // The trace's key and the accept the Go server answered with.
    expect(acceptKey('ogmQ7FkgsoPEruRI67alig==')).toBe('nDIui0nbnFJHz5zD1NhHhYxeatI=');
    expect(head).toContain('\r\nSec-WebSocket-Accept: nDIui0nbnFJHz5zD1NhHhYxeatI=\r\n');
    expect(head).not.toMatch(/Sec-WebSocket-Extensions/i);
    // Byte for byte: fin + BINARY, unmasked, length 4, 00000000.
    expect(client.data.subarray(client.data.indexOf('\r\n\r\n') + 4).subarray(0, 6).toString('hex')).toBe('820400000000');
    expect(frames).toEqual([{ fin: true, opcode: OP.BINARY, masked: false, payload: Buffer.from('00000000', 'hex') }]);

    const second = await upgraded(await rawClient(pool.address()!.port), 1);
    expect(second.frames[0]!.payload).toHaveLength(4);
    expect(second.frames[0]!.payload.toString('hex')).not.toBe('00000000');
    const taken = [await pool.incomingGet(1000), await pool.incomingGet(1000)];
    for (const [, stream] of taken) scope.defer(() => void stream.destroy());
    expect(taken.map(([id]) => id)).toEqual(['00000000', second.frames[0]!.payload.toString('hex')]);
  });

  it('the trace’s exchange on an idle stream: BINARY "hello", PING "pp", CLOSE 1000 → PONG "pp", CLOSE 1000, EOF; the bytes wait for the taker', async () => {
    const pool = await server();
    const client = await rawClient(pool.address()!.port);
    await upgraded(client, 1);
    client.socket.write(Buffer.concat([clientFrame(OP.BINARY, 'hello'), clientFrame(OP.PING, 'pp'), clientFrame(OP.CLOSE, Buffer.from([0x03, 0xe8]))]));
    const { frames } = await upgraded(client, 3);
    expect(frames.slice(1)).toEqual([
      { fin: true, opcode: OP.PONG, masked: false, payload: Buffer.from('pp') },
      { fin: true, opcode: OP.CLOSE, masked: false, payload: Buffer.from('03e8', 'hex') },
    ]);
    await client.wait(() => client.ended, 5000, 'EOF');
    const [id, stream] = await pool.incomingGet(1000);
    scope.defer(() => void stream.destroy());
    expect(id).toBe('00000000');
    expect((await readToEnd(stream, 2000)).toString()).toBe('hello');
  });

  it('a text message is answered with CLOSE 1003, as the Go server does', async () => {
    const pool = await server();
    const client = await rawClient(pool.address()!.port);
    await upgraded(client, 1);
    client.socket.write(clientFrame(OP.TEXT, 'hello'));
    const { frames } = await upgraded(client, 2);
    expect(frames[1]).toMatchObject({ opcode: OP.CLOSE, masked: false, payload: Buffer.from('03eb', 'hex') });
    await client.wait(() => client.ended, 5000, 'EOF');
  });

  it('path: "/" by default (a Go client asks for "/"; another path is 404); "*" accepts any path, as the Go server', async () => {
    const strict = await server();
    const refused = await rawClient(strict.address()!.port, '/any/other/path');
    const { head, body } = await refused.head();
    expect(head.startsWith('HTTP/1.1 404 Not Found\r\n')).toBe(true);
    await refused.wait(() => refused.ended, 5000, 'EOF');
    expect(body.toString()).toBe('not found\n');
    const any = await server({ path: '*' });
    const accepted = await upgraded(await rawClient(any.address()!.port, '/any/other/path'), 1);
    expect(accepted.head.startsWith('HTTP/1.1 101 ')).toBe(true);
    expect(accepted.frames[0]!.payload.toString('hex')).toBe('00000000');
  });

  it.each<[string, WsServerConfig, string, string]>([
    ['client-ip mismatch', { allowedIps: '10.9.9.9' }, '403 Forbidden', 'unauthorized\n'],
    ['pool full (maxCap 1)', { maxCap: 1 }, '503 Service Unavailable', 'pool full\n'],
  ])('%s: Go’s status and body before any upgrade, then EOF', async (_what, options, status, body) => {
    const pool = await server(options);
    if ('maxCap' in options) await upgraded(await rawClient(pool.address()!.port), 1); // takes the only slot
    const client = await rawClient(pool.address()!.port);
    await client.wait(() => client.ended, 5000, 'EOF');
    const all = client.data.toString('latin1');
    const [head, rest] = [all.slice(0, all.indexOf('\r\n\r\n') + 4), all.slice(all.indexOf('\r\n\r\n') + 4)];
    expect(head.startsWith(`HTTP/1.1 ${status}\r\n`)).toBe(true);
    expect(head).toContain('\r\nContent-Type: text/plain; charset=utf-8\r\n');
    expect(head).toContain('\r\nX-Content-Type-Options: nosniff\r\n');
    expect(head).toContain(`\r\nContent-Length: ${body.length}\r\n`);
    expect(head).not.toMatch(/Sec-WebSocket-Accept/i);
    expect(rest).toBe(body); // and no frame after it: no upgrade happened
    expect(pool.stats.transportStats['upgrades']).toBe('maxCap' in options ? 1 : 0);
  });

  it('wss: TLS 1.3, no ALPN chosen (offered h2, http/1.1, x-probe), then the same 101 and 00000000 frame', async () => {
    const pool = await server({ tls: 'self-signed' });
    const client = await rawClient(pool.address()!.port, '/', true);
    const socket = client.socket as tls.TLSSocket;
    expect(socket.getProtocol()).toBe('TLSv1.3');
    expect(socket.alpnProtocol).toBe(false);
    const { head, frames } = await upgraded(client, 1);
    expect(head.startsWith('HTTP/1.1 101 ')).toBe(true);
    expect(frames[0]).toEqual({ fin: true, opcode: OP.BINARY, masked: false, payload: Buffer.from('00000000', 'hex') });
  });
});

describe('wire: client side (npws-client.txt)', () => {
  /** A raw WebSocket server that upgrades every request and sends IDs dead0001, dead0002... */
  async function rawServer() {
    const requests: string[] = [];
    const clients: Collector[] = [];
    const server = net.createServer((socket) => {
      const collector = new Collector(socket);
      clients.push(collector);
      void collector.head().then(({ head }) => {
        requests.push(head);
        const key = /\r\nSec-WebSocket-Key: ([^\r]+)\r\n/i.exec(head)?.[1] ?? '';
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptKey(key)}\r\n\r\n`);
        socket.write(serverFrame(OP.BINARY, Buffer.from(`dead000${requests.length}`, 'hex')));
      }, () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    scope.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const client of clients) client.socket.destroy();
          server.close(() => resolve());
        }),
    );
    return { port: (server.address() as net.AddressInfo).port, requests, clients };
  }

  it('the upgrade request: GET / HTTP/1.1, version 13, a key, no permessage-deflate offer; frames masked; end() = CLOSE 1000', async () => {
    const raw = await rawServer();
    const pool = createClientPool({ transport: 'ws', address: `127.0.0.1:${raw.port}`, keepAlive: 60_000, minIvl: 20, maxIvl: 20 });
    scope.defer(() => pool.close());
    pool.start();
    const stream = await pool.outgoingGet('dead0001', 5000);
    scope.defer(() => void stream.destroy());
    const request = raw.requests[0]!;
    expect(request.startsWith('GET / HTTP/1.1\r\n')).toBe(true);
    expect(request).toMatch(/\r\nUpgrade: websocket\r\n/i);
    expect(request).toMatch(/\r\nConnection: Upgrade\r\n/i);
    expect(request).toMatch(/\r\nSec-WebSocket-Version: 13\r\n/i);
    expect(request).toMatch(/\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n/i);
    expect(request).toMatch(new RegExp(`\\r\\nHost: 127\\.0\\.0\\.1:${raw.port}\\r\\n`, 'i'));
    expect(request).not.toMatch(/Sec-WebSocket-Extensions|permessage-deflate/i);

    stream.write('GOPEER-ECHO-0123');
    stream.end();
    const first = raw.clients[0]!;
    const afterHead = (d: Buffer): Buffer => d.subarray(d.indexOf('\r\n\r\n') + 4);
    const data = await first.wait((d) => parseFrames(afterHead(d)).frames.length >= 2, 5000, 'two frames');
    const { frames } = parseFrames(afterHead(data));
    expect(frames).toEqual([
      { fin: true, opcode: OP.BINARY, masked: true, payload: Buffer.from('GOPEER-ECHO-0123') },
      { fin: true, opcode: OP.CLOSE, masked: true, payload: Buffer.from('03e8', 'hex') },
    ]);
    // The pool refills with a new connection, which gets the next ID.
    await pool.waitForActive(1, 5000);
    expect(raw.requests).toHaveLength(2);
    const next = await pool.outgoingGet('dead0002', 1000);
    scope.defer(() => void next.destroy());
  });
});
