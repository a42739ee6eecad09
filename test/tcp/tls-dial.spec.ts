import { beforeAll, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import tls from 'node:tls';
import { createSelfSignedCertificate, type GeneratedCertificate } from '../../lib/certs/index.js';
import { DialError, HandshakeError, InvalidIdError, PoolClosedError, PoolRefusedError, TlsMismatchError } from '../../lib/core/errors.js';
import { randomId } from '../../lib/core/ids.js';
import type { ClientTransport } from '../../lib/core/transport.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { eventually, listenRaw, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

/**
 * The client's TLS dial to an address, phase by phase (connect, TLS, ID):
 * each fails with its own typed error, and an aborted pool signal ends
 * every dial in flight. Also: IDs cut from the block of random bytes.
 */
const scope = useTestScope();
const { track } = scope;

let selfSigned: GeneratedCertificate;
beforeAll(() => {
  selfSigned = createSelfSignedCertificate();
});

function transportFor(port: number, extra: Record<string, unknown> = {}): ClientTransport {
  return createClientPool({ address: `127.0.0.1:${port}`, tls: '1', ...extra }).transport;
}

/** A TLS 1.3 server on 127.0.0.1 whose secure sockets `onSecure` drives. */
async function tlsServer(onSecure: (socket: tls.TLSSocket) => void): Promise<{ port: number; sockets: tls.TLSSocket[] }> {
  const sockets: tls.TLSSocket[] = [];
  const connections: net.Socket[] = [];
  const server = tls.createServer({ key: selfSigned.key, cert: selfSigned.cert, minVersion: 'TLSv1.3' }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSecure(socket);
    socket.resume(); // reads the client's FIN: 'end', then close
  });
  server.on('connection', (socket: net.Socket) => connections.push(socket));
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of [...sockets, ...connections]) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, sockets };
}

/** A TCP server that accepts and never writes; it reads, so a client's FIN shows as readableEnded. */
async function silentTcpServer() {
  const raw = await listenRaw((socket) => socket.resume());
  scope.defer(() => raw.close());
  return raw;
}

describe('tcp client over TLS: one dial, phase by phase', () => {
  it('reads the ID and leaves the bytes after it in the stream, on a half-open TLSSocket', async () => {
    const { port } = await tlsServer((socket) => socket.write('a1b2c3d4hello'));
    const { id, stream } = await transportFor(port).dial({ signal: new AbortController().signal, readId: true });
    track(stream);
    expect(id).toBe('a1b2c3d4');
    expect(stream).toBeInstanceOf(tls.TLSSocket);
    expect(stream.allowHalfOpen).toBe(true);
    expect((await readBytes(stream, 5)).toString()).toBe('hello');
  });

  it('a refused connection is a DialError', async () => {
    const raw = await listenRaw();
    const port = raw.port;
    await raw.close();
    await expect(transportFor(port).dial({ signal: new AbortController().signal, readId: true })).rejects.toBeInstanceOf(DialError);
  });

  it('a peer that never answers the ClientHello is cut at handshakeTimeout (HandshakeError)', async () => {
    const raw = await silentTcpServer();
    const started = Date.now();
    await expect(transportFor(raw.port, { handshakeTimeout: 150 }).dial({ signal: new AbortController().signal, readId: true })).rejects.toThrow(
      HandshakeError,
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    await eventually(() => raw.sockets.length === 1 && (raw.sockets[0]!.destroyed || raw.sockets[0]!.readableEnded), 3000, 'the socket closed');
  });

  it('a close during the TLS handshake is a refusal', async () => {
    const raw = await listenRaw((socket) => socket.destroy());
    scope.defer(() => raw.close());
    await expect(transportFor(raw.port).dial({ signal: new AbortController().signal, readId: true })).rejects.toBeInstanceOf(PoolRefusedError);
  });

  it('a plain raw4 server whose ID reads as a TLS record header (16 03 01 00) is still a TlsMismatchError, not a refusal', async () => {
    // The plain server's answer: the ID, then (on the ClientHello) the alert and a close.
    // OpenSSL takes 16 03 01 00 15 as a header waiting for 21 bytes and sees a disconnect.
    const raw = await listenRaw((socket) => {
      socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00]));
      socket.once('data', () => socket.end(Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46])));
    });
    scope.defer(() => raw.close());
    const error = await transportFor(raw.port, { idFormat: 'raw4' })
      .dial({ signal: new AbortController().signal, readId: true })
      .then(() => 'dialed', (failure: unknown) => failure);
    expect(error).toBeInstanceOf(TlsMismatchError);
    expect((error as TlsMismatchError).message).toMatch(/does not speak TLS/);
  });

  it('a close after TLS without an ID is a refusal; a short ID or a bad ID is not', async () => {
    const closing = await tlsServer((socket) => socket.end());
    await expect(transportFor(closing.port).dial({ signal: new AbortController().signal, readId: true })).rejects.toBeInstanceOf(PoolRefusedError);
    const short = await tlsServer((socket) => socket.end('abc'));
    await expect(transportFor(short.port).dial({ signal: new AbortController().signal, readId: true })).rejects.toBeInstanceOf(HandshakeError);
    const bad = await tlsServer((socket) => socket.write('ABCDEFGH'));
    await expect(transportFor(bad.port).dial({ signal: new AbortController().signal, readId: true })).rejects.toBeInstanceOf(InvalidIdError);
  });

  it('an ID that never comes after TLS is cut at handshakeTimeout', async () => {
    const silent = await tlsServer(() => undefined);
    await expect(transportFor(silent.port, { handshakeTimeout: 150 }).dial({ signal: new AbortController().signal, readId: true })).rejects.toThrow(
      /the ID did not arrive within/,
    );
  });

  it('without readId it resolves at secureConnect with no ID', async () => {
    const { port } = await tlsServer(() => undefined);
    const { id, stream } = await transportFor(port).dial({ signal: new AbortController().signal, readId: false });
    track(stream);
    expect(id).toBeNull();
    expect((stream as tls.TLSSocket).getProtocol()).toBe('TLSv1.3');
  });

  it('one abort of the pool signal ends every dial in flight, in any phase, and closes their sockets', async () => {
    const silentTcp = await silentTcpServer();
    const silentTls = await tlsServer(() => undefined);
    const controller = new AbortController();
    const context = { signal: controller.signal, readId: true };
    const inTls = Array.from({ length: 3 }, () => transportFor(silentTcp.port).dial(context));
    const transport = transportFor(silentTls.port);
    const inId = Array.from({ length: 3 }, () => transport.dial(context));
    await eventually(() => silentTcp.sockets.length === 3 && silentTls.sockets.length === 3, 3000, 'every dial connected');
    controller.abort();
    for (const dial of [...inTls, ...inId]) await expect(dial).rejects.toBeInstanceOf(PoolClosedError);
    await eventually(() => [...silentTcp.sockets, ...silentTls.sockets].every((s) => s.destroyed || s.readableEnded), 3000, 'the sockets closed');
    // A dial on an aborted signal fails at once.
    await expect(transport.dial(context)).rejects.toBeInstanceOf(PoolClosedError);
  });
});

describe('random IDs from a refilled block', () => {
  it('stay 8 lowercase hex characters and distinct across many refills', () => {
    const ids = Array.from({ length: 5000 }, randomId);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(new Set(ids).size).toBeGreaterThan(4990);
  });
});
