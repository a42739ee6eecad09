import type { Duplex } from 'node:stream';

/** What a reader saw: its bytes, and whether the stream ended cleanly or errored first. */
export interface ReadOutcome {
  bytes: number;
  data: Buffer[];
  /** 'end' (a clean end) or 'error', whichever came first. */
  first: 'end' | 'error';
  error?: Error & { code?: string };
}

/**
 * Reads `stream` until its first 'end' or 'error' (bounded by `timeout`).
 * A tcp/TLS pooled stream is half-open, so after 'end' it does not close by
 * itself: the first of the two events is what a reader (or a `pipe()`) acts on.
 */
export function readOutcome(stream: Duplex, timeout = 20_000, keep = false): Promise<ReadOutcome> {
  return new Promise((resolve, reject) => {
    const data: Buffer[] = [];
    let bytes = 0;
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`readOutcome: neither 'end' nor 'error' within ${timeout} ms (${bytes} bytes read)`));
    }, timeout);
    const onData = (chunk: Buffer): void => {
      bytes += chunk.length;
      if (keep) data.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve({ bytes, data, first: 'end' });
    };
    const onError = (error: Error): void => {
      cleanup();
      resolve({ bytes, data, first: 'error', error });
    };
    const cleanup = (): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      // Later errors (an RST after a clean end) must not crash the test.
      stream.on('error', () => undefined);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.resume(); // also after a reader that left it paused
  });
}

/** Resolves once `stream` has emitted at least `count` bytes to `seen`. */
export function bytesArrived(seen: () => number, count: number, timeout = 20_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const check = (): void => {
      if (seen() >= count) resolve();
      else if (Date.now() - started > timeout) reject(new Error(`only ${seen()} of ${count} bytes arrived within ${timeout} ms`));
      else setTimeout(check, 5);
    };
    check();
  });
}

/** Writes `total` bytes, honouring backpressure, then resolves (does not end). */
export async function writeBytes(stream: Duplex, total: number, fill = 0x61): Promise<void> {
  const chunk = Buffer.alloc(64 * 1024, fill);
  let written = 0;
  while (written < total) {
    const piece = chunk.subarray(0, Math.min(chunk.length, total - written));
    written += piece.length;
    if (!stream.write(piece)) await new Promise<void>((resolve) => stream.once('drain', resolve));
  }
}
