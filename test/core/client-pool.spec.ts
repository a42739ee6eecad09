import { afterEach, describe, expect, it } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { ClientPool, type ClientPoolOptions } from '../../lib/core/client-pool.js';
import { DialError, HandshakeError } from '../../lib/core/errors.js';
import { ManualTransport } from '../support/manual-transport.js';
import { eventually, sleep } from '../support/net.js';

let pool: ClientPool | undefined;
afterEach(async () => {
  // 0: cut at once whatever a test left taken (close() waits for taken streams).
  await pool?.close(0);
  pool = undefined;
});

function started(options: ClientPoolOptions = {}): { pool: ClientPool; transport: ManualTransport } {
  const transport = new ManualTransport();
  pool = new ClientPool(transport, { minIvl: 10, maxIvl: 10, ...options });
  pool.start();
  return { pool, transport };
}

describe('ClientPool (core, scripted transport)', () => {
  it('refuses gets before start with POOL_ERR_NOT_STARTED', async () => {
    pool = new ClientPool(new ManualTransport());
    await expect(pool.outgoingGet('aaaaaaaa')).rejects.toMatchObject({ code: 'POOL_ERR_NOT_STARTED' });
    expect(pool.ready).toBe(false);
  });

  it('dials up to capacity concurrently and keeps streams by ID', async () => {
    const { pool, transport } = started({ minCap: 3, maxCap: 3 });
    await eventually(() => transport.pending.length === 3, 1000, 'three concurrent dials');
    transport.complete('aaaaaaaa');
    transport.complete('bbbbbbbb');
    transport.complete('cccccccc');
    await pool.waitForActive(3, 1000);
    expect(pool.active).toBe(3);
    const stream = await pool.outgoingGet('bbbbbbbb', 100);
    expect(stream).toBeDefined();
    expect(pool.active).toBe(2);
    stream.destroy();
  });

  it('resolves a get for an ID the moment that stream arrives (no polling)', async () => {
    const { pool, transport } = started({ minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    await eventually(() => transport.pending.length === 1, 1000, 'a dial');
    let got: Duplex | undefined;
    const waiting = pool.outgoingGet('0badc0de', 5000).then((s) => (got = s));
    await new Promise((resolve) => setImmediate(resolve));
    expect(got).toBeUndefined();
    const stream = transport.complete('0badc0de');
    // Settled within the same turn of the event loop as the arrival: well
    // before any timer (the manager's interval here is a minute).
    await new Promise((resolve) => setImmediate(resolve));
    expect(got).toBe(stream);
    await waiting;
    expect(pool.active).toBe(0);
    expect(pool.stats.totals).toMatchObject({ created: 1, taken: 1 });
    stream.destroy();
  });

  it('rejects an unknown ID with POOL_ERR_TIMEOUT after the timeout', async () => {
    const { pool } = started();
    const startedAt = Date.now();
    await expect(pool.outgoingGet('deadbeef', 50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT', message: expect.stringContaining('deadbeef') });
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(45);
  });

  it.each(['', 'ABCDEF01', 'abc', 'abcdefgh', '123456789'])('rejects the malformed ID %j with POOL_ERR_INVALID_ID', async (id) => {
    const { pool } = started();
    await expect(pool.outgoingGet(id, 10)).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID' });
  });

  it('keeps bytes that arrive before the stream is taken', async () => {
    const { pool, transport } = started();
    await eventually(() => transport.pending.length === 1);
    const stream = transport.complete('11111111');
    await pool.waitForActive(1, 1000);
    stream.write('early bytes');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(pool.active).toBe(1);
    const taken = await pool.outgoingGet('11111111', 100);
    const chunk = await new Promise<Buffer>((resolve) => taken.once('data', resolve));
    expect(chunk.toString()).toBe('early bytes');
    taken.destroy();
  });

  it.each([
    ['an error', (s: Duplex) => s.destroy(Object.assign(new Error('reset by peer'), { code: 'ECONNRESET' })), 'error'],
    ['a bare end', (s: Duplex) => s.end(), 'end'],
    ['an EOF pushed by the transport', (s: Duplex) => s.push(null), 'end'],
    ['a close', (s: Duplex) => s.destroy(), 'close'],
  ])('drops an idle stream that dies by %s, counts it, and refills', async (_what, kill, reason) => {
    const { pool, transport } = started({ minCap: 1, maxCap: 1 });
    await eventually(() => transport.pending.length === 1);
    const stream = transport.complete('22222222');
    await pool.waitForActive(1, 1000);
    kill(stream);
    await eventually(() => pool.active === 0, 1000, 'the dead stream to leave');
    expect(pool.stats.drops[reason]).toBe(1);
    expect(pool.errorCount).toBe(1);
    await expect(pool.outgoingGet('22222222', 20)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    await eventually(() => transport.pending.length === 1, 1000, 'the manager to dial a replacement');
  });

  it('drops a duplicate ID and keeps the first stream', async () => {
    const { pool, transport } = started({ minCap: 2, maxCap: 2 });
    await eventually(() => transport.pending.length === 2);
    const first = transport.complete('33333333');
    const second = transport.complete('33333333');
    await eventually(() => second.destroyed, 1000);
    expect(pool.stats.drops.duplicate).toBe(1);
    expect(await pool.outgoingGet('33333333', 100)).toBe(first);
    first.destroy();
  });

  it('counts dial and handshake failures by code and in errorCount', async () => {
    const { pool, transport } = started({ minCap: 2, maxCap: 2 });
    await eventually(() => transport.pending.length === 2);
    transport.fail(new DialError('refused'));
    transport.fail(new HandshakeError('bad cert'));
    await eventually(() => pool.errorCount === 2, 1000);
    expect(pool.stats.failures).toEqual({ POOL_ERR_DIAL: 1, POOL_ERR_HANDSHAKE: 1 });
    pool.addError();
    expect(pool.errorCount).toBe(3);
    pool.resetError();
    expect(pool.errorCount).toBe(0);
  });

  it('grows capacity while the pool is drained and shrinks it while unused', async () => {
    const { pool, transport } = started({ minCap: 1, maxCap: 3 });
    expect(pool.capacity).toBe(1);
    await eventually(() => transport.pending.length === 1);
    transport.complete('44444444'); // round: 1 of 1 created → ratio 1 → capacity 2
    await eventually(() => pool.capacity === 2, 1000, 'capacity to grow');
    await eventually(() => transport.pending.length === 1, 1000, 'the next round to dial');
    transport.complete('55555555'); // 1 of 2 → 0.5 → unchanged
    await eventually(() => pool.stats.totals.rounds >= 2, 1000);
    expect(pool.capacity).toBe(2);
    // Full pool: rounds create nothing → ratio 0 → shrink back to minCap.
    await eventually(() => pool.capacity === 1, 2000, 'capacity to shrink');
  });

  it('hands any ready stream, or dials one, in single mode', async () => {
    const { pool, transport } = started({ isSingle: true, minCap: 1, maxCap: 1 });
    await eventually(() => transport.pending.length === 1);
    expect(transport.pending[0]!.context.readId).toBe(false);
    const idle = transport.complete(null);
    await pool.waitForActive(1, 1000);
    expect(await pool.outgoingGet('', 100)).toBe(idle);
    // None ready now: the get dials its own stream.
    const fresh = pool.outgoingGet('', 1000);
    await eventually(() => transport.pending.length >= 1);
    const dialed = transport.complete(null);
    expect(await fresh).toBe(dialed);
    idle.destroy();
    dialed.destroy();
  });

  it('close(): rejects pending gets with POOL_ERR_CLOSED, aborts dials, closes idle streams, is idempotent', async () => {
    const { pool, transport } = started({ minCap: 2, maxCap: 2 });
    await eventually(() => transport.pending.length === 2);
    const idle = transport.complete('66666666');
    await pool.waitForActive(1, 1000);
    const pending = pool.outgoingGet('77777777', 10_000);
    const active = pool.waitForActive(5, 10_000);
    const abortSignal = transport.pending[0]!.context.signal;
    const closing = pool.close();
    expect(pool.close()).toBe(closing);
    await expect(pending).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    await expect(active).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    await closing;
    expect(abortSignal.aborted).toBe(true);
    expect(idle.destroyed).toBe(true);
    expect(transport.closed).toBe(true);
    expect(pool.stats.state).toBe('closed');
    await expect(pool.outgoingGet('66666666')).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(() => pool.start()).toThrow(expect.objectContaining({ code: 'POOL_ERR_CLOSED' }));
  });

  it('close() on a pool that never started resolves', async () => {
    pool = new ClientPool(new ManualTransport());
    await expect(pool.close()).resolves.toBeUndefined();
  });

  it('single mode: streams taken idle and freshly dialed are both tracked: close() waits for them and resolves as soon as they close', async () => {
    // One round, then the manager sleeps: the only dial after it is the get's own.
    const { pool, transport } = started({ isSingle: true, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    await eventually(() => transport.pending.length === 1);
    transport.complete(null);
    await pool.waitForActive(1, 1000);
    const idleTaken = await pool.outgoingGet('', 100);
    const fresh = pool.outgoingGet('', 1000); // none idle now: a dial of its own
    await eventually(() => transport.pending.length >= 1);
    transport.complete(null);
    const dialed = await fresh;
    expect(pool.stats.inUse).toBe(2);
    let closed = false;
    const closing = pool.close(60_000).then(() => (closed = true));
    await sleep(20);
    expect(closed).toBe(false);
    idleTaken.end();
    idleTaken.destroy();
    dialed.destroy();
    await closing; // the test's own timeout (30 s) is half the close timeout
    expect(pool.stats).toMatchObject({ state: 'closed', inUse: 0 });
    expect([idleTaken.errored, dialed.errored]).toEqual([null, null]);
  });

  it('cuts a taken stream nobody listens to for errors without crashing the process', async () => {
    const { pool, transport } = started();
    await eventually(() => transport.pending.length === 1);
    transport.complete('12121212');
    const taken = await pool.outgoingGet('12121212', 1000);
    await pool.close(10);
    expect(taken.destroyed).toBe(true);
    expect(taken.errored).toMatchObject({ code: 'POOL_ERR_CLOSED' });
  });
});

describe('ClientPool reconnect back-off (scripted transport)', () => {
  it('probes a dead server with one dial per round, backing off exponentially up to maxBackoff', async () => {
    const { pool, transport } = started({ minCap: 4, maxCap: 4, minIvl: 10, maxIvl: 10, maxBackoff: 80 });
    // Round 1: a burst of 4, all failing.
    await eventually(() => transport.pending.length === 4, 1000, 'the first burst');
    for (let i = 0; i < 4; i++) transport.fail(new Error('ECONNREFUSED'));
    // Later rounds: exactly one probe each, the waits growing.
    const waits: number[] = [];
    for (let round = 0; round < 5; round++) {
      await eventually(() => transport.pending.length > 0, 2000, `probe ${round + 1}`);
      expect(transport.pending).toHaveLength(1);
      waits.push(pool.stats.nextRoundInMs);
      transport.fail(new Error('ECONNREFUSED'));
    }
    expect(pool.stats.failedRounds).toBeGreaterThanOrEqual(5);
    // Equal jitter: each wait is within [ceiling/2, ceiling], ceiling = min(80, 10 * 2^k).
    waits.forEach((wait, k) => {
      const ceiling = Math.min(80, 10 * 2 ** (k + 1));
      expect(wait).toBeGreaterThanOrEqual(ceiling / 2);
      expect(wait).toBeLessThanOrEqual(ceiling);
    });
    // The server comes back: the probe succeeds and the same round fills the rest.
    await eventually(() => transport.pending.length === 1, 2000, 'the next probe');
    transport.complete('aaaaaaaa');
    await eventually(() => transport.pending.length === 3, 1000, 'the rest of the round');
    transport.complete('bbbbbbbb');
    transport.complete('cccccccc');
    transport.complete('dddddddd');
    await pool.waitForActive(4, 1000);
    await eventually(() => pool.stats.failedRounds === 0, 1000);
    expect(pool.stats.nextRoundInMs).toBe(pool.interval);
  });
});

describe('ClientPool idle recycling and take-time checks (scripted transport)', () => {
  it('closes streams idle longer than maxIdle and dials replacements', async () => {
    const { pool, transport } = started({ minCap: 2, maxCap: 2, maxIdle: 100 });
    await eventually(() => transport.pending.length === 2);
    const old = [transport.complete('aaaaaaaa'), transport.complete('bbbbbbbb')];
    await pool.waitForActive(2, 1000);
    await eventually(() => old.every((s) => s.destroyed), 2000, 'the old streams to expire');
    expect(pool.stats.drops.expired).toBe(2);
    expect(pool.errorCount).toBe(0); // recycling is not an error
    await eventually(() => transport.pending.length === 2, 1000, 'replacement dials');
    await expect(pool.outgoingGet('aaaaaaaa', 10)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
  });

  it('keeps idle streams forever when maxIdle is 0 (the default)', async () => {
    const { pool, transport } = started({ minCap: 1, maxCap: 1 });
    await eventually(() => transport.pending.length === 1);
    const stream = transport.complete('cccccccc');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(stream.destroyed).toBe(false);
    expect(await pool.outgoingGet('cccccccc', 10)).toBe(stream);
    stream.destroy();
  });

  it('never hands out a stream idle longer than maxIdle, even before the next round sweeps it', async () => {
    // One round a minute: only the take-time check can catch the old stream.
    const { pool, transport } = started({ minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, maxIdle: 50 });
    await eventually(() => transport.pending.length === 1);
    const old = transport.complete('eeeeeeee');
    await pool.waitForActive(1, 1000);
    await sleep(80);
    expect(old.destroyed).toBe(false); // not swept yet
    await expect(pool.outgoingGet('eeeeeeee', 20)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    expect(old.destroyed).toBe(true);
    expect(pool.stats.drops).toEqual({ expired: 1 });
    expect(pool.errorCount).toBe(0);
  });

  it('never hands out a stream idle longer than maxIdle in single mode either', async () => {
    const { pool, transport } = started({ isSingle: true, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, maxIdle: 50 });
    await eventually(() => transport.pending.length === 1);
    const old = transport.complete(null);
    await pool.waitForActive(1, 1000);
    await sleep(80);
    const taking = pool.outgoingGet('', 1000);
    // The old stream is closed at take time; a fresh dial serves the get.
    await eventually(() => transport.pending.length === 1, 1000, 'a fresh dial');
    expect(old.destroyed).toBe(true);
    const fresh = transport.complete(null);
    expect(await taking).toBe(fresh);
    expect(pool.stats.drops).toEqual({ expired: 1 });
    fresh.destroy();
  });

  it("never hands out a stream the transport's isUsable rejects", async () => {
    const transport = new ManualTransport();
    const unusable = new Set<Duplex>();
    (transport as ManualTransport & { isUsable(s: Duplex): boolean }).isUsable = (s) => !unusable.has(s);
    pool = new ClientPool(transport, { minCap: 1, maxCap: 1, minIvl: 10, maxIvl: 10 });
    pool.start();
    await eventually(() => transport.pending.length === 1);
    const stream = transport.complete('dddddddd');
    await pool.waitForActive(1, 1000);
    unusable.add(stream);
    await expect(pool.outgoingGet('dddddddd', 20)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    expect(stream.destroyed).toBe(true);
    expect(pool.stats.drops.stale).toBe(1);
  });
});
