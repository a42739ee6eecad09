/**
 * Issue 10, item 5, "Shared AbortSignal": 100 000 gets that share one
 * AbortSignal. With one 'abort' listener per get, abort() removed each
 * listener from a list as long as the number of gets (75 s of blocked event
 * loop for 100 000). The waiters now share one listener per signal: the
 * specs count the listener calls on the signal instead of timing anything.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { ClientPool } from '../../lib/core/client-pool.js';
import { PoolAbortedError } from '../../lib/core/errors.js';
import { ServerPool } from '../../lib/core/server-pool.js';
import { KeyedWaiters, WaiterQueue } from '../../lib/core/waiters.js';
import { ManualServer, ManualTransport } from '../support/manual-transport.js';

const GETS = 100_000;

/** A signal whose listener calls are counted. */
function countedSignal(): { controller: AbortController; calls: { add: number; remove: number } } {
  const controller = new AbortController();
  const calls = { add: 0, remove: 0 };
  const signal = controller.signal;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<typeof add>) => {
    calls.add++;
    add(...args);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    calls.remove++;
    remove(...args);
  }) as typeof signal.removeEventListener;
  return { controller, calls };
}

/** Counts how the `gets` settled: every one must reject with POOL_ERR_ABORTED. */
async function outcomes(gets: Array<Promise<unknown>>): Promise<Record<string, number>> {
  const settled = await Promise.allSettled(gets);
  const counts: Record<string, number> = {};
  for (const result of settled) {
    const key =
      result.status === 'fulfilled' ? 'fulfilled' : result.reason instanceof PoolAbortedError ? (result.reason as PoolAbortedError).code : String(result.reason);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup) await step();
  cleanup = [];
});

describe('one AbortSignal shared by many waiters', () => {
  it(`client: ${GETS} outgoingGet on one signal add one listener, and abort() rejects them all`, async () => {
    // No dial ever completes: every get waits for its ID.
    const pool = new ClientPool(new ManualTransport(), { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    pool.start();
    cleanup.push(() => pool.close(0));
    const { controller, calls } = countedSignal();
    const gets: Array<Promise<unknown>> = [];
    for (let i = 0; i < GETS; i++) {
      const id = (i % 4096).toString(16).padStart(8, '0');
      gets.push(pool.outgoingGet(id, { timeout: Infinity, signal: controller.signal }));
    }
    expect(pool.stats.waiting).toBe(GETS);
    expect(calls).toEqual({ add: 1, remove: 0 });
    controller.abort();
    expect(await outcomes(gets)).toEqual({ POOL_ERR_ABORTED: GETS });
    expect(pool.stats.waiting).toBe(0);
    expect(calls.add).toBe(1);
  }, 60_000);

  it(`server: ${GETS} incomingGet on one signal add one listener, and abort() rejects them all`, async () => {
    const pool = new ServerPool(new ManualServer(), {});
    await pool.start();
    cleanup.push(() => pool.close(0));
    const { controller, calls } = countedSignal();
    const gets = Array.from({ length: GETS }, () => pool.incomingGet({ timeout: Infinity, signal: controller.signal }));
    expect(calls).toEqual({ add: 1, remove: 0 });
    controller.abort();
    expect(await outcomes(gets)).toEqual({ POOL_ERR_ABORTED: GETS });
    expect(pool.stats.waiting).toBe(0);
  }, 60_000);

  it('a waiter served or timed out leaves the signal alone, and the next waiters still abort', async () => {
    const { controller, calls } = countedSignal();
    const queue = new WaiterQueue<number>();
    const served = queue.wait({ signal: controller.signal }, () => 'x');
    const timedOut = queue.wait({ signal: controller.signal, timeout: 5 }, () => 'too slow');
    expect(queue.offer(1)).toBe(true);
    await expect(served).resolves.toBe(1);
    await expect(timedOut).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    const keyed = new KeyedWaiters<number>();
    const later = [queue.wait({ signal: controller.signal }, () => 'x'), keyed.wait('aaaaaaaa', { signal: controller.signal }, () => 'x')];
    expect(calls).toEqual({ add: 1, remove: 0 });
    controller.abort();
    expect(await outcomes(later)).toEqual({ POOL_ERR_ABORTED: 2 });
    expect({ queue: queue.size, keyed: keyed.size, offered: queue.offer(2) }).toEqual({ queue: 0, keyed: 0, offered: false });
    // Already aborted: rejected at once, no listener added.
    await expect(queue.wait({ signal: controller.signal }, () => 'x')).rejects.toMatchObject({ code: 'POOL_ERR_ABORTED' });
    expect(calls.add).toBe(1);
  });

  it('two signals: aborting one rejects only its own waiters', async () => {
    const a = new AbortController();
    const b = new AbortController();
    const queue = new WaiterQueue<number>();
    const onA = queue.wait({ signal: a.signal }, () => 'x');
    const onB = queue.wait({ signal: b.signal }, () => 'x');
    a.abort();
    await expect(onA).rejects.toMatchObject({ code: 'POOL_ERR_ABORTED' });
    expect(queue.offer(7)).toBe(true);
    await expect(onB).resolves.toBe(7);
  });
});
