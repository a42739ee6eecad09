import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import fc from 'fast-check';
import { PassThrough } from 'node:stream';
import { readExact } from '../../lib/transports/common/read-exact.js';
import { chunk, rejectionCode, runs, tick } from './fc.js';

type Ending = 'end' | 'close' | 'error' | 'hold' | 'abort';

const EVENTS = ['readable', 'end', 'error', 'close'] as const;

/** The read's deadline, on a fake clock that moves only when the property moves it. */
const DEADLINE = 30;

/** Everything still buffered, in order: `read()` with no size may return one chunk at a time (it does on Node 26). */
function drain(stream: PassThrough): Buffer {
  const chunks: Buffer[] = [];
  for (let piece = stream.read() as Buffer | null; piece !== null; piece = stream.read() as Buffer | null) chunks.push(piece);
  return Buffer.concat(chunks);
}

describe('readExact (property): any bytes, any chunking, any ending', () => {
  // The deadline runs on a fake clock: a loaded machine that feeds the chunks
  // slowly can never make it fire early, and the 'hold' case fires it on purpose.
  // Stream events (nextTick) and the feeding (setImmediate) stay real.
  beforeEach(() => {
    jest.useFakeTimers({ doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('resolves with exactly the first `length` bytes and leaves the rest unread, or rejects with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(1, 4, 8),
        fc.uint8Array({ minLength: 0, maxLength: 24 }),
        fc.array(fc.nat({ max: 64 }), { maxLength: 6 }),
        fc.constantFrom<Ending>('end', 'close', 'error', 'hold', 'abort'),
        fc.boolean(),
        async (length, payload, cuts, ending, withRefusal) => {
          const stream = new PassThrough();
          const abort = new AbortController();
          // The caller's own listener (a transport destroys the stream on failure; the pool listens after success).
          stream.on('error', () => undefined);
          const before = EVENTS.map((event) => stream.listenerCount(event));
          const reading = readExact(stream, length, DEADLINE, abort.signal, withRefusal ? { refusal: 'refused' } : {}).then(
            (bytes) => ({ bytes }),
            (error: unknown) => ({ error: error as { code?: string; message: string } }),
          );
          // One chunk per turn of the event loop, as a socket delivers them, all within the deadline.
          for (const piece of chunk(payload, cuts)) {
            stream.write(piece);
            await tick();
          }
          if (ending === 'end') stream.end();
          else if (ending === 'close') stream.destroy();
          else if (ending === 'error') stream.destroy(Object.assign(new Error('boom'), { code: 'ECONNRESET' }));
          else if (ending === 'abort') abort.abort();
          // The ending's events are nextTicks: a few turns let them all through. Then the deadline
          // passes, so a read that is still waiting settles (a 'hold' on missing bytes must).
          for (let turn = 0; turn < 5; turn++) await tick();
          jest.advanceTimersByTime(DEADLINE);
          const settled = await reading;
          // Whatever happened, readExact left no listener behind.
          expect(EVENTS.map((event) => stream.listenerCount(event))).toEqual(before);
          if (payload.length >= length) {
            // Every byte arrived before the ending: success, whatever the ending.
            expect('bytes' in settled).toBe(true);
            const { bytes } = settled as { bytes: Buffer };
            expect(bytes.equals(Buffer.from(payload.subarray(0, length)))).toBe(true);
            // The rest is still in the stream, in order, for the application.
            expect(drain(stream).equals(Buffer.from(payload.subarray(length)))).toBe(true);
          } else {
            expect('error' in settled).toBe(true);
            const { code, message } = (settled as { error: { code?: string; message: string } }).error;
            const refused = withRefusal && payload.length === 0 && (ending === 'end' || ending === 'close');
            expect(code).toBe(ending === 'abort' ? 'POOL_ERR_CLOSED' : refused ? 'POOL_ERR_REFUSED' : 'POOL_ERR_HANDSHAKE');
            // Only a stream held open waits for the deadline; any other ending is seen when it happens.
            if (ending === 'hold') expect(message).toBe(`the ID did not arrive within ${DEADLINE} ms`);
            else expect(message).not.toMatch(/did not arrive within/);
          }
          stream.destroy();
        },
      ),
      runs(300),
    );
  });

  it('a stream that ended before the read started is rejected, typed, within the timeout', async () => {
    const stream = new PassThrough();
    stream.end();
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    expect(await rejectionCode(readExact(stream, 8, 50))).toMatch(/^POOL_ERR_(HANDSHAKE|REFUSED)$/);
  });
});

describe('readExact on a stream that is already over', () => {
  // Regression: none of these emits an event any more, so readExact waited for its timeout.
  const long = 60_000;

  it('rejects at once when the stream has already ended', async () => {
    const stream = new PassThrough();
    stream.end();
    stream.resume();
    await new Promise((resolve) => stream.once('end', resolve));
    await expect(readExact(stream, 4, long)).rejects.toMatchObject({ code: 'POOL_ERR_HANDSHAKE' });
  });

  it('rejects at once when the stream is already destroyed', async () => {
    const stream = new PassThrough();
    stream.destroy();
    await new Promise((resolve) => stream.once('close', resolve));
    await expect(readExact(stream, 4, long)).rejects.toMatchObject({ code: 'POOL_ERR_HANDSHAKE' });
  });

  it('rejects at once with the refusal when the stream closed before a byte', async () => {
    const stream = new PassThrough();
    stream.destroy();
    await new Promise((resolve) => stream.once('close', resolve));
    await expect(readExact(stream, 4, long, undefined, { refusal: 'refused' })).rejects.toMatchObject({ code: 'POOL_ERR_REFUSED' });
  });

  it('rejects at once when the signal is already aborted', async () => {
    const stream = new PassThrough();
    // The signal a transport passes is the pool's lifecycle: its abort is the pool's close.
    await expect(readExact(stream, 4, long, AbortSignal.abort())).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED', name: 'PoolClosedError' });
    expect(EVENTS.map((event) => stream.listenerCount(event))).toEqual([0, 0, 0, 0]);
  });
});
