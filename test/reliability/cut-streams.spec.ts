/**
 * Issue 10, item 2, under churn: many pooled streams at once, some ended
 * normally, some cut (destroy() with or without an error, from either side,
 * at a random point of the transfer). The rule, on every stream and in both
 * directions: a reader either gets every byte (the same SHA-256) and a clean
 * end, or an error; a stream that was cut is never read as a clean end.
 */
import { describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { useTestScope } from '../support/scope.js';
import { inBatches, KIND_NAMES, prng, randomSource, startKind, takePair } from './support.js';

const scope = useTestScope();
const STREAMS = 48;
const AT_ONCE = 12;
const MAX_BYTES = 512 * 1024;

type Plan = 'complete' | 'cut' | 'cut-with-error';
interface Read {
  bytes: number;
  hash: string;
  /** 'close' without either: this side destroyed the stream itself. */
  first: 'end' | 'error' | 'close';
  /** This side had ended its own writing when the end arrived. */
  endedOwnSide: boolean;
}

/** Reads to the first 'end', 'error' or 'close', hashing what arrived. */
function readAll(stream: Duplex, timeout = 30_000): Promise<Read> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`neither 'end' nor 'error' within ${timeout} ms (${bytes} bytes)`)), timeout);
    let settled = false;
    const done = (first: Read['first']): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.on('error', () => undefined);
      resolve({ bytes, hash: hash.digest('hex'), first, endedOwnSide: stream.writableEnded });
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      hash.update(chunk);
    };
    stream.on('data', onData);
    stream.once('end', () => done('end'));
    stream.once('error', () => done('error'));
    stream.once('close', () => done('close'));
  });
}

/**
 * Writes `total` bytes in pieces; ends the stream after them, or, when
 * `cutAt` is set, destroys it once that many bytes were written. Resolves
 * with the SHA-256 of everything written.
 */
async function writeThen(stream: Duplex, total: number, seed: number, cutAt: number | undefined, withError: boolean): Promise<string> {
  const source = randomSource();
  const next = prng(seed);
  const hash = createHash('sha256');
  let written = 0;
  stream.on('error', () => undefined);
  while (written < (cutAt ?? total) && !stream.destroyed) {
    const length = Math.min((cutAt ?? total) - written, 1 + Math.floor(next() * 64 * 1024));
    const offset = Math.floor(next() * (source.length - length));
    const chunk = source.subarray(offset, offset + length);
    hash.update(chunk);
    written += length;
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve) => {
        const go = (): void => {
          stream.off('drain', go);
          stream.off('close', go);
          resolve();
        };
        stream.on('drain', go);
        stream.on('close', go);
      });
    }
  }
  if (cutAt === undefined) stream.end();
  else stream.destroy(withError ? new Error('cut by the test') : undefined);
  return hash.digest('hex');
}

describe.each(KIND_NAMES)('%s: cut streams under churn', (kind) => {
  it(`${STREAMS} streams, ${AT_ONCE} at once, a third ended normally and the rest cut from either side: every reader gets every byte or an error`, async () => {
    const p = await scope.pair(startKind, kind, { maxCap: 256 }, { minCap: AT_ONCE + 4, maxCap: AT_ONCE + 4, minIvl: 20, maxIvl: 20 });
    await p.client.waitForActive(AT_ONCE, 20_000);
    const violations: string[] = [];
    // TLS only: a reset that arrives behind unread bytes after this side
    // ended its own writing reads as an end (docs/SECURITY.md, "Cut streams").
    const knownGap: string[] = [];
    let delivered = 0;
    let errored = 0;
    await inBatches(STREAMS, AT_ONCE, async (i) => {
      const random = prng(1000 + i);
      const plans: Plan[] = ['complete', 'cut', 'cut-with-error'];
      const plan = plans[i % 3]!;
      const cutter = random() < 0.5 ? 'client' : 'server';
      const { client, server } = await takePair(scope, p);
      const sizes = { client: 1 + Math.floor(random() * MAX_BYTES), server: 1 + Math.floor(random() * MAX_BYTES) };
      const cutAt = plan === 'complete' ? undefined : Math.floor(random() * sizes[cutter]);
      const reads = { server: readAll(server), client: readAll(client) };
      const writes = {
        client: writeThen(client, sizes.client, 2 * i + 1, cutter === 'client' ? cutAt : undefined, plan === 'cut-with-error'),
        server: writeThen(server, sizes.server, 2 * i + 2, cutter === 'server' ? cutAt : undefined, plan === 'cut-with-error'),
      };
      // Direction by direction: what one side wrote against what the other read.
      for (const [writer, reader] of [['client', 'server'], ['server', 'client']] as const) {
        const [hash, read] = await Promise.all([writes[writer], reads[reader]]);
        // The side that cut its stream stopped reading it itself: nothing to judge there.
        if (plan !== 'complete' && reader === cutter) continue;
        const cut = plan !== 'complete' && writer === cutter;
        const whole = read.first === 'end' && read.bytes === (cut ? -1 : sizes[writer]) && read.hash === hash;
        if (read.first === 'error') errored++;
        else if (whole) delivered++;
        else {
          const what = `stream ${i} (${plan} by the ${cutter}), ${writer}→${reader}: a clean end after ${read.bytes} of ${cut ? `${cutAt} (cut)` : sizes[writer]} bytes`;
          (kind === 'tls' && cut && read.endedOwnSide ? knownGap : violations).push(what);
        }
        // A stream ended normally in both directions, with nothing cut, delivers everything.
        if (plan === 'complete' && !whole) violations.push(`stream ${i} (complete), ${writer}→${reader}: ${read.first} after ${read.bytes} of ${sizes[writer]} bytes`);
      }
      client.destroy();
      server.destroy();
    });
    expect(violations).toEqual([]);
    if (knownGap.length > 0) process.stdout.write(`${kind}: ${knownGap.length} cut(s) read as an end after the reader's own end (the documented TLS gap)\n`);
    expect(delivered).toBeGreaterThan(0);
    expect(errored).toBeGreaterThan(0);
  }, 120_000);
});
