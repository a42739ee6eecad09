import { describe, expect, it } from '@jest/globals';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type net from 'node:net';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes, readToEnd, sleep } from '../support/net.js';
import { testCertificate } from './h2-support.js';
import { useTestScope } from '../support/scope.js';

// Golden tests against ../shared/wire-traces/nph2-server.txt and nph2-client.txt:
// a raw node:http2 peer on the other side observes what crosses the wire.

const scope = useTestScope();

describe('wire: server side (nph2-server.txt), seen by a raw HTTP/2 client', () => {
  async function serverPool(options: Record<string, unknown> = {}) {
    const pool = createServerPool({ transport: 'http2', port: 0, tls: testCertificate(), ...options });
    await pool.start();
    scope.defer(() => pool.close());
    return pool;
  }
  async function rawClient(port: number): Promise<ClientHttp2Session> {
    const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    scope.defer(() => void session.destroy());
    session.on('error', () => undefined);
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    return session;
  }
  function post(session: ClientHttp2Session, path = '/stream', method = 'POST'): ClientHttp2Stream {
    const stream = session.request({ ':method': method, ':path': path, ':authority': 'localhost' }, { endStream: false });
    stream.on('error', () => undefined);
    return stream;
  }
  const response = (stream: ClientHttp2Stream) => new Promise<IncomingHttpHeaders>((resolve) => stream.once('response', resolve));
  const firstChunk = (stream: ClientHttp2Stream) => new Promise<Buffer>((resolve) => stream.once('data', resolve));

  it('advertises SETTINGS_MAX_CONCURRENT_STREAMS = maxCap and the tuned stream window', async () => {
    const pool = await serverPool({ maxCap: 7 });
    const session = await rawClient(pool.address()!.port);
    expect(session.alpnProtocol).toBe('h2');
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
    expect(session.remoteSettings.initialWindowSize).toBe(1024 * 1024);
    expect(session.remoteSettings.enableConnectProtocol).toBe(false);
  });

  it('POST /stream: nothing before the 0x00 byte, then 200 and the ID as 4 raw bytes in one DATA frame, 00000000 first', async () => {
    const pool = await serverPool();
    const session = await rawClient(pool.address()!.port);
    const first = post(session);
    let answered = false;
    first.once('response', () => (answered = true));
    await sleep(300);
    expect(answered).toBe(false); // the server waits for the client's first byte
    const headers = response(first);
    const idChunk = firstChunk(first);
    first.write(Buffer.of(0));
    expect((await headers)[':status']).toBe(200);
    expect((await headers)['content-type']).toBe('application/octet-stream');
    expect((await headers)['content-length']).toBeUndefined();
    expect((await idChunk).toString('hex')).toBe('00000000');
    const second = post(session);
    const secondChunk = firstChunk(second);
    second.write(Buffer.of(0));
    const id = await secondChunk;
    expect(id).toHaveLength(4);
    expect(id.toString('hex')).not.toBe('00000000');
    const [firstId, firstStream] = await pool.incomingGet(1000);
    scope.defer(() => void firstStream.destroy());
    expect(firstId).toBe('00000000');
    const [secondId, stream] = await pool.incomingGet(1000);
    scope.defer(() => void stream.destroy());
    expect(secondId).toBe(id.toString('hex'));
    // Echo over the request and response bodies, then half-close (trace: "hello", END_STREAM).
    second.write('hello');
    expect((await readBytes(stream, 5)).toString()).toBe('hello');
    second.end();
    expect((await readToEnd(stream, 2000)).length).toBe(0);
    stream.end('bye');
    expect((await readToEnd(second, 2000)).toString()).toBe('bye');
  });

  it.each([
    ['POST /other', '/other', 'POST'],
    ['GET /stream', '/stream', 'GET'],
  ])('%s: 404 "not found\\n" with content-length 10, then the stream is closed', async (_what, path, method) => {
    const pool = await serverPool();
    const session = await rawClient(pool.address()!.port);
    const stream = post(session, path, method);
    const headers = await response(stream);
    expect(headers[':status']).toBe(404);
    expect(headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(headers['content-length']).toBe('10');
    expect((await readToEnd(stream, 2000)).toString()).toBe('not found\n');
    await eventually(() => stream.closed, 2000, 'the stream to be closed');
    expect(pool.stats.refusals['not-found']).toBe(1);
  });

  it('a peer address not allowed: 403 "unauthorized\\n" (before the 0x00 byte)', async () => {
    const pool = await serverPool({ allowedIps: '10.9.9.9' });
    const session = await rawClient(pool.address()!.port);
    const stream = post(session);
    const headers = await response(stream);
    expect(headers[':status']).toBe(403);
    expect(headers['content-length']).toBe('13');
    expect((await readToEnd(stream, 2000)).toString()).toBe('unauthorized\n');
    expect(pool.stats.refusals.ip).toBe(1);
  });

  it('a full pool: 404 (when the stream limit lets the request in at all)', async () => {
    const pool = await serverPool({ maxCap: 1, maxConcurrentStreams: 2 });
    const session = await rawClient(pool.address()!.port);
    const first = post(session);
    first.write(Buffer.of(0));
    expect((await response(first))[':status']).toBe(200);
    const second = post(session);
    second.write(Buffer.of(0));
    expect((await response(second))[':status']).toBe(404);
    expect(pool.stats.refusals.full).toBe(1);
  });
});

describe('wire: client side (nph2-client.txt), seen by a raw HTTP/2 server', () => {
  interface Seen {
    headers: IncomingHttpHeaders;
    stream: ServerHttp2Stream;
    firstData: Promise<Buffer>;
  }
  async function rawServer(onStream: (seen: Seen) => void = () => undefined) {
    const server = http2.createSecureServer({ ...testCertificate(), allowHTTP1: false });
    const seen: Seen[] = [];
    const pings: Buffer[] = [];
    server.on('session', (session) => {
      session.on('error', () => undefined);
      session.on('ping', (payload: Buffer) => pings.push(payload));
    });
    server.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      const entry = { headers, stream, firstData: new Promise<Buffer>((resolve) => stream.once('data', resolve)) };
      seen.push(entry);
      onStream(entry);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    scope.defer(
      () =>
        new Promise<void>((resolve) => {
          for (const entry of seen) entry.stream.destroy();
          server.close(() => resolve());
        }),
    );
    return { port: (server.address() as net.AddressInfo).port, seen, pings };
  }
  function clientPool(port: number, options: Record<string, unknown> = {}) {
    const pool = createClientPool({ transport: 'http2', address: `127.0.0.1:${port}`, tls: '1', minIvl: 50, maxIvl: 50, ...options });
    scope.defer(() => pool.close());
    pool.start();
    return pool;
  }

  it('sends POST /stream with :authority = hostname (no port), no content-length, and the 0x00 byte before any answer', async () => {
    const raw = await rawServer();
    clientPool(raw.port, { hostname: 'example.test' });
    await eventually(() => raw.seen.length === 1, 5000, 'a request');
    const [{ headers, firstData }] = raw.seen as [Seen];
    expect(headers[':method']).toBe('POST');
    expect(headers[':path']).toBe('/stream');
    expect(headers[':scheme']).toBe('https');
    expect(headers[':authority']).toBe('example.test');
    expect(headers['content-length']).toBeUndefined();
    // Nothing was answered, yet the byte is here.
    expect((await firstData).toString('hex')).toBe('00');
  });

  it(':authority defaults to the address host, without the port', async () => {
    const raw = await rawServer();
    clientPool(raw.port);
    await eventually(() => raw.seen.length === 1, 5000, 'a request');
    expect(raw.seen[0]!.headers[':authority']).toBe('127.0.0.1');
  });

  it('hex-encodes the 4 ID bytes and keeps the bytes after them for the application', async () => {
    const raw = await rawServer(({ stream, firstData }) => {
      void firstData.then(() => {
        stream.respond({ ':status': 200, 'content-type': 'application/octet-stream' });
        stream.write(Buffer.concat([Buffer.from('062bff90', 'hex'), Buffer.from('payload')]));
      });
    });
    const pool = clientPool(raw.port, { minCap: 1, maxCap: 1 });
    const stream = await pool.outgoingGet('062bff90', 5000);
    scope.defer(() => void stream.destroy());
    expect((await readBytes(stream, 7)).toString()).toBe('payload');
  });

  it('any status but 200 is a refusal, never an ID, even with 4 bytes of body', async () => {
    const raw = await rawServer(({ stream }) => {
      stream.respond({ ':status': 503 });
      stream.end('abcd');
    });
    const pool = clientPool(raw.port, { minCap: 1, maxCap: 1 });
    await eventually(() => (pool.stats.failures.POOL_ERR_FULL ?? 0) >= 1, 5000, 'a refusal');
    expect(pool.active).toBe(0);
    await expect(pool.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_FULL',
      message: expect.stringMatching(/status 503/),
    });
  });

  it('sends a PING every keepAlive', async () => {
    const raw = await rawServer(({ stream, firstData }) => {
      void firstData.then(() => {
        stream.respond({ ':status': 200 });
        stream.write(Buffer.from('11111111', 'hex'));
      });
    });
    const pool = clientPool(raw.port, { minCap: 1, maxCap: 1, keepAlive: 100 });
    await pool.waitForActive(1, 5000);
    await eventually(() => raw.pings.length >= 3, 5000, 'three PINGs');
    expect(raw.pings[0]).toHaveLength(8);
    expect(typeof pool.stats.transportStats.lastPingRttMs).toBe('number');
  });
});
