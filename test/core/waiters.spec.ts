import { describe, expect, it } from '@jest/globals';
import { PoolClosedError } from '../../lib/core/errors.js';
import { ConditionWaiters, KeyedWaiters, WaiterQueue } from '../../lib/core/waiters.js';

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

  it('says whether someone waits on a key now (waiting), which has() may not while a settled waiter leaves', async () => {
    const waiters = new KeyedWaiters<string>();
    const a = waiters.wait('aaaaaaaa', {}, () => 'x');
    expect(waiters.waiting('aaaaaaaa')).toBe(true);
    expect(waiters.offer('aaaaaaaa', 'a')).toBe(true);
    expect(waiters.waiting('aaaaaaaa')).toBe(false);
    await expect(a).resolves.toBe('a');
    expect(waiters.waiting('bbbbbbbb')).toBe(false);
  });
});

describe('ConditionWaiters', () => {
  it('releases each waiter when its own condition holds at a check(), at once if it holds already', async () => {
    const waiters = new ConditionWaiters();
    let level = 0;
    await expect(waiters.wait(() => true, {}, () => 'x')).resolves.toBeUndefined();
    const released: number[] = [];
    const one = waiters.wait(() => level >= 1, {}, () => 'x').then(() => released.push(1));
    const three = waiters.wait(() => level >= 3, {}, () => 'x').then(() => released.push(3));
    expect(waiters.size).toBe(2);
    level = 2;
    waiters.check();
    await one;
    expect(released).toEqual([1]);
    expect(waiters.size).toBe(1);
    level = 3;
    waiters.check();
    await three;
    expect(released).toEqual([1, 3]);
    expect(waiters.size).toBe(0);
  });

  it('times out, aborts and fails like the gets, and forgets the waiter each time', async () => {
    const waiters = new ConditionWaiters();
    const never = () => false;
    const controller = new AbortController();
    const timedOut = waiters.wait(never, { timeout: 10 }, () => 'not yet');
    const aborted = waiters.wait(never, { signal: controller.signal }, () => 'x');
    const failed = waiters.wait(never, { timeout: 10_000 }, () => 'x');
    await expect(timedOut).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT', message: 'not yet' });
    controller.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'POOL_ERR_ABORTED' });
    waiters.failAll(new PoolClosedError());
    await expect(failed).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(waiters.size).toBe(0);
  });
});
