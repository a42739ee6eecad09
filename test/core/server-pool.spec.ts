import { afterEach, describe, expect, it, jest } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { ServerPool, type ServerPoolOptions, type IncomingStream } from '../../lib/core/server-pool.js';
import type { Admission } from '../../lib/core/transport.js';
import { ManualServer } from '../support/manual-transport.js';
import { eventually, sleep } from '../support/net.js';

let pool: ServerPool | undefined;
afterEach(async () => {
  // 0: cut at once whatever a test left taken (close() waits for taken streams).
  await pool?.close(0);
  pool = undefined;
});

async function started(options: ServerPoolOptions = {}, firstIdZero = false) {
  const transport = new ManualServer({ firstIdZero });
  pool = new ServerPool(transport, options);
  await pool.start();
  return { pool, transport };
}

function connected(transport: ManualServer, address?: string): { id: string; stream: PassThrough } {
  const stream = new PassThrough();
  const result = transport.connect(address, stream);
  if (typeof result === 'string') throw new Error(`refused: ${result}`);
  return { id: result.id, stream };
}

describe('ServerPool (core, scripted transport)', () => {
  it('hands out streams in arrival order with the IDs it drew', async () => {
    const { pool, transport } = await started();
    const a = connected(transport);
    const b = connected(transport);
    expect(a.id).toMatch(/^[0-9a-f]{8}$/);
    expect(a.id).not.toBe(b.id);
    expect(pool.active).toBe(2);
    expect(await pool.incomingGet(10)).toEqual([a.id, a.stream]);
    expect(await pool.incomingGet(10)).toEqual([b.id, b.stream]);
  });

  it('issues 00000000 first on transports that do', async () => {
    const { transport } = await started({}, true);
    expect(connected(transport).id).toBe('00000000');
    expect(connected(transport).id).not.toBe('00000000');
  });

  it('delivers a stream arriving while incomingGet waits to that waiter (never orphaned)', async () => {
    const { pool, transport } = await started();
    const waiting = pool.incomingGet(5000);
    const a = connected(transport);
    expect(await waiting).toEqual([a.id, a.stream]);
    expect(pool.active).toBe(0);
    expect(pool.stats.totals).toEqual({ accepted: 1, taken: 1 });
  });

  it('refuses beyond maxCap, counting streams still handshaking', async () => {
    const { pool, transport } = await started({ maxCap: 2 });
    connected(transport);
    const handshaking = transport.begin();
    expect(typeof handshaking).toBe('object');
    expect(transport.begin()).toBe('full');
    expect(pool.stats.refusals).toEqual({ full: 1 });
    (handshaking as Admission).fail('tls');
    expect(pool.stats.refusals).toEqual({ full: 1, tls: 1 });
    expect(typeof transport.begin()).toBe('object');
  });

  it('refuses beyond maxHandshakes while idle streams still fit', async () => {
    const { pool, transport } = await started({ maxCap: 10, maxHandshakes: 2, maxHandshakesPerPeer: 2 });
    const first = transport.begin() as Admission;
    transport.begin();
    expect(transport.begin()).toBe('busy');
    first.accept(new PassThrough());
    expect(typeof transport.begin()).toBe('object');
    expect(pool.stats.refusals).toEqual({ busy: 1 });
    expect(pool.stats.handshaking).toBe(2);
  });

  it('holds connection-level handshake slots (TLS before admission) against maxHandshakes', async () => {
    const { pool, transport } = await started({ maxCap: 10, maxHandshakes: 2, maxHandshakesPerPeer: 2 });
    const acceptor = transport.acceptor!;
    const first = acceptor.connecting();
    expect(typeof first).toBe('function');
    expect(typeof transport.begin()).toBe('object'); // one admission in its handshake
    expect(acceptor.connecting()).toBe('busy');
    expect(transport.begin()).toBe('busy');
    expect(pool.stats.handshaking).toBe(2);
    (first as () => void)();
    (first as () => void)(); // releasing twice frees one slot only
    expect(pool.stats.handshaking).toBe(1);
    expect(typeof acceptor.connecting()).toBe('function');
    expect(acceptor.connecting()).toBe('busy');
    expect(pool.stats.refusals).toEqual({ busy: 3 });
  });

  it('gives one peer address at most maxHandshakesPerPeer slots (half of maxHandshakes by default): another address still gets the rest', async () => {
    const { pool, transport } = await started({ maxCap: 100, maxHandshakes: 8 });
    expect(pool.options.maxHandshakesPerPeer).toBe(4);
    const acceptor = transport.acceptor!;
    const attacker = [acceptor.connecting('127.0.0.2'), acceptor.connecting('::ffff:127.0.0.2'), transport.begin('127.0.0.2'), transport.begin('127.0.0.2')];
    expect(attacker.every((slot) => typeof slot !== 'string')).toBe(true);
    expect(acceptor.connecting('127.0.0.2')).toBe('peer-busy');
    expect(transport.begin('::ffff:127.0.0.2')).toBe('peer-busy');
    const others = [transport.begin('127.0.0.1'), acceptor.connecting('127.0.0.3'), transport.begin('127.0.0.3'), acceptor.connecting('127.0.0.4')];
    expect(others.every((slot) => typeof slot !== 'string')).toBe(true);
    expect(transport.begin('127.0.0.5')).toBe('busy');
    expect(pool.stats.handshaking).toBe(8);
    (attacker[0] as () => void)();
    expect(typeof transport.begin('127.0.0.2')).toBe('object');
    expect(pool.stats.refusals).toEqual({ 'peer-busy': 2, busy: 1 });
  });

  it('gives one connection at most maxHandshakesPerConnection streams in their handshake (a quarter of maxHandshakes by default)', async () => {
    const { pool, transport } = await started({ maxCap: 100, maxHandshakes: 8 });
    expect(pool.options.maxHandshakesPerConnection).toBe(2);
    const acceptor = transport.acceptor!;
    const session = {};
    const first = acceptor.admit('127.0.0.1', session) as Admission;
    expect(typeof acceptor.admit('127.0.0.1', session)).toBe('object');
    expect(acceptor.admit('127.0.0.1', session)).toBe('connection-busy');
    // Another connection of the same peer still has room within the peer's share.
    expect(typeof acceptor.admit('127.0.0.1', {})).toBe('object');
    first.accept(new PassThrough());
    expect(typeof acceptor.admit('127.0.0.1', session)).toBe('object');
    expect(pool.stats.refusals).toEqual({ 'connection-busy': 1 });
  });

  it('checks the peer address at connecting(): a refused address never takes an allowed peer\'s slot; 4 per address (16 in all) may go on to hear the refusal, the rest are refused "ip" at once', async () => {
    const { pool, transport } = await started({ maxCap: 10, maxHandshakes: 100, allowedIps: '127.0.0.1' });
    const acceptor = transport.acceptor!;
    const strangers = Array.from({ length: 4 }, () => acceptor.connecting('10.0.0.1'));
    expect(strangers.every((slot) => typeof slot === 'function')).toBe(true);
    expect(acceptor.connecting('10.0.0.1')).toBe('ip');
    for (let i = 2; i <= 4; i++) for (let j = 0; j < 4; j++) expect(typeof acceptor.connecting(`10.0.0.${i}`)).toBe('function');
    expect(acceptor.connecting('10.0.0.5')).toBe('ip');
    // They hold none of the allowed peers' slots, and hear 'ip' when they ask for a stream.
    expect(transport.begin('10.0.0.1')).toBe('ip');
    const allowed = Array.from({ length: 50 }, () => acceptor.connecting('127.0.0.1'));
    expect(allowed.every((slot) => typeof slot === 'function')).toBe(true);
    expect(pool.stats.handshaking).toBe(16 + 50);
    (strangers[0] as () => void)();
    expect(typeof acceptor.connecting('10.0.0.1')).toBe('function');
    // Behind a trusted proxy the address is checked later, at admit(), and the proxy's address takes no peer share.
    expect(typeof acceptor.connecting('10.0.0.9', { checkAddress: false })).toBe('function');
    expect(pool.stats.refusals).toEqual({ ip: 3 });
  });

  it('a connection behind a trusted proxy (checkAddress false) counts in the total only: the proxy\'s address has no share to exhaust', async () => {
    const { pool, transport } = await started({ maxCap: 100, maxHandshakes: 8 });
    const acceptor = transport.acceptor!;
    const viaProxy = Array.from({ length: 8 }, () => acceptor.connecting('10.0.0.1', { checkAddress: false }));
    expect(viaProxy.every((slot) => typeof slot === 'function')).toBe(true);
    expect(acceptor.connecting('10.0.0.1', { checkAddress: false })).toBe('busy');
    (viaProxy[0] as () => void)();
    expect(pool.stats.handshaking).toBe(7);
  });

  it('rejects per-peer and per-connection limits above the ones they divide', () => {
    expect(() => new ServerPool(new ManualServer(), { maxHandshakes: 10, maxHandshakesPerPeer: 11 })).toThrow(/maxHandshakesPerPeer/);
    expect(() => new ServerPool(new ManualServer(), { maxHandshakes: 10, maxHandshakesPerPeer: 4, maxHandshakesPerConnection: 5 })).toThrow(/maxHandshakesPerConnection/);
    expect(new ServerPool(new ManualServer(), { maxHandshakes: 1 }).options).toMatchObject({ maxHandshakesPerPeer: 1, maxHandshakesPerConnection: 1 });
  });

  it('refuses peers outside allowedIps, comparing IPv4-mapped addresses', async () => {
    const { pool, transport } = await started({ allowedIps: ['127.0.0.1'] });
    expect(transport.connect('10.1.1.1')).toBe('ip');
    expect(typeof transport.connect('::ffff:127.0.0.1')).toBe('object');
    expect(pool.stats.refusals).toEqual({ ip: 1 });
  });

  it('times out incomingGet with POOL_ERR_TIMEOUT', async () => {
    const { pool } = await started();
    await expect(pool.incomingGet(20)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
  });

  it('keeps streams while nobody listens and gives each to exactly one subscriber', async () => {
    const { pool, transport } = await started();
    const early = [connected(transport), connected(transport)];
    expect(pool.active).toBe(2);
    const a: IncomingStream[] = [];
    const b: IncomingStream[] = [];
    const offA = pool.onIncoming((item) => a.push(item));
    expect(a.map(([id]) => id)).toEqual(early.map(({ id }) => id));
    const offB = pool.onIncoming((item) => b.push(item));
    const later = [connected(transport), connected(transport)];
    expect([...a, ...b].map(([id]) => id).sort()).toEqual([...early, ...later].map(({ id }) => id).sort());
    expect(b).toHaveLength(1);
    offA();
    offB();
    const kept = connected(transport);
    expect(pool.active).toBe(1);
    expect((await pool.incomingGet(10))[0]).toBe(kept.id);
  });

  it('drops an idle stream that dies and never hands it out', async () => {
    const { pool, transport } = await started();
    const dead = connected(transport);
    const alive = connected(transport);
    dead.stream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    await eventually(() => pool.active === 1, 1000);
    expect(pool.stats.drops).toEqual({ error: 1 });
    expect((await pool.incomingGet(10))[0]).toBe(alive.id);
  });

  it('reserves the first stream when asked', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const first = connected(transport);
    const second = connected(transport);
    expect(first.id).toBe('00000000');
    expect(await pool.firstStream(10)).toBe(first.stream);
    expect((await pool.incomingGet(10))[0]).toBe(second.id);
  });

  it('close(): rejects pending gets, completes subscribers, destroys idle and late streams at once', async () => {
    const { pool, transport } = await started();
    const first = connected(transport);
    const taken: Duplex = (await pool.incomingGet(10))[1];
    expect(taken).toBe(first.stream);
    const again = connected(transport);
    const pendingAdmission = transport.begin() as Admission;
    let closedWith: string | undefined;
    // `again` waits idle in the pool, so this get takes it at once.
    await expect(pool.incomingGet(10_000)).resolves.toEqual([again.id, again.stream]);
    const next = pool.incomingGet(10_000);
    pool.onIncoming(() => undefined, (error) => (closedWith = error.code));
    // The subscriber takes turns with `next`: one more stream goes to `next`, the one after that stays idle.
    const toNext = connected(transport);
    await expect(next).resolves.toEqual([toNext.id, toNext.stream]);
    const pending = pool.incomingGet(10_000);
    const closing = pool.close(10_000);
    await expect(pending).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(closedWith).toBe('POOL_ERR_CLOSED');
    expect(transport.closed).toBe(true);
    // Taken streams are the application's until the close timeout.
    expect([taken.destroyed, again.stream.destroyed, toNext.stream.destroyed]).toEqual([false, false, false]);
    expect(pool.stats.inUse).toBe(3);
    const late = new PassThrough();
    pendingAdmission.accept(late);
    expect(late.destroyed).toBe(true);
    expect(transport.begin()).toBe('closed');
    taken.destroy();
    again.stream.destroy();
    toNext.stream.destroy();
    await closing;
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
  });

  it('close() destroys idle streams at once and counts them', async () => {
    const { pool, transport } = await started();
    const idle = [connected(transport), connected(transport)];
    await pool.close(10_000);
    expect(idle.map(({ stream }) => stream.destroyed)).toEqual([true, true]);
    expect(pool.stats.drops).toEqual({ shutdown: 2 });
  });

  it('counts streams handed out by every path in inUse until they close', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const first = connected(transport); // reserved: not in inUse until taken
    const viaGet = connected(transport);
    expect(pool.stats.inUse).toBe(0);
    expect((await pool.incomingGet(10))[1]).toBe(viaGet.stream);
    const waiting = pool.incomingGet(1000);
    const viaWaiter = connected(transport);
    expect((await waiting)[1]).toBe(viaWaiter.stream);
    const queued = connected(transport);
    const viaSubscriber: Duplex[] = [];
    const off = pool.onIncoming(([, stream]) => viaSubscriber.push(stream));
    const live = connected(transport);
    off();
    expect(viaSubscriber).toEqual([queued.stream, live.stream]);
    expect(await pool.firstStream(10)).toBe(first.stream);
    expect(pool.stats.inUse).toBe(5);
    expect(pool.stats.totals.taken).toBe(4); // the first stream is not one of the pool's
    for (const stream of [first, viaGet, viaWaiter, queued, live].map((c) => c.stream)) stream.destroy();
    await eventually(() => pool.stats.inUse === 0, 1000, 'inUse back to 0');
  });
});

describe('ServerPool: the reserved first stream before it is taken', () => {
  it.each([
    ['an error', (stream: PassThrough) => stream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' })), 'error'],
    ['an end', (stream: PassThrough) => stream.end(), 'end'],
    ['a close', (stream: PassThrough) => stream.destroy(), 'close'],
  ])('dies by %s: dropped and counted, never crashes, and firstStream() rejects with POOL_ERR_FIRST_STREAM_LOST', async (_what, kill, reason) => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const first = connected(transport);
    expect(first.id).toBe('00000000');
    kill(first.stream);
    await eventually(() => (pool.stats.drops[reason] ?? 0) === 1, 1000, `a '${reason}' drop`);
    expect(pool.stats.drops).toEqual({ [reason]: 1 });
    expect(pool.errorCount).toBe(1);
    const error = await pool.firstStream(10_000).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'FirstStreamLostError', code: 'POOL_ERR_FIRST_STREAM_LOST' });
    expect((error as Error).message).toContain('00000000');
    // The rest of the pool is unaffected.
    const next = connected(transport);
    expect((await pool.incomingGet(10))[1]).toBe(next.stream);
    next.stream.destroy();
  });

  it('a firstStream() waiting when it arrives takes it at once; after close() it rejects with POOL_ERR_CLOSED', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const waiting = pool.firstStream(1000);
    const first = connected(transport);
    expect(await waiting).toBe(first.stream);
    expect(pool.stats.inUse).toBe(1);
    first.stream.destroy();
    await pool.close();
    await expect(pool.firstStream(10)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
  });

  it('a second firstStream() after the stream was taken rejects at once with POOL_ERR_FIRST_STREAM_TAKEN', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const first = connected(transport);
    expect(await pool.firstStream()).toBe(first.stream);
    // No timeout given: the default getTimeout is Infinity, so only a rejection can settle this.
    const error = await pool.firstStream().catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'FirstStreamTakenError', code: 'POOL_ERR_FIRST_STREAM_TAKEN' });
    expect((error as Error).message).toContain('00000000');
    first.stream.destroy();
  });

  it('of two firstStream() calls waiting when it arrives, one takes it and the other rejects with POOL_ERR_FIRST_STREAM_TAKEN', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const a = pool.firstStream();
    const b = pool.firstStream();
    const first = connected(transport);
    expect(await a).toBe(first.stream);
    await expect(b).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_TAKEN' });
    await expect(pool.firstStream()).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_TAKEN' });
    first.stream.destroy();
  });

  it('an untaken reserved stream is closed with the pool and counted as a shutdown drop', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const first = connected(transport);
    await pool.close();
    expect(first.stream.destroyed).toBe(true);
    expect(pool.stats.drops).toEqual({ shutdown: 1 });
  });
});

describe('ServerPool maxIdle: idle streams too old to hand out', () => {
  /**
   * Fakes only setInterval, so the pool's sweep runs when the test says
   * (jest.advanceTimersByTime) while real time, the clock the ages are
   * measured on, and every other timer go on as usual.
   */
  function fakeSweepOnly(): void {
    jest.useFakeTimers({
      doNotFake: ['Date', 'hrtime', 'nextTick', 'performance', 'queueMicrotask', 'setImmediate', 'clearImmediate', 'setTimeout', 'clearTimeout'],
    });
  }
  afterEach(() => {
    jest.useRealTimers();
  });

  it.each([
    ['incomingGet', (p: ServerPool) => p.incomingGet(1000)],
    [
      'onIncoming',
      (p: ServerPool) =>
        new Promise<IncomingStream>((resolve) => {
          p.onIncoming((incoming, unsubscribe) => {
            unsubscribe();
            resolve(incoming);
          });
        }),
    ],
  ])('%s never hands out a stream idle longer than maxIdle: it is closed at take time and counted as expired', async (_path, take) => {
    fakeSweepOnly();
    const { pool, transport } = await started({ maxIdle: 50 });
    const old = connected(transport);
    await sleep(80);
    // The sweep has not run (it is faked): only the take-time check can catch it.
    expect(old.stream.destroyed).toBe(false);
    expect(pool.active).toBe(1);
    const fresh = connected(transport);
    const [id, stream] = await take(pool);
    expect([id, stream]).toEqual([fresh.id, fresh.stream]);
    expect(old.stream.destroyed).toBe(true);
    expect(pool.stats.drops).toEqual({ expired: 1 });
    expect(pool.errorCount).toBe(0); // recycling is not an error
    stream.destroy();
  });

  it('hands out a stream younger than maxIdle as usual', async () => {
    fakeSweepOnly();
    const { pool, transport } = await started({ maxIdle: 60_000 });
    const a = connected(transport);
    await sleep(30);
    expect(await pool.incomingGet(10)).toEqual([a.id, a.stream]);
    expect(pool.stats.drops).toEqual({});
    a.stream.destroy();
  });

  it('sweeps: an idle stream older than maxIdle is closed without anyone taking it', async () => {
    const { pool, transport } = await started({ maxIdle: 40 });
    const old = connected(transport);
    await eventually(() => old.stream.destroyed, 2000, 'the sweep to close the old stream');
    expect(pool.active).toBe(0);
    expect(pool.stats.drops).toEqual({ expired: 1 });
    expect(pool.errorCount).toBe(0);
  });

  it('runs one sweep timer only with maxIdle, on the maxIdle / 4 period, and clears it on close()', async () => {
    fakeSweepOnly();
    const { pool, transport } = await started({ maxIdle: 200 });
    expect(jest.getTimerCount()).toBe(1);
    const old = connected(transport);
    await sleep(220);
    expect(old.stream.destroyed).toBe(false);
    jest.advanceTimersByTime(50);
    expect(old.stream.destroyed).toBe(true);
    expect(pool.stats.drops).toEqual({ expired: 1 });
    await pool.close();
    expect(jest.getTimerCount()).toBe(0);

    await started();
    expect(jest.getTimerCount()).toBe(0);
  });

  it('does not expire the reserved first stream', async () => {
    const { pool, transport } = await started({ reserveFirstId: true, maxIdle: 20 }, true);
    const first = connected(transport);
    await sleep(100);
    expect(first.stream.destroyed).toBe(false);
    expect(await pool.firstStream(10)).toBe(first.stream);
    first.stream.destroy();
  });
});
