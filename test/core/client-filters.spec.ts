/**
 * The two building blocks of "take by client": a waiter queue whose sinks
 * may take only values of one key (served first come, first served among
 * those that can), and the idle streams' index by client label.
 */
import { describe, expect, it } from '@jest/globals';
import { PassThrough } from 'node:stream';
import { IdleStreams, type DropReason } from '../../lib/core/idle-streams.js';
import { KeyedWaiters, WaiterQueue } from '../../lib/core/waiters.js';
import { PoolClosedError } from '../../lib/core/errors.js';

describe('WaiterQueue with keyed sinks', () => {
  it('gives a value to the oldest sink that takes its key; a value nobody takes is refused', async () => {
    const queue = new WaiterQueue<string>();
    const forA = queue.wait({}, () => 'timeout', 'a');
    const any = queue.wait({}, () => 'timeout');
    expect(queue.hasTaker('b')).toBe(true);
    expect(queue.offer('b1', 'b')).toBe(true); // the a sink cannot take it: the next one does
    expect(queue.hasTaker('b')).toBe(false);
    expect(queue.offer('b2', 'b')).toBe(false);
    expect(queue.offer('anonymous')).toBe(false); // no key: only sinks without a filter take it
    expect(queue.offer('a1', 'a')).toBe(true);
    await expect(any).resolves.toBe('b1');
    await expect(forA).resolves.toBe('a1');
  });

  it('rotates a keyed subscriber behind the others after each value', () => {
    const queue = new WaiterQueue<string>();
    const forA: string[] = [];
    const all: string[] = [];
    queue.subscribe((value) => forA.push(value), () => undefined, 'a');
    queue.subscribe((value) => all.push(value), () => undefined);
    for (const value of ['a1', 'b1', 'a2', 'a3', 'b2']) queue.offer(value, value[0]);
    // a1: A (oldest); b1: only the other can; a2: A again (it now waited longer); a3: the other's turn.
    expect(forA).toEqual(['a1', 'a2']);
    expect(all).toEqual(['b1', 'a3', 'b2']);
  });

  it('KeyedWaiters: a waiter with a filter is skipped for another client, and fail(key) ends the rest', async () => {
    const waiters = new KeyedWaiters<string>();
    const forB = waiters.wait('id1', {}, () => 'timeout', 'b');
    expect(waiters.hasTaker('id1', 'a')).toBe(false);
    expect(waiters.offer('id1', 'x', 'a')).toBe(false);
    waiters.fail('id1', new PoolClosedError('gone'));
    await expect(forB).rejects.toBeInstanceOf(PoolClosedError);
    expect(waiters.size).toBe(0);
    expect(waiters.has('id1')).toBe(false);
  });
});

describe('IdleStreams by label', () => {
  it('takes the oldest stream of a label, keeps the count per label, and forgets a label with its last stream', () => {
    const drops: DropReason[] = [];
    const idle = new IdleStreams((_id, reason) => drops.push(reason));
    const streams = Array.from({ length: 4 }, () => new PassThrough());
    idle.add('1', streams[0]!, 'a');
    idle.add('2', streams[1]!, 'b');
    idle.add('3', streams[2]!, 'a');
    idle.add('4', streams[3]!);
    expect([idle.countOf('a'), idle.countOf('b'), idle.countOf('c')]).toEqual([2, 1, 0]);
    expect(idle.labelOf('3')).toBe('a');
    expect(idle.labelOf('4')).toBeUndefined();
    expect(idle.takeOldest('b')?.[0]).toBe('2');
    expect(idle.takeOldest('b')).toBeUndefined();
    // A dead stream of the label is dropped on the way to the next one.
    streams[0]!.destroy();
    expect(idle.takeOldest('a')?.[0]).toBe('3');
    expect(drops).toEqual(['stale']);
    expect(idle.countOf('a')).toBe(0);
    expect(idle.takeOldest()?.[0]).toBe('4'); // unlabelled: only the unfiltered take finds it
    expect(idle.size).toBe(0);
    streams.forEach((stream) => stream.destroy());
  });

  it('leaves the index as streams die or are flushed', async () => {
    const idle = new IdleStreams(() => undefined);
    const a = new PassThrough();
    const b = new PassThrough();
    idle.add('1', a, 'a');
    idle.add('2', b, 'a');
    a.destroy();
    await new Promise((resolve) => a.once('close', resolve));
    expect(idle.countOf('a')).toBe(1);
    idle.destroyAll('flush');
    expect(idle.countOf('a')).toBe(0);
  });
});
