/**
 * Issue 10, item 5, "Refusal dial storm", on the scripted transport: a
 * round in which the server refused most dials holds the back-off, shrinks
 * the next burst to twice what the server took, slows the interval and
 * halves the capacity; clean rounds open the burst again.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { ClientPool } from '../../lib/core/client-pool.js';
import { PoolFullError, PoolRefusedError } from '../../lib/core/errors.js';
import { ManualTransport } from '../support/manual-transport.js';
import { eventually } from '../support/net.js';

let pool: ClientPool | undefined;
afterEach(async () => {
  await pool?.close(0);
  pool = undefined;
});

const hex = (n: number): string => n.toString(16).padStart(8, '0');

describe('ClientPool refusals (scripted transport)', () => {
  it('one success among refusals holds the back-off and the next round dials twice what the server took', async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 10, maxCap: 10, minIvl: 10, maxIvl: 10, maxBackoff: 40 });
    pool.start();
    let next = 0;
    // Round 1: the whole deficit; the server takes one and refuses nine.
    await eventually(() => transport.pending.length === 10, 5000, 'the first burst');
    transport.complete(hex(next++));
    for (let i = 0; i < 9; i++) transport.fail(new PoolRefusedError('closed before the ID'));
    await eventually(() => pool!.stats.failedRounds === 1, 5000, 'a failed round');
    expect(pool.stats.nextRoundInMs).toBeGreaterThanOrEqual(10); // backing off, not the plain interval alone
    expect(pool.stats.nextRoundMaxDials).toBe(2);
    // Round 2: a probe, then (window 2) one more dial, not the deficit of 9.
    await eventually(() => transport.pending.length === 1, 5000, 'the probe');
    transport.complete(hex(next++));
    await eventually(() => transport.pending.length === 1, 5000, 'the rest of the window');
    expect(transport.dials).toBe(12);
    transport.complete(hex(next++));
    // Clean rounds: the window doubles (4, 8) until it covers the deficit.
    const bursts: number[] = [];
    while (pool.active < 10) {
      await eventually(() => transport.pending.length > 0, 5000, 'a round');
      await new Promise((resolve) => setTimeout(resolve, 5)); // the whole burst is started synchronously
      bursts.push(transport.pending.length);
      while (transport.pending.length > 0) transport.complete(hex(next++));
      await eventually(() => pool!.stats.dialing === 0, 5000, 'the round to end');
    }
    expect(bursts).toEqual([4, 3]);
    expect(pool.stats.failedRounds).toBe(0);
    expect(pool.stats.nextRoundMaxDials).toBeNull();
    expect(pool.stats.failures).toEqual({ POOL_ERR_REFUSED: 9 });
  });

  it('refusals (pool full) halve an adaptive capacity and slow the interval', async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 2, maxCap: 64, minIvl: 10, maxIvl: 1000, maxBackoff: 40, refill: 'rounds' });
    pool.start();
    // Grow the capacity with clean rounds: every dial succeeds, the streams are taken at once.
    let next = 0;
    while (pool.capacity < 16) {
      await eventually(() => transport.pending.length > 0, 5000, 'a round');
      while (transport.pending.length > 0) {
        const id = hex(next++);
        transport.complete(id);
        await pool.outgoingGet(id, 5000).then((stream) => stream.destroy());
      }
    }
    // Now the server is full: everything refused, one success.
    await eventually(() => transport.pending.length > 1, 5000, 'a burst');
    // The round starts its dials a few per event-loop turn: the whole burst is out once capacity dials are pending.
    await eventually(() => transport.pending.length === pool!.capacity, 5000, 'the whole burst');
    const capacity = pool.capacity;
    const interval = pool.interval;
    expect(transport.pending.length).toBe(capacity);
    transport.complete(hex(next++));
    while (transport.pending.length > 0) transport.fail(new PoolFullError());
    await eventually(() => pool!.stats.failedRounds === 1, 5000, 'a failed round');
    expect(pool.capacity).toBe(Math.max(2, Math.ceil(capacity / 2)));
    // The next round starts with a slower interval, not a faster one.
    await eventually(() => transport.pending.length === 1, 5000, 'the probe');
    expect(pool.interval).toBeGreaterThan(interval);
    transport.fail(new PoolFullError());
  });
});
