/**
 * Issue 6, scenario 6 (and the Go failure mode "closing the pool kills
 * streams the application already took"): close() on both pools while 16
 * taken streams transfer.
 *
 * Then the close timeout: a taken stream the application never ends is cut
 * then with POOL_ERR_CLOSED (not at once), and close() resolves once it is;
 * when the taken streams finish first, close() resolves then.
 *
 * Pending gets reject with POOL_ERR_CLOSED, the listener is freed, idle
 * streams are closed (and their peers hear it), the taken streams carry
 * every byte to the end, and once the application closes them nothing is
 * left to keep the process alive.
 *
 * The application behaves as a real one: pooled tcp/TLS and http2 streams
 * are half-open, so the peer's end only ends its direction; the application
 * ends its own side when it is done (as `pipe` does on the peer's end).
 *
 * A pending incomingGet and an idle server-side stream cannot coexist (the
 * get would take it), so the server side here has none idle: the eight
 * streams not transferring are taken on the server side only, their client
 * ends stay idle in the client pool.
 */
import { describe, expect, it } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { connect, eventually, readBytes, sleep } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import {
  closedOf,
  finishStream,
  readHashed,
  resourceCounts,
  resourcesBackTo,
  startKind,
  watchUnhandledRejections,
  writeRandom,
  type Kind,
  type Progress,
} from './support.js';

const scope = useTestScope();
const MiB = 1 << 20;
const TRANSFERS = 16;
const SPARE = 8;
const BYTES = 8 * MiB;

describe.each<Kind>(['tcp', 'tls', 'http2', 'ws'])('%s: shutdown under load', (kind) => {
  it(`close() on both pools while ${TRANSFERS} taken streams transfer`, async () => {
    const unhandled = watchUnhandledRejections();
    scope.defer(() => unhandled.stop());
    const baseline = resourceCounts();
    // One fill at start, then no refill before close (round-paced refill, and the interval is a minute).
    const p = await scope.pair(startKind, kind, { closeTimeout: 20_000 }, { minCap: TRANSFERS + SPARE, maxCap: TRANSFERS + SPARE, minIvl: 60_000, maxIvl: 60_000, refill: 'rounds' });
    await p.client.waitForActive(TRANSFERS + SPARE, 20_000);
    await eventually(() => p.server.active === TRANSFERS + SPARE, 5000, 'the server to hold every stream');

    const pairs: Array<{ server: Duplex; client: Duplex }> = [];
    for (let i = 0; i < TRANSFERS; i++) pairs.push(await scope.handOff(p));
    // The spare ones: taken by the server-side application, idle in the
    // client pool. The application reads them and ends its side once the
    // peer has ended its own.
    const spares: Duplex[] = [];
    for (let i = 0; i < SPARE; i++) spares.push(scope.track((await p.server.incomingGet(5000))[1]));
    const sparesClosed = spares.map((stream) => {
      stream.on('error', () => undefined);
      stream.once('end', () => stream.end());
      stream.resume();
      return closedOf(stream, 30_000).then(() => Date.now());
    });
    expect(p.server.active).toBe(0);
    expect(p.client.active).toBe(SPARE);

    const moved: Progress = { bytes: 0 };
    const received: Progress = { bytes: 0 };
    const transfers = Promise.all(
      pairs.map(async ({ server, client }, i) => {
        const [upWritten, downWritten, upRead, downRead] = await Promise.all([
          writeRandom(client, BYTES, 2 * i + 1, moved),
          writeRandom(server, BYTES, 2 * i + 2, moved),
          readHashed(server, BYTES, received),
          readHashed(client, BYTES, received),
        ]);
        return upWritten === upRead && downWritten === downRead;
      }),
    );
    const pendingIn = p.server.incomingGet(30_000).then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    const pendingOut = p.client.outgoingGet('0badc0de', 30_000).then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    const pendingActive = p.client.waitForActive(TRANSFERS + SPARE + 1, 30_000).then(
      () => 'resolved',
      (error: { code?: string }) => error.code,
    );
    await eventually(() => received.bytes >= TRANSFERS * BYTES * 0.2, 30_000, 'a tenth of the bytes to arrive');

    const closeStarted = Date.now();
    const receivedAtClose = received.bytes;
    let closedAt = 0;
    const closing = Promise.all([p.client.close(), p.server.close()]).then(() => (closedAt = Date.now()));
    expect(await Promise.all([pendingIn, pendingOut, pendingActive])).toEqual(['POOL_ERR_CLOSED', 'POOL_ERR_CLOSED', 'POOL_ERR_CLOSED']);
    await expect(p.server.incomingGet(10)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    await expect(p.client.outgoingGet('0badc0de', 10)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });

    // The listener is freed: a new connection is refused.
    const refuseBy = Date.now() + 5000;
    let attempt = await tryConnect(p.port);
    while (attempt !== 'ECONNREFUSED' && Date.now() < refuseBy) {
      await sleep(20);
      attempt = await tryConnect(p.port);
    }
    expect(attempt).toBe('ECONNREFUSED');
    // Idle streams are closed, and their peers (the spares) hear it promptly.
    expect(p.client.active).toBe(0);
    expect(p.client.stats.drops.shutdown).toBe(SPARE);
    const spareClosedAt = await Promise.all(sparesClosed);
    expect(Math.max(...spareClosedAt) - closeStarted).toBeLessThan(10_000);

    // The taken streams carry every byte to the end.
    const intact = await transfers;
    expect(intact).toEqual(Array.from({ length: TRANSFERS }, () => true));
    expect(moved.bytes).toBe(2 * TRANSFERS * BYTES);
    expect(received.bytes).toBe(2 * TRANSFERS * BYTES);
    expect(receivedAtClose).toBeLessThan(2 * TRANSFERS * BYTES); // the pools closed mid-transfer

    // The application ends its side of each stream (both directions end);
    // then nothing is left.
    await Promise.all(pairs.flatMap(({ server, client }) => [finishStream(server, 10_000), finishStream(client, 10_000)]));
    for (const spare of spares) spare.destroy();
    await closing;
    expect(closedAt).toBeGreaterThan(0);
    expect([p.client.stats.state, p.server.stats.state]).toEqual(['closed', 'closed']);
    await resourcesBackTo(baseline, 10_000, 'handles after shutdown');
    expect(unhandled.seen).toEqual([]);
  }, 90_000);
});

describe.each<Kind>(['tcp', 'tls', 'http2', 'ws'])('%s: taken streams and the close timeout', (kind) => {
  const CLOSE_TIMEOUT = 1000;

  // One side's pool closes: in one process the two pools' deadlines would
  // race, and a peer cut first hears the other side's cut, not its own.
  it.each(['client', 'server'] as const)(
    '%s pool: a taken stream the application never ends is cut at the close timeout with POOL_ERR_CLOSED; close() resolves then',
    async (side) => {
      const unhandled = watchUnhandledRejections();
      scope.defer(() => unhandled.stop());
      const baseline = resourceCounts();
      const p = await scope.pair(startKind, kind, { closeTimeout: CLOSE_TIMEOUT }, { minCap: 2, maxCap: 2, closeTimeout: CLOSE_TIMEOUT });
      await p.client.waitForActive(2, 10_000);
      const { server, client } = await scope.handOff(p);
      const [pool, other] = side === 'client' ? [p.client, p.server] : [p.server, p.client];
      const [mine, peer] = side === 'client' ? [client, server] : [server, client];
      const cut = new Promise<{ code?: string; message: string; at: number }>((resolve) =>
        mine.once('error', (error: { code?: string; message: string }) => resolve({ code: error.code, message: error.message, at: Date.now() })),
      );
      expect(pool.stats.inUse).toBe(1);

      const closeStarted = Date.now();
      let closedAt = 0;
      const closing = pool.close().then(() => (closedAt = Date.now()));
      // Not killed at once: the pair still carries data both ways while the pool closes.
      await echo(client, server, 'up');
      await echo(server, client, 'down');
      expect([server.destroyed, client.destroyed]).toEqual([false, false]);
      expect(pool.stats).toMatchObject({ state: 'closing', inUse: 1 });
      expect(closedAt).toBe(0);
      // The peer's application ends its side once the peer is gone, as a real one does.
      peer.on('error', () => undefined);
      peer.once('end', () => peer.end());
      peer.resume();

      const { code, message, at } = await cut;
      await closing;
      expect(code).toBe('POOL_ERR_CLOSED');
      expect(message).toMatch(/close timeout/);
      expect(at).toBeGreaterThanOrEqual(closeStarted + CLOSE_TIMEOUT);
      expect(closedAt).toBeGreaterThanOrEqual(at);
      expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
      // The peer hears the cut; with nothing taken left the other pool closes at once.
      await closedOf(peer, 5000);
      await other.close();
      await resourcesBackTo(baseline, 10_000, 'handles after the cut');
      expect(unhandled.seen).toEqual([]);
    },
    30_000,
  );

  it('close() resolves once the taken streams have finished, before the close timeout', async () => {
    const unhandled = watchUnhandledRejections();
    scope.defer(() => unhandled.stop());
    const baseline = resourceCounts();
    const LONG = 60_000; // beyond the test's own timeout: close() must not wait for it
    const p = await scope.pair(startKind, kind, { closeTimeout: LONG }, { minCap: 2, maxCap: 2, closeTimeout: LONG });
    await p.client.waitForActive(2, 10_000);
    const { server, client } = await scope.handOff(p);
    const errors: unknown[] = [];
    const streamClosedAt: number[] = [];
    for (const stream of [server, client]) {
      stream.on('error', (error) => errors.push(error));
      stream.once('close', () => streamClosedAt.push(Date.now()));
    }

    let closedAt = 0;
    const closing = Promise.all([p.client.close(), p.server.close()]).then(() => (closedAt = Date.now()));
    await echo(client, server, 'last words');
    await sleep(100);
    expect(closedAt).toBe(0); // still waiting for the taken pair

    // The application finishes: both sides end, both streams close.
    await Promise.all([finishStream(server, 10_000), finishStream(client, 10_000)]);
    await closing;
    expect(streamClosedAt).toHaveLength(2);
    expect(closedAt).toBeGreaterThanOrEqual(Math.max(...streamClosedAt));
    expect(errors).toEqual([]);
    expect([p.client.stats.state, p.server.stats.state]).toEqual(['closed', 'closed']);
    await resourcesBackTo(baseline, 10_000, 'handles after shutdown');
    expect(unhandled.seen).toEqual([]);
  }, 30_000);
});

/** Writes `text` on `from` and reads exactly it on `to`. */
async function echo(from: Duplex, to: Duplex, text: string): Promise<void> {
  from.write(text);
  expect((await readBytes(to, Buffer.byteLength(text))).toString()).toBe(text);
}

/** Tries to connect; resolves with 'connected' or the error code. */
async function tryConnect(port: number): Promise<string> {
  try {
    const socket = await connect(port);
    socket.destroy();
    return 'connected';
  } catch (error) {
    return String((error as { code?: string }).code);
  }
}
