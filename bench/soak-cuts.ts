/**
 * Soak addition (issue 10, item 2): cut streams under churn. Beside the
 * echo workers, one loop takes a stream pair, sends up to 256 KiB one way,
 * and either ends the stream normally or cuts it (destroy(), with or
 * without an error, at a random point, from the writing side). The rule:
 * the reader gets every byte (same SHA-256) and a clean end, or an error;
 * a cut stream read as a clean end is a truncation, and fails the run.
 */
import { createHash, randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../lib/core/client-pool.js';
import type { ServerPool } from '../lib/core/server-pool.js';

export interface CutCounters {
  /** Transfers judged. */
  checked: number;
  /** Ended normally, every byte read. */
  delivered: number;
  /** Read as an error (cut on purpose, or by a fault or restart of the run). */
  errored: number;
  /** Read as a clean end with bytes missing or wrong: the rule broken. */
  truncated: number;
  /** The first few truncations, for the summary. */
  samples: string[];
}

export interface CutChecks {
  counters: CutCounters;
  /** Resolves once the loop stopped (after `running()` turned false). */
  done: Promise<void>;
}

const MAX_BYTES = 256 * 1024;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

interface ReadResult {
  first: 'end' | 'error' | 'timeout';
  bytes: number;
  hash: string;
}

function readToEndOrError(stream: Duplex, timeout: number): Promise<ReadResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve) => {
    let settled = false;
    const done = (first: ReadResult['first']): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stream.off('data', onData);
      resolve({ first, bytes, hash: hash.digest('hex') });
    };
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      hash.update(chunk);
    };
    const timer = setTimeout(() => done('timeout'), timeout);
    stream.on('data', onData);
    stream.once('end', () => done('end'));
    stream.once('error', () => done('error'));
    stream.once('close', () => done('error')); // closed under the reader without an end: not a clean end
  });
}

async function write(stream: Duplex, data: Buffer): Promise<void> {
  let offset = 0;
  while (offset < data.length && !stream.destroyed) {
    const piece = data.subarray(offset, offset + 16 * 1024);
    offset += piece.length;
    if (!stream.write(piece)) {
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
}

/** Starts the loop; it runs while `running()` is true. */
export function startCutChecks(options: {
  server: () => ServerPool | undefined;
  client: ClientPool;
  running: () => boolean;
  stepTimeout: number;
}): CutChecks {
  const counters: CutCounters = { checked: 0, delivered: 0, errored: 0, truncated: 0, samples: [] };
  const source = randomFillSync(Buffer.allocUnsafe(MAX_BYTES));
  const done = (async () => {
    let round = 0;
    while (options.running()) {
      round++;
      const server = options.server();
      if (!server) {
        await sleep(20);
        continue;
      }
      let pair: { server: Duplex; client: Duplex };
      try {
        const [id, serverSide] = await server.incomingGet(options.stepTimeout);
        serverSide.on('error', () => undefined);
        try {
          const clientSide = await options.client.outgoingGet(id, options.stepTimeout);
          clientSide.on('error', () => undefined);
          pair = { server: serverSide, client: clientSide };
        } catch {
          serverSide.destroy();
          continue;
        }
      } catch {
        await sleep(20);
        continue;
      }
      const fromClient = Math.random() < 0.5;
      const writer = fromClient ? pair.client : pair.server;
      const reader = fromClient ? pair.server : pair.client;
      const size = 1 + Math.floor(Math.random() * MAX_BYTES);
      const data = source.subarray(0, size);
      const plan = round % 3; // 0: ended normally; 1: cut; 2: cut with an error
      const sent = plan === 0 ? data : data.subarray(0, Math.floor(Math.random() * size));
      const read = readToEndOrError(reader, 3 * options.stepTimeout);
      await write(writer, sent);
      if (plan === 0) writer.end();
      else writer.destroy(plan === 2 ? new Error('cut by the soak') : undefined);
      const result = await read;
      counters.checked++;
      if (result.first === 'end') {
        const whole = plan === 0 && result.bytes === size && result.hash === createHash('sha256').update(data).digest('hex');
        if (whole) counters.delivered++;
        else {
          counters.truncated++;
          if (counters.samples.length < 5) counters.samples.push(`${fromClient ? 'client→server' : 'server→client'} ${plan === 0 ? 'ended' : 'cut'}: a clean end after ${result.bytes} of ${plan === 0 ? size : `${sent.length} (cut)`} bytes`);
        }
      } else if (result.first === 'error') counters.errored++;
      pair.client.destroy();
      pair.server.destroy();
    }
  })();
  return { counters, done };
}
