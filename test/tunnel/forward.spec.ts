import { afterEach, describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { PoolAbortedError, PoolTimeoutError, StreamCutError } from '../../lib/core/errors.js';
import { forward } from '../../lib/tunnel/forward.js';
import { howItEnds, readAll, startHarness, writeRandom, type Harness } from './forward-harness.js';

const MiB = 1024 * 1024;

async function eventuallyTrue(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(check()).toBe(true);
}
let harness: Harness | undefined;

const opened: net.Socket[] = [];

afterEach(async () => {
  await harness?.close();
  harness = undefined;
  for (const socket of opened.splice(0)) socket.destroy();
});

/** Resolves when `stream` has delivered `count` bytes (read, counted, dropped). */
function received(stream: Duplex, count: number): Promise<void> {
  return new Promise((resolve) => {
    let seen = 0;
    const onData = (chunk: Buffer): void => {
      seen += chunk.length;
      if (seen >= count) {
        stream.off('data', onData);
        resolve();
      }
    };
    stream.on('data', onData);
  });
}

describe('forward() over real TCP sockets', () => {
  it.each([
    ['tcp', false],
    ['TLS on the public side', true],
  ])('carries 64 MiB each way at once, byte for byte (SHA-256), and accounts both directions as ended (%s)', async (_name, useTls) => {
    const size = useTls ? 16 * MiB : 64 * MiB; // TLS costs more CPU on a shared machine; the same paths at a quarter of the size
    harness = await startHarness({ tls: useTls });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const [sentUp, sentDown, atTarget, atClient] = await Promise.all([writeRandom(client, size), writeRandom(target, size), readAll(target), readAll(client)]);
    expect(atTarget).toMatchObject({ bytes: size, sha256: sentUp });
    expect(atClient).toMatchObject({ bytes: size, sha256: sentDown });
    const result = await harness.forwardings[0]!.done;
    expect(result).toEqual({ aToB: { bytes: size, ended: 'end' }, bToA: { bytes: size, ended: 'end' }, error: undefined });
  }, 180_000);

  it('request, FIN, reply: the FIN reaches the target, the reply comes back on the half-closed connection', async () => {
    harness = await startHarness({
      onTarget: (socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => socket.end(`reply to ${Buffer.concat(chunks).toString()}`));
      },
    });
    const client = await harness.connect();
    client.end('request');
    const reply = await readAll(client);
    expect(reply.data!.toString()).toBe('reply to request');
    const result = await harness.forwardings[0]!.done;
    expect(result).toEqual({ aToB: { bytes: 7, ended: 'end' }, bToA: { bytes: 16, ended: 'end' }, error: undefined });
  });

  it('the reply direction keeps flowing after the request direction ended (slow reply, several chunks)', async () => {
    harness = await startHarness({
      onTarget: (socket) => {
        socket.resume();
        socket.on('end', () => {
          let left = 5;
          const tick = (): void => {
            if (left-- === 0) return void socket.end();
            socket.write('x'.repeat(1000));
            setImmediate(tick);
          };
          tick();
        });
      },
    });
    const client = await harness.connect();
    client.end('go');
    expect((await readAll(client)).bytes).toBe(5000);
    expect((await harness.forwardings[0]!.done).bToA).toEqual({ bytes: 5000, ended: 'end' });
  });

  it('a target that refuses: the public client is reset (ECONNRESET), never ended cleanly', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    harness = await startHarness({ target: { port: closedPort } });
    const client = await harness.connect();
    expect(await howItEnds(client)).toBe('ECONNRESET');
    expect(harness.connectErrors[0]).toMatchObject({ code: 'POOL_ERR_TARGET_CONNECT', reason: 'refused', port: closedPort });
  });

  it.each([
    ['tcp', false],
    ['TLS on the public side', true],
  ])('the target resets mid-transfer: the public client is reset, the accounting says cut both ways (%s)', async (_name, useTls) => {
    harness = await startHarness({ tls: useTls });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    const ends = howItEnds(client);
    client.write(Buffer.alloc(64 * 1024));
    await received(target, 64 * 1024);
    target.write(Buffer.alloc(1000));
    target.resetAndDestroy();
    expect(await ends).toBe('ECONNRESET');
    const result = await forwarding.done;
    expect(result.aToB).toEqual({ bytes: 64 * 1024, ended: 'cut' });
    expect(result.bToA.ended).toBe('cut');
    expect(result.error).toMatchObject({ code: 'ECONNRESET' });
  });

  it('the public client resets mid-transfer: the target is reset, the accounting says cut', async () => {
    harness = await startHarness();
    const client = (await harness.connect()) as net.Socket;
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    const ends = howItEnds(target);
    client.write('partial request');
    await received(target, 15);
    client.resetAndDestroy();
    expect(await ends).toBe('ECONNRESET');
    const result = await forwarding.done;
    expect(result.aToB).toEqual({ bytes: 15, ended: 'cut' });
    expect(result.bToA).toEqual({ bytes: 0, ended: 'cut' });
    expect(result.error).toMatchObject({ code: 'ECONNRESET' });
  });

  it('a cut after one direction ended cleanly: that direction stays "end", the other is "cut", the client is reset', async () => {
    harness = await startHarness();
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    client.end('all of the request');
    await once(target.resume(), 'end');
    const ends = howItEnds(client);
    target.write('half a repl');
    target.resetAndDestroy();
    expect(await ends).toBe('ECONNRESET');
    const result = await forwarding.done;
    expect(result.aToB).toEqual({ bytes: 18, ended: 'end' });
    expect(result.bToA.ended).toBe('cut');
  });

  it('endOf: the pooled side\'s end reaches the other side only once confirmed; `sending` reports the bytes before the end goes out', async () => {
    let confirmed!: (ok: boolean) => void;
    const asked: number[] = [];
    const sent: number[] = [];
    harness = await startHarness({
      forward: {
        endOf: {
          sending: (bytes) => sent.push(bytes),
          confirm: (received) => {
            asked.push(received);
            return new Promise((resolve) => (confirmed = resolve));
          },
        },
      },
    });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    const targetEnded = once(target.resume(), 'end');
    client.end('request');
    await targetEnded;
    expect(sent).toEqual([7]);
    let clientEnded = false;
    const reply: Buffer[] = [];
    client.on('data', (chunk: Buffer) => reply.push(chunk));
    const ended = new Promise<void>((resolve) => client.once('end', () => resolve((clientEnded = true) && undefined)));
    target.end('reply');
    await eventuallyTrue(() => asked.length === 1);
    expect(asked).toEqual([5]);
    expect(clientEnded).toBe(false);
    confirmed(true);
    await ended;
    expect(Buffer.concat(reply).toString()).toBe('reply');
    expect(await forwarding.done).toEqual({ aToB: { bytes: 7, ended: 'end' }, bToA: { bytes: 5, ended: 'end' }, error: undefined });
  });

  it('endOf: an end the other side does not confirm is a cut: the client is reset, never ended', async () => {
    harness = await startHarness({ forward: { endOf: { sending: () => undefined, confirm: async () => false } } });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    const ends = howItEnds(client);
    target.end('a FIN nobody vouched for');
    expect(await ends).toBe('ECONNRESET');
    const result = await forwarding.done;
    expect(result.bToA.ended).toBe('cut');
    expect(result.error).toBeInstanceOf(StreamCutError);
  });

  it('counts bytes each way while the connection is open', async () => {
    harness = await startHarness();
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    client.write(Buffer.alloc(1000));
    await received(target, 1000);
    expect([forwarding.aToB, forwarding.bToA, forwarding.running]).toEqual([1000, 0, true]);
    target.write(Buffer.alloc(500));
    await received(client, 500);
    expect([forwarding.aToB, forwarding.bToA, forwarding.running]).toEqual([1000, 500, true]);
    client.end();
    target.end();
    expect(await forwarding.done).toMatchObject({ aToB: { bytes: 1000, ended: 'end' }, bToA: { bytes: 500, ended: 'end' } });
    expect(forwarding.running).toBe(false);
  });

  it.each([
    ['client to target (the target does not read)', 'up'],
    ['target to client (the client does not read)', 'down'],
  ])('back-pressure, %s: the pump never holds more than a high-water mark and a chunk; all bytes arrive once the reader reads', async (_name, way) => {
    let maxHeld = 0;
    let highWaterMark = 0;
    /** Counts what the pump leaves buffered in its destination after each write. */
    const countWrites = (stream: Duplex): void => {
      highWaterMark = stream.writableHighWaterMark;
      const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
      (stream as unknown as { write: (...args: unknown[]) => boolean }).write = (...args) => {
        const answer = write(...args);
        maxHeld = Math.max(maxHeld, stream.writableLength);
        return answer;
      };
    };
    harness = await startHarness({ beforeForward: (publicSide, targetSide) => countWrites(way === 'up' ? targetSide : publicSide) });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    const [writer, reader] = way === 'up' ? [client, target] : [target, client];
    reader.pause();
    const size = 48 * MiB;
    const sent = writeRandom(writer, size);
    // Until the writer stalls: the pump's counter stops moving once every buffer on the way is full.
    let last = -1;
    for (let round = 0; round < 400; round++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const moved = way === 'up' ? forwarding.aToB : forwarding.bToA;
      if (moved === last) break;
      last = moved;
    }
    const moved = way === 'up' ? forwarding.aToB : forwarding.bToA;
    expect(moved).toBeLessThan(size / 2); // the writer is held back: at most the sockets' kernel buffers in flight
    expect(maxHeld).toBeLessThanOrEqual(highWaterMark + 64 * 1024);
    const all = readAll(reader);
    reader.resume();
    const sha256 = await sent;
    expect(await all).toMatchObject({ bytes: size, sha256 });
    (way === 'up' ? target : client).end();
    await forwarding.done;
  }, 120_000);

  it('forwards 200 connections at once, each its own bytes', async () => {
    harness = await startHarness({ onTarget: (socket) => socket.pipe(socket) }); // an echo
    const count = 200;
    const results = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const client = await harness!.connect();
        const message = `connection ${i} `.repeat(200);
        const reply = readAll(client);
        client.end(message);
        return (await reply).data!.toString() === message;
      }),
    );
    expect(results.filter(Boolean)).toHaveLength(count);
    const accounts = await Promise.all(harness.forwardings.map((forwarding) => forwarding.done));
    expect(accounts.every((result) => result.aToB.ended === 'end' && result.bToA.ended === 'end' && result.aToB.bytes === result.bToA.bytes)).toBe(true);
  }, 120_000);

  it('idleTimeout: bytes keep the pair open; silence cuts both sides, accounted as timeout', async () => {
    harness = await startHarness({ forward: { idleTimeout: 400 } });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    target.resume();
    const [clientEnds, targetEnds] = [howItEnds(client), howItEnds(target)];
    for (let i = 0; i < 40; i++) {
      client.write('.');
      await new Promise((resolve) => setTimeout(resolve, 25)); // 1 s of traffic, more than twice the timeout
    }
    expect(forwarding.running).toBe(true);
    expect([await clientEnds, await targetEnds]).toEqual(['ECONNRESET', 'ECONNRESET']);
    const result = await forwarding.done;
    expect(result).toMatchObject({ aToB: { bytes: 40, ended: 'timeout' }, bToA: { bytes: 0, ended: 'timeout' } });
    expect(result.error).toBeInstanceOf(PoolTimeoutError);
  });

  it('signal and cut(): the owner cuts both sides (a reset each)', async () => {
    const controller = new AbortController();
    harness = await startHarness({ forward: { signal: controller.signal } });
    const client = await harness.connect();
    const target = await harness.nextTarget();
    const forwarding = await harness.nextForwarding();
    const ends = [howItEnds(client), howItEnds(target)];
    controller.abort();
    expect(await Promise.all(ends)).toEqual(['ECONNRESET', 'ECONNRESET']);
    const result = await forwarding.done;
    expect(result.error).toBeInstanceOf(PoolAbortedError);
    expect([result.aToB.ended, result.bToA.ended]).toEqual(['cut', 'cut']);

    await harness.close();
    harness = await startHarness();
    const second = await harness.connect();
    const secondForwarding = await harness.nextForwarding();
    const secondEnds = howItEnds(second);
    secondForwarding.cut();
    expect(await secondEnds).toBe('ECONNRESET');
    expect((await secondForwarding.done).error).toBeInstanceOf(StreamCutError);
  });

  it('a stream already destroyed when forward() starts: the other side is cut at once', async () => {
    const [, gone] = await socketPair();
    const [client, live] = await socketPair();
    gone.destroy();
    await once(gone, 'close');
    const ends = howItEnds(client);
    const forwarding = forward(gone, live);
    expect(await ends).toBe('ECONNRESET');
    expect(await forwarding.done).toMatchObject({ aToB: { bytes: 0, ended: 'cut' }, bToA: { bytes: 0, ended: 'cut' } });
  });
});

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = once(server, 'connection');
  const client = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  const [peer] = (await accepted) as [net.Socket];
  server.close(); // closes once both sockets are gone (afterEach)
  opened.push(client, peer);
  client.on('error', () => undefined);
  peer.on('error', () => undefined);
  return [client, peer];
}
