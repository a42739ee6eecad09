/**
 * Refill on demand (issue 18): a stream that leaves the client pool is
 * replaced at once, not at the next round, within the capacity; a failing
 * on-demand dial hands the pool back to its rounds and their back-off; the
 * Go pools' round-paced refill stays available as `refill: 'rounds'`.
 * The interval is a minute here: anything dialed in the spec is on demand.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { ClientPool } from '../../lib/core/client-pool.js';
import { PoolFullError } from '../../lib/core/errors.js';
import { ManualTransport } from '../support/manual-transport.js';
import { eventually } from '../support/net.js';

let pool: ClientPool | undefined;
afterEach(async () => {
  await pool?.close(0);
  pool = undefined;
});

/** A pool of two streams with a one-minute interval, filled by its first round; its IDs. */
async function filled(refill?: 'demand' | 'rounds'): Promise<{ transport: ManualTransport; pool: ClientPool; streams: Duplex[] }> {
  const transport = new ManualTransport();
  pool = new ClientPool(transport, { minCap: 2, maxCap: 2, minIvl: 60_000, maxIvl: 60_000, ...(refill ? { refill } : {}) });
  pool.start();
  await eventually(() => transport.pending.length === 2, 5000, 'the first round dials two');
  const streams = [transport.complete('00000001'), transport.complete('00000002')];
  await pool.waitForActive(2, 5000);
  return { transport, pool, streams };
}

/** A pool of four streams with a one-minute interval and the given refillGrace, filled by its first round. */
async function filledFour(refillGrace: number): Promise<{ transport: ManualTransport; pool: ClientPool; streams: Duplex[] }> {
  const transport = new ManualTransport();
  pool = new ClientPool(transport, { minCap: 4, maxCap: 4, minIvl: 60_000, maxIvl: 60_000, refillGrace });
  pool.start();
  await eventually(() => transport.pending.length === 4, 5000, 'the first round dials four');
  const streams = [1, 2, 3, 4].map((i) => transport.complete(`0000000${i}`));
  await pool.waitForActive(4, 5000);
  return { transport, pool, streams };
}

/** Lets the event loop run a few turns (I/O, immediates): time for anything scheduled on demand. */
const turns = async (n = 5): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

describe('client pool refill', () => {
  it('a take dials its replacement at once, without waiting for the interval', async () => {
    const { transport, pool } = await filled();
    (await pool.outgoingGet('00000001', 1000)).destroy();
    await eventually(() => transport.pending.length === 1, 5000, 'a replacement dial');
    transport.complete('00000003');
    await pool.waitForActive(2, 5000);
    // Full again: no more dials than the capacity.
    await turns();
    expect(transport.pending).toHaveLength(0);
    expect(pool.stats.totals.rounds).toBe(1);
  });

  it('while a quarter of the capacity is still idle, a take waits out refillGrace before its replacement dial; running low brings it forward', async () => {
    const { transport, pool } = await filledFour(60_000);
    // Three takes leave 3, 2, then 1 of 4 idle: a quarter or more, so the dials wait (the hand-offs' own bytes go first).
    for (let i = 1; i <= 3; i++) (await pool.outgoingGet(`0000000${i}`, 1000)).destroy();
    await turns(20);
    expect(transport.pending).toHaveLength(0);
    // The last one leaves none idle: every replacement due is dialed in the next turn, not after the grace.
    (await pool.outgoingGet('00000004', 1000)).destroy();
    await eventually(() => transport.pending.length === 4, 5000, 'four replacement dials');
    expect(pool.stats.totals.rounds).toBe(1);
  });

  it('refillGrace 0 dials the replacement of a take in the next event-loop turn', async () => {
    const { transport, pool } = await filledFour(0);
    (await pool.outgoingGet('00000001', 1000)).destroy();
    await turns(3);
    expect(transport.pending).toHaveLength(1);
  });

  it('a stream that died is replaced without the grace (no hand-off to let go first)', async () => {
    const { transport, pool, streams } = await filledFour(60_000);
    streams[0]!.destroy(new Error('reset'));
    await eventually(() => pool.active === 3 && transport.pending.length === 1, 5000, 'dropped, and a replacement dial');
  });

  it('several takes at once never dial past the capacity (dials in flight count)', async () => {
    const { transport, pool } = await filled();
    (await pool.outgoingGet('00000001', 1000)).destroy();
    (await pool.outgoingGet('00000002', 1000)).destroy();
    await eventually(() => transport.pending.length === 2, 5000, 'two replacement dials');
    await turns();
    expect(transport.pending).toHaveLength(2);
    // A get waiting for a named stream gets it from the replacement dial directly.
    const waiting = pool.outgoingGet('00000009', 5000);
    transport.complete('00000009');
    (await waiting).destroy();
    await eventually(() => transport.pending.length === 2, 5000, 'that one replaced too');
  });

  it('more replacements due than maxConcurrentDials: each dial that ends starts the next, not the next round', async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 6, maxCap: 6, minIvl: 60_000, maxIvl: 60_000, maxConcurrentDials: 2 });
    pool.start();
    const ids = ['00000001', '00000002', '00000003', '00000004', '00000005', '00000006'];
    // The first round: six dials, two at a time.
    for (const id of ids) {
      await eventually(() => transport.pending.length > 0, 5000, `the first round's dial for ${id}`);
      transport.complete(id);
    }
    await pool.waitForActive(6, 5000);
    for (const id of ids) (await pool.outgoingGet(id, 1000)).destroy();
    // Six replacements due, two in flight at most: as each completes, the next starts.
    for (let i = 0; i < 6; i++) {
      await eventually(() => transport.pending.length > 0, 5000, `replacement dial ${i + 1} of 6 (${pool!.stats.totals.dials - 6} dialed so far)`);
      expect(transport.pending.length).toBeLessThanOrEqual(2);
      transport.complete(`0000001${i}`);
    }
    await pool.waitForActive(6, 5000);
    expect(pool.stats.totals.rounds).toBe(1);
  });

  it("a take while the round's dials hold every dial slot: the replacement starts when one of them ends, and the two never dial past the capacity", async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 4, maxCap: 4, minIvl: 60_000, maxIvl: 60_000, maxConcurrentDials: 2, refillGrace: 0 });
    pool.start();
    // The first round: four dials, two slots.
    await eventually(() => transport.pending.length === 2, 5000, "the round's first two dials");
    transport.complete('00000001');
    await eventually(() => transport.pending.length === 2, 5000, "the round's third dial");
    // Taken while both slots are the round's: its replacement cannot start yet.
    (await pool.outgoingGet('00000001', 1000)).destroy();
    await turns(10);
    expect(transport.pending).toHaveLength(2);
    transport.complete('00000002');
    transport.complete('00000003');
    // The round's fourth dial and the replacement: four streams in all, not the next round's business.
    await eventually(() => transport.pending.length === 2, 5000, "the round's last dial and the replacement");
    transport.complete('00000004');
    transport.complete('00000005');
    await pool.waitForActive(4, 5000);
    await turns(10);
    expect({ pending: transport.pending.length, active: pool.active, dials: pool.stats.totals.dials }).toEqual({ pending: 0, active: 4, dials: 5 });
  });

  it('an idle stream that dies is replaced at once', async () => {
    const { transport, pool, streams } = await filled();
    // The idle stream under 00000002 is reset under the pool (the server went away from it).
    streams[1]!.destroy(new Error('reset'));
    await eventually(() => pool.active === 1 && transport.pending.length === 1, 5000, 'dropped, and a replacement dial');
    expect(pool.stats.drops).toEqual({ error: 1 });
  });

  it('a server that kills every stream it gives costs at most capacity replacements between two rounds, not a dial loop', async () => {
    const { transport, pool, streams } = await filled();
    let killed = 0;
    let next = 3;
    const live = [...streams];
    // Kill the idle streams one by one; complete every replacement dial that comes, and kill what it gives too.
    for (let i = 0; i < 6; i++) {
      live.shift()?.destroy(new Error('reset by the server'));
      killed++;
      await turns(10);
      while (transport.pending.length > 0) live.push(transport.complete((next++).toString(16).padStart(8, '0')));
      await turns(10);
    }
    expect(killed).toBe(6);
    // Two dropped streams replaced (the capacity); the rest wait for the next round, a minute away.
    expect(transport.dials).toBe(2 + 2);
    expect(pool.stats.totals.rounds).toBe(1);
  });

  it('a takeAny that finds the pool empty grows the capacity by one (up to maxCap) and dials at once', async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 1, maxCap: 3, minIvl: 60_000, maxIvl: 60_000 });
    pool.start();
    let next = 1;
    const id = (): string => (next++).toString(16).padStart(8, '0');
    // The first round completed.
    await eventually(() => transport.pending.length >= 1, 5000, 'the first round dials');
    while (transport.pending.length > 0) transport.complete(id());
    await pool.waitForActive(1, 5000);
    await eventually(() => pool!.stats.totals.rounds === 1, 5000, 'the first round over (its capacity adjusted)');
    const before = pool.capacity;
    expect(before).toBeLessThan(3);
    // Take every idle stream: they are replaced on demand up to the capacity (those dials stay pending).
    while (pool.active > 0) (await pool.takeAny(1000))[1].destroy();
    await eventually(() => transport.pending.length === before, 5000, 'the replacements dialed');
    // Nothing idle now: the next take grows the capacity and starts one more dial.
    const waiting = pool.takeAny(5000);
    await eventually(() => transport.pending.length === before + 1, 5000, 'a dial for the grown capacity');
    expect(pool.capacity).toBe(before + 1);
    transport.complete(id());
    (await waiting)[1].destroy();
    // Never past maxCap.
    while (pool.capacity < 3) {
      const more = pool.takeAny(5000);
      await turns(10);
      while (transport.pending.length > 0) transport.complete(id());
      (await more)[1].destroy();
    }
    for (let i = 0; i < 3; i++) {
      const more = pool.takeAny(5000);
      await turns(10);
      while (transport.pending.length > 0) transport.complete(id());
      (await more)[1].destroy();
    }
    expect(pool.capacity).toBe(3);
  });

  it('a takeAny that times out names its own timeout, whole, and what the pool was doing', async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    pool.start();
    // The server never answers: nothing becomes idle.
    const error = await pool.takeAny(40).then(() => undefined, (caught: unknown) => caught as Error & { code?: string });
    expect(error?.code).toBe('POOL_ERR_TIMEOUT');
    expect(error?.message).toBe('client pool default had no idle stream to take within 40 ms (capacity 1, 1 dialing)');
  });

  it("a round's dials start a few per event-loop turn, not as one burst ahead of the I/O waiting", async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 8, maxCap: 8, minIvl: 60_000, maxIvl: 60_000 });
    pool.start();
    expect(transport.pending).toHaveLength(4); // started synchronously: the first step
    await new Promise((resolve) => setImmediate(resolve));
    expect(transport.pending).toHaveLength(8);
  });

  it("want(n), the other end's gets waiting: the capacity grows to cover them (up to maxCap) and the dials start now", async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 1, maxCap: 4, minIvl: 60_000, maxIvl: 60_000 });
    pool.start();
    await eventually(() => transport.pending.length === 1, 5000, 'the first round dials one');
    transport.complete('00000001');
    await pool.waitForActive(1, 5000);
    await eventually(() => pool!.stats.totals.rounds === 1, 5000, 'the first round over');
    const dialsBefore = transport.dials;
    pool.want(2); // one idle, none in flight: room for 1 + 2
    await turns(5);
    expect(pool.capacity).toBe(3);
    expect(transport.dials - dialsBefore).toBe(2); // for the two wanted
    pool.want(10); // never past maxCap
    await turns(5);
    expect(pool.capacity).toBe(4);
    expect(transport.pending).toHaveLength(3);
  });

  it('an on-demand dial the server refuses stops on-demand refill: the rounds and their back-off decide', async () => {
    const { transport, pool } = await filled();
    (await pool.outgoingGet('00000001', 1000)).destroy();
    await eventually(() => transport.pending.length === 1, 5000, 'a replacement dial');
    transport.fail(new PoolFullError('the pool is full'));
    await turns();
    (await pool.outgoingGet('00000002', 1000)).destroy();
    await turns(20);
    expect(transport.pending).toHaveLength(0);
    expect(pool.stats.failures).toEqual({ POOL_ERR_FULL: 1 });
  });

  it("refill: 'rounds' replaces a taken stream only at the next round (the Go pools' behaviour)", async () => {
    const { transport, pool } = await filled('rounds');
    (await pool.outgoingGet('00000001', 1000)).destroy();
    await turns(20);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(transport.pending).toHaveLength(0);
    expect(pool.options.refill).toBe('rounds');
  });

  it('rejects an unknown refill mode, naming the option', () => {
    expect(() => new ClientPool(new ManualTransport(), { refill: 'eager' as never })).toThrow(/refill/);
  });
});
