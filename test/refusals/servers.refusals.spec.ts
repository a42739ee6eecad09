import { beforeAll, describe, expect, it } from '@jest/globals';
import { constants } from 'node:http2';
import { createSelfSignedCertificate, type GeneratedCertificate } from '../../lib/certs/index.js';
import { createServerPool } from '../../lib/pool-factory.js';
import { readBytes } from '../support/net.js';
import { startPair, type PoolPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { upgradeRequest } from '../ws/ws-support.js';
import { byName, expectOneRefusal, expectStillServing, h2Session, noise, openRaw, refusals, statusOf, type ServerKind } from './support.js';

const scope = useTestScope();

let certificate: GeneratedCertificate;
beforeAll(() => {
  certificate = createSelfSignedCertificate({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
});

/** A server pool of `kind` and a real client pool holding one stream of it. */
async function pairOf(kind: ServerKind): Promise<PoolPair> {
  const p = await scope.pair(startPair, { ...kind.server(certificate), handshakeTimeout: 2000 }, { ...kind.client, minCap: 1, maxCap: 1 });
  await p.client.waitForActive(1, 5000);
  return p;
}

describe.each(byName('tls', 'http2', 'wss'))('$name server: random bytes instead of a TLS ClientHello', (kind) => {
  it("drops the connection, counts it as 'tls', pools nothing, and serves a real client right after", async () => {
    const p = await pairOf(kind);
    const before = refusals(p);
    const accepted = p.server.stats.totals.accepted;
    const raw = await openRaw(scope, p.port, false);
    raw.socket.write(noise(512));
    await raw.closed();
    expect(raw.received.data.length).toBeLessThan(64); // at most a TLS alert, never an ID
    await expectOneRefusal(p, before, 'tls');
    expect(p.server.stats.totals.accepted).toBe(accepted);
    await expectStillServing(scope, p);
  });
});

describe.each(byName('tls', 'http2', 'ws', 'wss'))('$name server: a peer that connects and closes without a byte', (kind) => {
  // Regression (found by the TLS servers' property): ws and wss did not count it at all, http2 counted it as 'tls'.
  it("is counted as 'closed-in-handshake', and the server keeps serving", async () => {
    const p = await pairOf(kind);
    const before = refusals(p);
    const raw = await openRaw(scope, p.port, false);
    raw.socket.end();
    await raw.closed();
    await expectOneRefusal(p, before, 'closed-in-handshake');
    await expectStillServing(scope, p);
  });
});

describe('tcp server (plain): there is no client protocol to violate', () => {
  it('bytes a client sends are pooled as the stream\'s first application data, in order; a real client is served too', async () => {
    const server = createServerPool({ port: 0 });
    await server.start();
    scope.defer(() => server.close());
    const raw = await openRaw(scope, server.address()!.port, false);
    raw.socket.write(noise(64));
    const id = (await raw.received.wait((data) => data.length >= 8)).subarray(0, 8).toString('latin1');
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    const [taken, stream] = await server.incomingGet(2000);
    scope.track(stream);
    expect(taken).toBe(id);
    expect((await readBytes(stream, 64)).equals(noise(64))).toBe(true);
    expect(server.stats.refusals).toEqual({});
  });
});

describe('http2 server: HTTP/1.1 instead of HTTP/2', () => {
  const [kind] = byName('http2');
  const request = 'GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n';

  it("in the clear (no TLS): dropped, counted as 'tls'", async () => {
    const p = await pairOf(kind!);
    const before = refusals(p);
    const raw = await openRaw(scope, p.port, false);
    raw.socket.write(request);
    await raw.closed();
    expect(raw.received.data.toString('latin1')).not.toMatch(/^HTTP\//);
    await expectOneRefusal(p, before, 'tls');
    await expectStillServing(scope, p);
  });

  it("over TLS with ALPN http/1.1: dropped after TLS, counted as 'alpn'", async () => {
    const p = await pairOf(kind!);
    const before = refusals(p);
    const opened = await openRaw(scope, p.port, true, ['http/1.1']).then(
      (raw) => ({ raw }),
      (error: unknown) => ({ error: error as { code?: string } }),
    );
    // Node's TLS server answers a client without a common protocol with a fatal alert (no_application_protocol).
    if ('raw' in opened) {
      opened.raw.socket.write(request);
      await opened.raw.closed();
      expect(opened.raw.received.data.length).toBe(0);
    } else {
      expect(opened.error.code).toMatch(/ERR_SSL|ECONNRESET/);
    }
    await expectOneRefusal(p, before, 'alpn');
    await expectStillServing(scope, p);
  });

  it.each<[string, string, Array<string | Buffer>]>([
    ['an HTTP/1.1 request where the connection preface belongs', 'bad-preface', [request]],
    ['the connection preface then frames that are not HTTP/2', 'h2-protocol', ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', Buffer.alloc(24, 0xff)]],
  ])("over TLS with ALPN h2, %s: dropped, counted as '%s'", async (_what, reason, bytes) => {
    const p = await pairOf(kind!);
    const before = refusals(p);
    const raw = await openRaw(scope, p.port, true, ['h2']);
    for (const piece of bytes) raw.socket.write(piece);
    await raw.closed();
    expect(raw.received.data.toString('latin1')).not.toMatch(/HTTP\/1\.1/);
    await expectOneRefusal(p, before, reason);
    await expectStillServing(scope, p);
  });

  it("a request for another path: 404, counted as 'not-found'", async () => {
    const p = await pairOf(kind!);
    const before = refusals(p);
    const session = h2Session(scope, p.port);
    const stream = session.request({ ':method': 'GET', ':path': '/' });
    stream.on('error', () => undefined);
    const status = await new Promise<number>((resolve) => stream.once('response', (headers) => resolve(Number(headers[':status']))));
    expect(status).toBe(404);
    await expectOneRefusal(p, before, 'not-found');
    await expectStillServing(scope, p);
  });

  it("POST /stream that ends before its first byte: cancelled, counted as 'closed-in-handshake'", async () => {
    const p = await pairOf(kind!);
    const before = refusals(p);
    const session = h2Session(scope, p.port);
    const stream = session.request({ ':method': 'POST', ':path': '/stream' }, { endStream: true });
    stream.on('error', () => undefined);
    let responded = false;
    stream.once('response', () => (responded = true));
    await new Promise((resolve) => stream.once('close', resolve));
    expect(responded).toBe(false);
    await expectOneRefusal(p, before, 'closed-in-handshake');
    await expectStillServing(scope, p);
  });

  it('an oversized header block: Node ends the session (GOAWAY COMPRESSION_ERROR) below the pool; nothing pooled, others served', async () => {
    const p = await pairOf(kind!);
    const before = refusals(p);
    const accepted = p.server.stats.totals.accepted;
    // A Node client refuses to send a header list above the server's SETTINGS_MAX_HEADER_LIST_SIZE
    // itself (RST_STREAM REFUSED_STREAM, nothing sent); a larger send block gets it onto the wire.
    const session = h2Session(scope, p.port, { maxSendHeaderBlockLength: 1 << 20 });
    const goaway = new Promise<number>((resolve) => session.once('goaway', (code) => resolve(code)));
    const stream = session.request({ ':method': 'POST', ':path': '/stream', 'x-padding': 'a'.repeat(256 * 1024) }, { endStream: false });
    stream.on('error', () => undefined);
    stream.write(Buffer.of(0));
    await new Promise((resolve) => stream.once('close', resolve));
    expect(await goaway).toBe(constants.NGHTTP2_COMPRESSION_ERROR);
    expect(p.server.stats.totals.accepted).toBe(accepted);
    // Finding: nghttp2 ends the session before Node emits any event the transport could count.
    expect(p.server.stats.refusals).toEqual(before);
    await expectStillServing(scope, p);
  });
});

describe.each(byName('ws', 'wss'))('$name server: HTTP that is not a WebSocket upgrade', (kind) => {
  // what, status answered, reason counted, the request
  const cases: Array<[string, number, string, (port: number) => string | Buffer]> = [
    ['a plain GET / (no upgrade)', 426, 'not-upgrade', (port) => `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`],
    [
      'an upgrade without Sec-WebSocket-Key',
      400,
      'bad-upgrade',
      (port) => `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ],
    ['an upgrade with an unsupported version', 400, 'bad-upgrade', (port) => upgradeRequest(port).replace('Sec-WebSocket-Version: 13', 'Sec-WebSocket-Version: 99')],
    ['an upgrade by POST', 405, 'bad-upgrade', (port) => upgradeRequest(port).replace(/^GET/, 'POST')],
    ['an upgrade to another path', 404, 'path', (port) => upgradeRequest(port, '/elsewhere')],
    ['64 KiB of request headers', 431, 'headers-too-large', (port) => upgradeRequest(port, '/', `X-Padding: ${'a'.repeat(64 * 1024)}\r\n`)],
    ['bytes that are not HTTP', 400, 'bad-request', () => noise(256)],
  ];

  it.each(cases)("%s: answered %s, counted as '%s', and the server keeps serving", async (_what, status, reason, request) => {
    const p = await pairOf(kind);
    const before = refusals(p);
    const accepted = p.server.stats.totals.accepted;
    const raw = await openRaw(scope, p.port, kind.tls);
    raw.socket.write(request(p.port));
    expect(await statusOf(raw)).toBe(status);
    await raw.closed();
    await expectOneRefusal(p, before, reason);
    expect(p.server.stats.totals.accepted).toBe(accepted);
    await expectStillServing(scope, p);
  });
});
