import { describe, expect, it } from '@jest/globals';
import { PoolClosedError } from '../../lib/core/errors.js';
import { KeyedWaiters, WaiterQueue } from '../../lib/core/waiters.js';

describe('WaiterQueue', () => {
  it('serves waiters first in, first out, synchronously on offer', async () => {
    const queue = new WaiterQueue<number>();
    const first = queue.wait({}, () => 'timeout');
    const second = queue.wait({}, () => 'timeout');
    expect(queue.offer(1)).toBe(true);
    expect(queue.offer(2)).toBe(true);
    expect(queue.offer(3)).toBe(false);
    await expect(first).resolves.toBe(1);
    await expect(second).resolves.toBe(2);
    expect(queue.size).toBe(0);
  });

  it('times out with POOL_ERR_TIMEOUT and leaves the queue', async () => {
    const queue = new WaiterQueue<number>();
    const started = Date.now();
    await expect(queue.wait({ timeout: 30 }, () => 'too slow')).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT', message: 'too slow' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(queue.size).toBe(0);
    expect(queue.offer(1)).toBe(false);
  });

  it('aborts with POOL_ERR_ABORTED, also when already aborted', async () => {
    const queue = new WaiterQueue<number>();
    const controller = new AbortController();
    const waiting = queue.wait({ signal: controller.signal }, () => 'x');
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ code: 'POOL_ERR_ABORTED' });
    await expect(queue.wait({ signal: controller.signal }, () => 'x')).rejects.toMatchObject({ code: 'POOL_ERR_ABORTED' });
    expect(queue.size).toBe(0);
  });

  it('lets subscribers take turns with one-shot waiters, each value once', async () => {
    const queue = new WaiterQueue<number>();
    const a: number[] = [];
    const b: number[] = [];
    const unsubscribeA = queue.subscribe((v) => a.push(v), () => undefined);
    queue.subscribe((v) => b.push(v), () => undefined);
    const once = queue.wait({}, () => 'x');
    for (let i = 1; i <= 5; i++) queue.offer(i);
    // Order of sinks: A, B, once → A:1, B:2, once:3, A:4, B:5
    expect(a).toEqual([1, 4]);
    expect(b).toEqual([2, 5]);
    await expect(once).resolves.toBe(3);
    unsubscribeA();
    queue.offer(6);
    expect(a).toEqual([1, 4]);
    expect(b).toEqual([2, 5, 6]);
  });

  it('fails every sink on failAll and calls subscribers back', async () => {
    const queue = new WaiterQueue<number>();
    const closedWith: string[] = [];
    queue.subscribe(() => undefined, (error) => closedWith.push(error.code));
    const waiting = queue.wait({ timeout: 10_000 }, () => 'x');
    queue.failAll(new PoolClosedError());
    await expect(waiting).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(closedWith).toEqual(['POOL_ERR_CLOSED']);
    expect(queue.size).toBe(0);
  });
});

describe('KeyedWaiters', () => {
  it('serves only the waiter of the matching key', async () => {
    const waiters = new KeyedWaiters<string>();
    const a = waiters.wait('aaaaaaaa', {}, () => 'x');
    const b = waiters.wait('bbbbbbbb', {}, () => 'x');
    expect(waiters.offer('cccccccc', 'c')).toBe(false);
    expect(waiters.offer('bbbbbbbb', 'b')).toBe(true);
    await expect(b).resolves.toBe('b');
    expect(waiters.size).toBe(1);
    expect(waiters.offer('aaaaaaaa', 'a')).toBe(true);
    await expect(a).resolves.toBe('a');
    expect(waiters.has('aaaaaaaa')).toBe(false);
  });

  it('forgets a key whose only waiter timed out', async () => {
    const waiters = new KeyedWaiters<string>();
    await expect(waiters.wait('aaaaaaaa', { timeout: 5 }, () => 'x')).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    expect(waiters.has('aaaaaaaa')).toBe(false);
    expect(waiters.offer('aaaaaaaa', 'late')).toBe(false);
  });
});
