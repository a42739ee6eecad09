/**
 * The reservation of a server pool's first stream as one state object
 * (waiting → held → taken, or lost), checked on its own with a host that
 * records what it is asked. The pool-level behaviour is in server-pool.spec
 * and reliability/first-stream.spec.
 */
import { describe, expect, it } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { PoolClosedError } from '../../lib/core/errors.js';
import { FirstStream, type FirstStreamHost } from '../../lib/core/first-stream.js';
import type { DropReason } from '../../lib/core/idle-streams.js';

function host(): FirstStreamHost & { handedOut: Duplex[]; drops: DropReason[] } {
  const handedOut: Duplex[] = [];
  const drops: DropReason[] = [];
  return {
    name: 'spec',
    handedOut,
    drops,
    handOut: (stream) => {
      if (stream.destroyed) return undefined;
      handedOut.push(stream);
      return stream;
    },
    dropped: (reason) => void drops.push(reason),
    isUsable: () => true,
  };
}

describe('FirstStream', () => {
  it('waiting → held → taken: held until asked, handed out once, then every call rejects FIRST_STREAM_TAKEN', async () => {
    const h = host();
    const first = new FirstStream(h);
    expect(first.state).toBe('waiting');
    const stream = new PassThrough();
    first.arrive(stream);
    expect(first.state).toBe('held');
    await expect(first.take({}, Infinity)).resolves.toBe(stream);
    expect(first.state).toBe('taken');
    expect(h.handedOut).toEqual([stream]);
    await expect(first.take({}, Infinity)).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_TAKEN' });
  });

  it('waiting → taken: the oldest waiting call takes it, the others reject FIRST_STREAM_TAKEN', async () => {
    const first = new FirstStream(host());
    const a = first.take({}, Infinity);
    const b = first.take({}, Infinity);
    const stream = new PassThrough();
    first.arrive(stream);
    await expect(a).resolves.toBe(stream);
    await expect(b).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_TAKEN' });
    expect(first.state).toBe('taken');
  });

  it('held → lost: dies before it is taken, counted by its reason; calls reject FIRST_STREAM_LOST with the cause', async () => {
    const h = host();
    const first = new FirstStream(h);
    const stream = new PassThrough();
    first.arrive(stream);
    const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    stream.destroy(reset);
    await new Promise((resolve) => stream.once('close', resolve));
    expect(first.state).toBe('lost');
    expect(h.drops).toEqual(['error']);
    const error = await first.take({}, Infinity).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_LOST' });
    expect((error as Error).cause).toBe(reset);
  });

  it('waiting → lost: arrives dead while a call waits: dropped as stale, the call rejects FIRST_STREAM_LOST', async () => {
    const h = host();
    const first = new FirstStream(h);
    const waiting = first.take({}, Infinity);
    const dead = new PassThrough();
    dead.destroy();
    first.arrive(dead);
    await expect(waiting).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_LOST' });
    expect(h.drops).toEqual(['stale']);
    expect(first.state).toBe('lost');
  });

  it('close(): waiting calls reject with the given error; a held stream is closed as a shutdown drop, not lost', async () => {
    const waitingHost = host();
    const waitingFirst = new FirstStream(waitingHost);
    const call = waitingFirst.take({}, Infinity);
    const closed = new PoolClosedError('closing');
    waitingFirst.close(closed);
    await expect(call).rejects.toBe(closed);

    const h = host();
    const first = new FirstStream(h);
    const stream = new PassThrough();
    first.arrive(stream);
    first.close(closed);
    expect(stream.destroyed).toBe(true);
    expect(h.drops).toEqual(['shutdown']);
  });

  it('times out a waiting call with POOL_ERR_TIMEOUT and stays waiting', async () => {
    const first = new FirstStream(host());
    await expect(first.take({}, 10)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    expect(first.state).toBe('waiting');
  });
});
