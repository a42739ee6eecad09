/**
 * Issue 10, item 4: junk that poisons the pool.
 *
 * - Strangers that connect, send 10 bytes and a FIN used to stay idle for
 *   good on a plain-tcp server (their 'end' never fired while the bytes sat
 *   unread), counting against maxCap and handed out first. A client of this
 *   protocol sends nothing before the server hands the stream out, so on
 *   tcp, TLS and http2 such a stream now leaves the pool at once, counted
 *   ('unexpected-data'). (ws keeps such bytes for the taker: the Go npws
 *   trace in test/ws/wire.golden.spec.ts requires it.)
 * - A client with TLS on dialing a plain tcp server used to leave a dead
 *   stream (a ClientHello and a FIN) in the server pool at every attempt;
 *   now the server drops it as 'tls-on-plain' and the client fails with a
 *   TlsMismatchError that says the server does not speak TLS.
 * - The mirror case (a plain client, a TLS server): the client's error
 *   names the likely cause, and the server counts the connection.
 */
import { describe, expect, it } from '@jest/globals';
import http2 from 'node:http2';
import tls from 'node:tls';
import { HandshakeError, PoolRefusedError, TlsMismatchError } from '../../lib/core/errors.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { clientConfig, inBatches, rawConnect, serverConfig, type Kind, type RawOutcome } from './support.js';

const scope = useTestScope();

const JUNK = Buffer.from('0123456789');

/** A real client still gets a stream through, and it is the real client's. */
async function servesARealClient(server: ServerPool, kind: Kind, extra: Record<string, unknown> = {}): Promise<void> {
  const client = createClientPool({ ...clientConfig(kind, { minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50, ...extra }), address: `127.0.0.1:${server.address()!.port}` } as ClientPoolConfig);
  scope.defer(() => client.close(1000));
  client.start();
  const [id, serverSide] = await server.incomingGet(10_000);
  scope.track(serverSide);
  const clientSide = scope.track(await client.outgoingGet(id, 10_000));
  clientSide.write('real');
  expect((await readBytes(serverSide, 4, 10_000)).toString()).toBe('real');
}

describe.each<[string, Record<string, unknown>]>([
  ['tcp (hex8)', {}],
  ['tcp (raw4)', { idFormat: 'raw4' }],
])('%s: 500 strangers send 10 bytes and a FIN', (_name, wire) => {
  it('none stays in the pool: each is dropped and counted, and a real client is served', async () => {
    const STRANGERS = 500;
    const server = createServerPool(serverConfig('tcp', { ...wire, maxCap: 600, maxHandshakes: 600 }));
    await server.start();
    scope.defer(() => server.close(1000));
    const strangers: RawOutcome[] = [];
    scope.defer(() => strangers.forEach(({ socket }) => socket.destroy()));
    await inBatches(STRANGERS, 50, async () => {
      const outcome = await rawConnect(server.address()!.port, JUNK);
      outcome.socket.end();
      strangers.push(outcome);
    });
    await eventually(() => strangers.every((s) => s.closedAt !== undefined), 20_000, 'the server to close every stranger');
    await eventually(() => server.active === 0, 5000, 'no stranger idle in the pool');
    expect({ active: server.active, drops: server.stats.drops }).toEqual({ active: 0, drops: { 'unexpected-data': STRANGERS } });
    await servesARealClient(server, 'tcp', wire);
  }, 60_000);
});

describe('tls: strangers complete TLS, send 10 bytes and a FIN', () => {
  it('none stays in the pool', async () => {
    const STRANGERS = 100;
    const server = createServerPool(serverConfig('tls', { maxCap: 200, maxHandshakes: 200 }));
    await server.start();
    scope.defer(() => server.close(1000));
    const sockets: tls.TLSSocket[] = [];
    scope.defer(() => sockets.forEach((socket) => socket.destroy()));
    const closed = await inBatches(STRANGERS, 20, () =>
      new Promise<Promise<void>>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: server.address()!.port, rejectUnauthorized: false });
        sockets.push(socket);
        socket.on('error', () => undefined);
        const gone = new Promise<void>((r) => socket.once('close', () => r()));
        socket.once('secureConnect', () => {
          socket.resume();
          socket.end(JUNK);
          resolve(gone);
        });
        socket.once('close', () => reject(new Error('closed before TLS completed')));
      }),
    );
    await Promise.all(closed);
    await eventually(() => server.active === 0, 5000, 'no stranger idle in the pool');
    expect(server.stats.drops).toEqual({ 'unexpected-data': STRANGERS });
    await servesARealClient(server, 'tls');
  }, 60_000);
});

describe('http2: strangers open POST /stream, send 0x00, then 10 bytes and END_STREAM', () => {
  it('none stays in the pool', async () => {
    const SESSIONS = 10;
    const PER_SESSION = 10;
    const server = createServerPool(serverConfig('http2', { maxCap: 200, maxHandshakes: 200 }));
    await server.start();
    scope.defer(() => server.close(1000));
    const sessions: http2.ClientHttp2Session[] = [];
    scope.defer(() => sessions.forEach((session) => session.destroy()));
    const ended: Array<Promise<void>> = [];
    for (let s = 0; s < SESSIONS; s++) {
      const session = http2.connect(`https://127.0.0.1:${server.address()!.port}`, { rejectUnauthorized: false });
      session.on('error', () => undefined);
      sessions.push(session);
      for (let i = 0; i < PER_SESSION; i++) {
        const request = session.request({ ':method': 'POST', ':path': '/stream' }, { endStream: false });
        request.on('error', () => undefined);
        request.resume();
        request.write(Buffer.from([0]));
        request.once('response', () => request.end(JUNK));
        ended.push(new Promise((resolve) => request.once('close', () => resolve())));
      }
    }
    await Promise.all(ended);
    await eventually(() => server.active === 0, 5000, 'no stranger idle in the pool');
    expect(server.stats.drops).toEqual({ 'unexpected-data': SESSIONS * PER_SESSION });
    await servesARealClient(server, 'http2');
  }, 60_000);
});

describe('ws: strangers upgrade, then send 10 bytes that are no WebSocket frame, and a FIN', () => {
  it('none stays in the pool (ws drops the connection on the bad frame)', async () => {
    const STRANGERS = 100;
    const server = createServerPool(serverConfig('ws', { maxCap: 200, maxHandshakes: 200 }));
    await server.start();
    scope.defer(() => server.close(1000));
    const strangers: RawOutcome[] = [];
    scope.defer(() => strangers.forEach(({ socket }) => socket.destroy()));
    await inBatches(STRANGERS, 20, async () => {
      const outcome = await rawConnect(
        server.address()!.port,
        'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
      );
      strangers.push(outcome);
      // The 101 and the ID frame (2 + 4 bytes) are in: the stream is idle on the server.
      await eventually(() => outcome.received.includes(Buffer.from([0x82, 0x04])), 10_000, 'the upgrade and the ID');
      outcome.socket.end(JUNK);
    });
    await eventually(() => strangers.every((s) => s.closedAt !== undefined), 20_000, 'the server to close every stranger');
    await eventually(() => server.active === 0, 5000, 'no stranger idle in the pool');
    const drops = server.stats.drops;
    expect(Object.values(drops).reduce((sum, n) => sum + n, 0)).toBe(STRANGERS);
    await servesARealClient(server, 'ws');
  }, 60_000);
});

describe.each<[string, Kind, Record<string, unknown>]>([
  ['tls, hex8', 'tls', {}],
  ['tls, raw4', 'tls', { idFormat: 'raw4' }],
  // The http2 client's sessions connect with the same TLS helper as the tcp client (it said "TLS handshake failed").
  ['http2', 'http2', {}],
])('a TLS client dialing a plain tcp server (%s)', (_name, clientKind, wire) => {
  it('leaves nothing in the server pool (tls-on-plain) and fails with TlsMismatchError: the server does not speak TLS', async () => {
    const server = createServerPool(serverConfig('tcp', wire));
    await server.start();
    scope.defer(() => server.close(1000));
    const client = createClientPool({ ...clientConfig(clientKind, { ...wire, handshakeTimeout: 5000 }), address: `127.0.0.1:${server.address()!.port}` } as ClientPoolConfig);
    scope.defer(() => client.close(1000));
    const errors: unknown[] = [];
    for (let i = 0; i < 5; i++) {
      await client.transport.dial({ signal: new AbortController().signal, readId: true }).then(
        ({ stream }) => {
          stream.destroy();
          errors.push('dialed');
        },
        (error: unknown) => errors.push(error),
      );
    }
    await eventually(() => (server.stats.drops['tls-on-plain'] ?? 0) === 5, 5000, 'the server to drop all 5');
    // Each outcome named, so a failure says what the dial saw instead of "expected true".
    const seen = errors.map((error) => (error instanceof TlsMismatchError ? 'TlsMismatchError' : `${(error as Error)?.constructor?.name}: ${String((error as Error)?.message ?? error)} (cause: ${String(((error as Error)?.cause as Error)?.message)})`));
    // Every dial fails typed; at most one of the five may read as a refusal: under a fully loaded
    // machine (once in the Node 24 line of a CI run, never alone in 60 runs) a dial saw the server's
    // reset without the ID bytes before it, which is what a refusal looks like (an open problem).
    expect(seen.filter((outcome) => outcome === 'TlsMismatchError').length).toBeGreaterThanOrEqual(4);
    for (const error of errors) expect(error instanceof TlsMismatchError || error instanceof PoolRefusedError).toBe(true);
    const mismatch = errors.find((error) => error instanceof TlsMismatchError) as TlsMismatchError;
    expect(mismatch.code).toBe('POOL_ERR_TLS_MISMATCH');
    expect(mismatch.message).toMatch(/does not speak TLS/);
    expect({ active: server.active, drops: server.stats.drops }).toEqual({ active: 0, drops: { 'tls-on-plain': 5 } });
  }, 30_000);
});

describe('a plain client dialing a TLS tcp server', () => {
  it.each<[string, Record<string, unknown>, Record<string, unknown>]>([
    ['the client times out first', { handshakeTimeout: 30_000 }, { handshakeTimeout: 1500 }],
    ['the server times out first', { handshakeTimeout: 1500 }, { handshakeTimeout: 30_000 }],
  ])('%s: the error names the likely cause, and the server counts the connection', async (_what, serverExtra, clientExtra) => {
    const server = createServerPool(serverConfig('tls', serverExtra));
    await server.start();
    scope.defer(() => server.close(1000));
    const client = createClientPool({ ...clientConfig('tcp', clientExtra), address: `127.0.0.1:${server.address()!.port}` } as ClientPoolConfig);
    scope.defer(() => client.close(1000));
    const error = await client.transport.dial({ signal: new AbortController().signal, readId: true }).then(
      ({ stream }) => {
        stream.destroy();
        return 'dialed';
      },
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(HandshakeError);
    expect((error as HandshakeError).message).toMatch(/speaks TLS.*set tls "1" or "2"/);
    await eventually(() => (server.stats.refusals['handshake-timeout'] ?? 0) + (server.stats.refusals['closed-in-handshake'] ?? 0) === 1, 5000, 'the server to count it');
    expect(server.active).toBe(0);
  }, 30_000);
});
