import { describe, expect, it } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { MAX_MESSAGE_BYTES } from '../../lib/transports/ws/ws-duplex.js';
import { eventually, sleep } from '../support/net.js';
import { asWs, pattern, startWsPair, type WsPair } from './ws-support.js';
import { useTestScope } from '../support/scope.js';

// Bounded buffering: a slow (or stopped) reader makes the other end's write()
// report backpressure and this end's socket pause; neither ws's send queue
// (bufferedAmount) nor the readable buffer grows with the amount of data.
// Assertions are on buffer sizes, never on time.

const scope = useTestScope();
async function pair(): Promise<WsPair> {
  const p = await startWsPair({}, { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
  scope.defer(() => p.close());
  await p.client.waitForActive(1, 5000);
  return p;
}
async function handOff(p: WsPair): Promise<{ server: Duplex; client: Duplex }> {
  const [id, server] = await p.server.incomingGet(5000);
  const client = await p.client.outgoingGet(id, 5000);
  scope.defer(() => void server.destroy());
  scope.defer(() => void client.destroy());
  return { server, client };
}

type End = 'client' | 'server';
const CHUNK = 64 * 1024;
/** What one end may hold for one stream at most: a readable or writable high-water mark plus one message. */
const BOUND = 64 * 1024 + MAX_MESSAGE_BYTES;

interface Peaks {
  writerBuffered: number;
  writerQueued: number;
  readerBuffered: number;
}

/** Writes `total` pattern bytes in CHUNKs, waiting for 'drain' whenever write() says so. */
async function writeAll(writer: Duplex, total: number, peaks: Peaks, signal: { stop: boolean }): Promise<number> {
  let written = 0;
  while (written < total && !signal.stop) {
    const length = Math.min(CHUNK, total - written);
    const more = writer.write(pattern(written, length));
    written += length;
    peaks.writerBuffered = Math.max(peaks.writerBuffered, asWs(writer).bufferedAmount);
    peaks.writerQueued = Math.max(peaks.writerQueued, writer.writableLength);
    if (!more) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearInterval(poll);
          writer.off('drain', done);
          resolve();
        };
        // Also wakes when the test stops waiting for a drain that will not come.
        const poll = setInterval(() => signal.stop && done(), 20);
        writer.once('drain', done);
      });
    }
  }
  return written;
}

/** Reads `total` bytes at most `perTick` every millisecond, checking them against the pattern as they come. */
async function readSlowly(reader: Duplex, total: number, perTick: number, peaks: Peaks, timeout = 20_000): Promise<void> {
  let received = 0;
  const deadline = Date.now() + timeout;
  while (received < total) {
    if (reader.destroyed || reader.readableEnded || Date.now() > deadline) {
      throw new Error(`readSlowly: ${received} of ${total} bytes (destroyed ${reader.destroyed}, ended ${reader.readableEnded}, errored ${String(reader.errored)})`);
    }
    peaks.readerBuffered = Math.max(peaks.readerBuffered, reader.readableLength);
    let budget = perTick;
    // read(n) only for n ≤ what is buffered: a larger n would raise the stream's high-water mark.
    while (budget > 0 && reader.readableLength > 0) {
      const chunk = reader.read(Math.min(budget, reader.readableLength)) as Buffer;
      if (!chunk.equals(pattern(received, chunk.length))) throw new Error(`corrupt bytes at offset ${received}`);
      received += chunk.length;
      budget -= chunk.length;
    }
    if (reader.readableLength === 0) reader.read(0);
    await sleep(1);
  }
}

describe('ws backpressure', () => {
  it.each<[string, End, End]>([
    ['client → server (masked frames)', 'client', 'server'],
    ['server → client', 'server', 'client'],
  ])('%s: a slow reader bounds both ends; 24 MiB arrive intact', async (_what, from, to) => {
    const p = await pair();
    const ends = await handOff(p);
    const writer = ends[from];
    const reader = ends[to];
    const total = 24 * 1024 * 1024;
    const peaks: Peaks = { writerBuffered: 0, writerQueued: 0, readerBuffered: 0 };
    const [written] = await Promise.all([writeAll(writer, total, peaks, { stop: false }), readSlowly(reader, total, 128 * 1024, peaks)]);
    expect(written).toBe(total);
    expect(peaks.writerBuffered).toBeLessThanOrEqual(BOUND);
    expect(peaks.writerQueued).toBeLessThanOrEqual(BOUND);
    expect(peaks.readerBuffered).toBeLessThanOrEqual(BOUND);
    // Not vacuous: the writer really was held back.
    expect(peaks.writerQueued).toBeGreaterThan(0);
  });

  it.each<[string, End, End]>([
    ['client → server', 'client', 'server'],
    ['server → client', 'server', 'client'],
  ])('%s: a reader that stops pauses its socket; the writer stalls with bounded buffers, then all of it arrives', async (_what, from, to) => {
    const p = await pair();
    const ends = await handOff(p);
    const writer = ends[from];
    const reader = ends[to];
    const total = 256 * 1024 * 1024; // far more than kernel buffers can hold
    const peaks: Peaks = { writerBuffered: 0, writerQueued: 0, readerBuffered: 0 };
    const signal = { stop: false };
    const writing = writeAll(writer, total, peaks, signal);
    await eventually(() => asWs(reader).socketPaused, 10_000, 'the reader’s socket to pause');
    // Wait until the writer is stuck: it needs a drain and its buffers stop changing.
    let last = -1;
    let steady = 0;
    await eventually(
      () => {
        const now = asWs(writer).bufferedAmount + writer.writableLength;
        steady = now === last && writer.writableNeedDrain ? steady + 1 : 0;
        last = now;
        return steady >= 5;
      },
      10_000,
      'the writer to stall',
    );
    expect(reader.readableLength).toBeLessThanOrEqual(BOUND);
    expect(asWs(writer).bufferedAmount).toBeLessThanOrEqual(BOUND);
    expect(writer.writableLength).toBeLessThanOrEqual(BOUND);
    signal.stop = true;
    const written = await writing;
    expect(written).toBeLessThan(total);
    // Resume: everything written arrives, in order, then the end (which may come as soon as the last byte is read).
    const ended = new Promise<void>((resolve) => reader.once('end', resolve));
    writer.end();
    await readSlowly(reader, written, 4 * 1024 * 1024, peaks);
    expect(peaks.readerBuffered).toBeLessThanOrEqual(BOUND);
    reader.resume();
    await ended;
  });
});
