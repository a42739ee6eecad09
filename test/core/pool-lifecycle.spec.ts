/**
 * The lifecycle both pools share (PoolBase): `new → starting → running →
 * closing → closed`, an idempotent close(), and destroy(error), which fails
 * everything now (as undici's dispatcher.destroy does). Scripted transports:
 * the test decides when the port is bound and when dials complete.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { ClientPool } from '../../lib/core/client-pool.js';
import { PoolClosedError } from '../../lib/core/errors.js';
import { ServerPool, type IncomingStream } from '../../lib/core/server-pool.js';
import { ManualServer, ManualTransport } from '../support/manual-transport.js';
import { eventually, sleep } from '../support/net.js';

const opened: Array<{ destroy(): Promise<void> }> = [];
afterEach(async () => {
  for (const pool of opened.splice(0)) await pool.destroy();
});

function serverPool(options: ConstructorParameters<typeof ServerPool>[1] = {}, transport = new ManualServer()): { pool: ServerPool; transport: ManualServer } {
  const pool = new ServerPool(transport, options);
  opened.push(pool);
  return { pool, transport };
}

function clientPool(options: ConstructorParameters<typeof ClientPool>[1] = {}): { pool: ClientPool; transport: ManualTransport } {
  const transport = new ManualTransport();
  const pool = new ClientPool(transport, { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, ...options });
  opened.push(pool);
  return { pool, transport };
}

/** What a stream's 'error' listener sees (emitted on a later tick than the destroy). */
function errorOf(stream: Duplex): Promise<Error> {
  return new Promise((resolve) => stream.once('error', resolve));
}

describe('server pool start(): starting until the transport listens', () => {
  it('says starting (not ready) until listen() resolves, then running; a get made meanwhile waits and is served', async () => {
    const { pool, transport } = serverPool();
    const listen = transport.holdListen();
    const started = pool.start();
    expect(pool.stats.state).toBe('starting');
    expect(pool.ready).toBe(false);
    expect(pool.start()).toBe(started); // idempotent while starting
    const get = pool.incomingGet(10_000);
    // The transport may hand over a connection as soon as it is bound, before its listen() settles.
    const early = transport.arrive();
    await expect(get).resolves.toEqual([early.id, early.stream]);
    listen.bound();
    await started;
    expect(pool.stats.state).toBe('running');
    expect(pool.ready).toBe(true);
    early.stream.destroy();
  });

  it('close() while starting: start() rejects with PoolClosedError, the transport is closed once its listen settles, waiters reject', async () => {
    const { pool, transport } = serverPool();
    const listen = transport.holdListen();
    const started = pool.start();
    const get = pool.incomingGet(10_000);
    const closing = pool.close(1000);
    await expect(get).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(transport.closed).toBe(false); // not before its listen settled: nothing to leak
    listen.bound();
    await expect(started).rejects.toBeInstanceOf(PoolClosedError);
    await closing;
    expect(transport.closed).toBe(true);
    expect(pool.stats.state).toBe('closed');
    await expect(pool.start()).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
  });

  it('a listen that fails: start() rejects with its error and the pool is destroyed with it: a get made meanwhile rejects with PoolClosedError caused by it', async () => {
    const { pool, transport } = serverPool();
    const listen = transport.holdListen();
    const started = pool.start();
    const get = pool.incomingGet(10_000);
    const cause = new Error('EADDRINUSE');
    listen.failed(cause);
    await expect(started).rejects.toBe(cause);
    const error = await get.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PoolClosedError);
    expect((error as Error).cause).toBe(cause);
    expect(() => pool.onIncoming(() => undefined)).toThrow(PoolClosedError);
    await pool.close(); // the destroy the failed listen started
    expect(pool.stats.state).toBe('closed');
    expect(transport.closed).toBe(true);
  });
});

describe('close() is idempotent', () => {
  it.each([
    ['server', () => serverPool().pool],
    ['client', () => clientPool().pool],
  ])('%s: every call returns the first call\'s promise, also before start()', async (_role, make) => {
    const pool = make();
    const first = pool.close(50);
    expect(pool.close(10_000)).toBe(first);
    expect(pool.close()).toBe(first);
    await first;
    expect(pool.stats.state).toBe('closed');
  });
});

/** A started pool of either side with two streams taken by the application. */
const WITH_TWO_TAKEN: Array<[string, () => Promise<{ pool: ServerPool | ClientPool; taken: [Duplex, Duplex] }>]> = [
  [
    'server',
    async () => {
      const { pool, transport } = serverPool();
      await pool.start();
      transport.arrive();
      transport.arrive();
      return { pool, taken: [(await pool.incomingGet(10))[1], (await pool.incomingGet(10))[1]] };
    },
  ],
  [
    'client',
    async () => {
      const { pool, transport } = clientPool({ minCap: 2, maxCap: 2 });
      pool.start();
      await eventually(() => transport.pending.length === 2, 1000, 'two dials');
      transport.complete('88888888');
      transport.complete('99999999');
      return { pool, taken: [await pool.outgoingGet('88888888', 1000), await pool.outgoingGet('99999999', 1000)] };
    },
  ],
];

describe.each(WITH_TWO_TAKEN)('%s close(timeout): taken streams are the application\'s until the timeout', (_role, withTwoTaken) => {
  it('leaves them open and usable, then cuts those still open with POOL_ERR_CLOSED, then resolves', async () => {
    const { pool, taken } = await withTwoTaken();
    const [finished, forgotten] = taken;
    expect(pool.stats.inUse).toBe(2);
    let cutAt = 0;
    const cut = new Promise<Error>((resolve) =>
      forgotten.on('error', (error) => {
        cutAt = Date.now();
        resolve(error);
      }),
    );
    let closedAt = 0;
    const closeStarted = Date.now();
    const closing = pool.close(300).then(() => (closedAt = Date.now()));

    // Within the close timeout both are still the application's.
    await sleep(20);
    expect(pool.stats).toMatchObject({ state: 'closing', inUse: 2 });
    expect([finished.destroyed, forgotten.destroyed]).toEqual([false, false]);
    forgotten.write('still usable');
    expect(forgotten.read()?.toString()).toBe('still usable');
    finished.end(); // the application is done with this one
    finished.resume();
    await eventually(() => pool.stats.inUse === 1, 1000, 'the finished stream to leave inUse');
    expect(closedAt).toBe(0);

    await closing;
    expect(await cut).toMatchObject({ name: 'PoolClosedError', code: 'POOL_ERR_CLOSED', message: expect.stringMatching(/close timeout \(300 ms\)/) });
    expect(cutAt).toBeGreaterThanOrEqual(closeStarted + 300);
    expect(closedAt).toBeGreaterThanOrEqual(cutAt);
    expect(finished.errored).toBeNull();
    expect(forgotten.destroyed).toBe(true);
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
  });

  it('resolves as soon as they have closed, long before the timeout', async () => {
    const { pool, taken } = await withTwoTaken();
    let closed = false;
    const closing = pool.close(60_000).then(() => (closed = true));
    await sleep(20);
    expect(closed).toBe(false);
    for (const stream of taken) stream.destroy();
    await closing; // the test's own timeout (30 s) is half the close timeout
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
    expect(taken.map((stream) => stream.errored)).toEqual([null, null]);
  });
});

describe('destroy(error): fails everything now', () => {
  it('server: gets, subscriptions and firstStream() reject, idle streams close, taken streams are cut at once, the transport closes', async () => {
    const { pool, transport } = serverPool({ reserveFirstId: true, closeTimeout: 60_000 }, new ManualServer({ firstIdZero: true }));
    await pool.start();
    const first = pool.firstStream(60_000); // 00000000 is the reserved one: this call waits for it
    const takenOne = transport.arrive(); // 00000000, to the waiting firstStream()
    const taken = transport.arrive();
    expect(await pool.incomingGet(10)).toEqual([taken.id, taken.stream]);
    const idle = transport.arrive();
    expect(await first).toBe(takenOne.stream);
    const get = (async () => {
      await pool.incomingGet(10); // takes `idle`
      return pool.incomingGet(60_000);
    })();
    await eventually(() => pool.stats.waiting === 1, 1000, 'a get to wait');
    let closedWith: unknown;
    pool.onIncoming(
      (_incoming: IncomingStream) => undefined,
      (error) => (closedWith = error),
    );
    const seen = Promise.all([errorOf(takenOne.stream), errorOf(taken.stream), errorOf(idle.stream)]);
    const cause = new Error('the tunnel is being torn down');

    await pool.destroy(cause);
    const error = await get.catch((e: unknown) => e);
    for (const got of [error, closedWith]) {
      expect(got).toBeInstanceOf(PoolClosedError);
      expect((got as Error).cause).toBe(cause);
    }
    // Taken streams: cut at once, not after the 60 s closeTimeout.
    expect([takenOne.stream, taken.stream, idle.stream].map((s) => s.destroyed)).toEqual([true, true, true]);
    for (const cut of await seen) {
      expect(cut).toMatchObject({ name: 'PoolClosedError', code: 'POOL_ERR_CLOSED' });
      expect(cut.cause).toBe(cause);
      expect(cut.message).toContain('was destroyed');
    }
    expect([takenOne.stream, taken.stream, idle.stream].map((s) => s.destroyed)).toEqual([true, true, true]);
    expect(transport.closed).toBe(true);
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
    expect(transport.begin()).toBe('closed');
  });

  it('server: idle streams and a held first stream are destroyed and counted as shutdown drops', async () => {
    const { pool, transport } = serverPool({ reserveFirstId: true }, new ManualServer({ firstIdZero: true }));
    await pool.start();
    const streams = [transport.arrive(), transport.arrive()].map(({ stream }) => stream);
    await pool.destroy();
    expect(streams.map((s) => s.destroyed)).toEqual([true, true]);
    expect(pool.stats.drops).toEqual({ shutdown: 2 });
    await expect(pool.firstStream(10)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
  });

  it('client: gets and waitForActive reject, dials in flight abort, taken streams are cut at once', async () => {
    const { pool, transport } = clientPool({ minCap: 2, maxCap: 2, closeTimeout: 60_000 });
    pool.start();
    await eventually(() => transport.pending.length === 2, 1000, 'two dials');
    transport.complete('aaaaaaaa');
    const stream = await pool.outgoingGet('aaaaaaaa', 1000);
    const seen = errorOf(stream);
    const get = pool.outgoingGet('bbbbbbbb', 60_000);
    const active = pool.waitForActive(5, 60_000);
    const cause = new Error('shutting down hard');

    await pool.destroy(cause);
    for (const got of await Promise.all([get.catch((e: unknown) => e), active.catch((e: unknown) => e)])) {
      expect(got).toBeInstanceOf(PoolClosedError);
      expect((got as Error).cause).toBe(cause);
    }
    expect(stream.destroyed).toBe(true);
    const cut = await seen;
    expect(cut).toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(cut.cause).toBe(cause);
    expect(transport.pending[0]!.context.signal.aborted).toBe(true);
    expect(transport.closed).toBe(true);
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
  });

  it('after close(): cuts the taken streams that close() was giving time, and both resolve', async () => {
    const { pool, transport } = serverPool();
    await pool.start();
    const taken = transport.arrive();
    await pool.incomingGet(10);
    const seen = errorOf(taken.stream);
    const closing = pool.close(60_000);
    expect(taken.stream.destroyed).toBe(false);
    expect(pool.destroy()).toBe(closing);
    await closing;
    expect(taken.stream.destroyed).toBe(true);
    const cut = await seen;
    expect(cut).toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(cut.cause).toBeUndefined();
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
  });

  it('a stream cut by destroy() without an error listener does not crash the process', async () => {
    const { pool, transport } = serverPool();
    await pool.start();
    const taken = transport.arrive(new PassThrough());
    await pool.incomingGet(10);
    await pool.destroy(new Error('gone'));
    expect(taken.stream.destroyed).toBe(true);
    expect((taken.stream as PassThrough).errored).toMatchObject({ code: 'POOL_ERR_CLOSED' });
  });
});

describe('client waitForActive: the shared waiter machinery', () => {
  it('resolves when enough streams are idle, times out, aborts with its signal, and rejects on close', async () => {
    const { pool, transport } = clientPool({ minCap: 2, maxCap: 2 });
    pool.start();
    await eventually(() => transport.pending.length === 2, 1000, 'two dials');
    const two = pool.waitForActive(2, 10_000);
    const timedOut = pool.waitForActive(3, 20);
    const controller = new AbortController();
    const aborted = pool.waitForActive(3, { timeout: 10_000, signal: controller.signal });
    const closed = pool.waitForActive(3, { timeout: 10_000 });
    expect(pool.stats.waiting).toBe(4);
    transport.complete('aaaaaaaa');
    transport.complete('bbbbbbbb');
    await expect(two).resolves.toBeUndefined();
    await expect(timedOut).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'POOL_ERR_ABORTED' });
    void pool.close(0);
    await expect(closed).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(pool.stats.waiting).toBe(0);
  });
});
