/**
 * Shared pieces of the reliability specs: the transports they run over, the
 * real `process` (Jest hands each spec a sandboxed copy whose events never
 * fire), an in-band `gc()`, active-resource counts, and data helpers that
 * hash what was written and what was read.
 */
import { afterAll, beforeAll } from '@jest/globals';
import { createHash, randomFillSync } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { PoolPair } from '../support/pools.js';
import type { TestScope } from '../support/scope.js';

// ---- transports ---------------------------------------------------------------

// One table of transport kinds for every spec: test/support/kinds.ts.
export { clientConfig, KIND_NAMES, serverConfig, startKind, testCertificate, usesTls, type Kind } from '../support/kinds.js';

// ---- the real process, gc, resources -------------------------------------------------

/**
 * The process object of the main realm. Under Jest `process` is a sandboxed
 * copy with its own event listeners, so `process.on('unhandledRejection')`
 * there never fires; this one does (next to Jest's own handler).
 */
export const realProcess = vm.runInThisContext('process') as NodeJS.Process;

let gcFunction: (() => void) | undefined;
/** A real `gc()` without `--expose-gc` on the command line. */
export function gc(): () => void {
  if (!gcFunction) {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as () => void;
  }
  return gcFunction;
}

/** JS heap in use after full collections. */
export async function heapAfterGc(): Promise<number> {
  const collect = gc();
  for (let i = 0; i < 4; i++) {
    collect();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 30));
  collect();
  return process.memoryUsage().heapUsed;
}

/** The handle kinds whose counts must come back after a test closed everything. */
export const WATCHED_RESOURCES = ['TCPSocketWrap', 'TCPServerWrap', 'TLSWrap', 'Timeout', 'Immediate'] as const;
export type ResourceCounts = Record<string, number>;

/** Counts of the active resources (handles, requests, timers) by type. */
export function resourceCounts(): ResourceCounts {
  const counts: ResourceCounts = {};
  for (const type of realProcess.getActiveResourcesInfo()) counts[type] = (counts[type] ?? 0) + 1;
  return counts;
}

/** The watched types whose count is above `baseline` (empty when none). */
export function excessResources(baseline: ResourceCounts, now = resourceCounts()): string[] {
  return WATCHED_RESOURCES.filter((type) => (now[type] ?? 0) > (baseline[type] ?? 0)).map(
    (type) => `${type}: ${now[type] ?? 0} now, ${baseline[type] ?? 0} at the start`,
  );
}

/** Waits until no watched resource count is above `baseline`; throws naming the excess. */
export async function resourcesBackTo(baseline: ResourceCounts, timeout = 5000, what = 'resources'): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const excess = excessResources(baseline);
    if (excess.length === 0) return;
    if (Date.now() > deadline) throw new Error(`${what} not back to the start within ${timeout} ms: ${excess.join('; ')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface UnhandledWatch {
  readonly seen: unknown[];
  stop(): void;
}

/** Records every unhandled rejection of the real process until `stop()`. */
export function watchUnhandledRejections(): UnhandledWatch {
  const seen: unknown[] = [];
  const listener = (reason: unknown): void => {
    seen.push(reason);
  };
  realProcess.on('unhandledRejection', listener);
  return { seen, stop: () => void realProcess.off('unhandledRejection', listener) };
}

// ---- time ----------------------------------------------------------------------------

/**
 * The most rounds a client pool can start within `windowMs` while every
 * dial fails: the wait after the k-th failed round is at least half its
 * ceiling max(ivl, min(maxBackoff, ivl * 2^k)) (equal jitter).
 */
export function maxFailingRounds(windowMs: number, ivl: number, maxBackoff: number): number {
  let rounds = 1;
  let elapsed = 0;
  for (let k = 1; k < 10_000; k++) {
    const ceiling = Math.max(ivl, Math.min(maxBackoff, ivl * 2 ** Math.min(k, 30)));
    elapsed += ceiling / 2;
    if (elapsed > windowMs) break;
    rounds++;
  }
  return rounds;
}

// ---- raw sockets ---------------------------------------------------------------------

export interface RawOutcome {
  socket: net.Socket;
  /** Bytes the server sent before the connection ended. */
  received: Buffer;
  /** When the connection was established and when it closed (Date.now()). */
  connectedAt: number;
  closedAt?: number;
  closed: Promise<void>;
}

/** Opens a TCP connection that sends `send` (or nothing) and records what comes back until close. */
export function rawConnect(port: number, send?: string | Buffer): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let markClosed!: () => void;
    const closed = new Promise<void>((r) => (markClosed = r));
    const socket = net.connect({ port, host: '127.0.0.1' });
    const outcome: RawOutcome = {
      socket,
      connectedAt: 0,
      closed,
      get received() {
        return Buffer.concat(chunks);
      },
    };
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    socket.once('close', () => {
      outcome.closedAt = Date.now();
      markClosed();
    });
    socket.once('connect', () => {
      outcome.connectedAt = Date.now();
      if (send !== undefined) socket.write(send);
      resolve(outcome);
    });
    socket.once('error', (error) => {
      if (!outcome.connectedAt) reject(error);
    });
  });
}

/** Runs `count` tasks, at most `batch` at once, each batch awaited before the next. */
export async function inBatches<T>(count: number, batch: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let start = 0; start < count; start += batch) {
    const size = Math.min(batch, count - start);
    results.push(...(await Promise.all(Array.from({ length: size }, (_, i) => task(start + i)))));
  }
  return results;
}

// ---- data ------------------------------------------------------------------------------

const SOURCE_SIZE = 16 << 20;
let source: Buffer | undefined;
/** 16 MiB of random bytes; writers take random slices of it. */
export function randomSource(): Buffer {
  if (!source) {
    source = Buffer.allocUnsafe(SOURCE_SIZE);
    randomFillSync(source);
  }
  return source;
}

/** A small deterministic PRNG (xorshift32), so each stream writes its own sequence. */
export function prng(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

export interface Progress {
  bytes: number;
}

/**
 * Writes `total` bytes of random slices to `stream`, honouring
 * backpressure; resolves with the SHA-256 of what was written. Never ends
 * the stream (the caller does, once both directions are through).
 */
export function writeRandom(stream: Duplex, total: number, seed: number, progress: Progress = { bytes: 0 }, timeout = 60_000): Promise<string> {
  const data = randomSource();
  const next = prng(seed);
  const hash = createHash('sha256');
  return new Promise((resolve, reject) => {
    let written = 0;
    const timer = setTimeout(() => finish(new Error(`writeRandom: only ${written} of ${total} bytes written within ${timeout} ms`)), timeout);
    const onError = (error: Error): void => finish(error);
    const onClose = (): void => {
      if (written < total) finish(new Error(`writeRandom: the stream closed after ${written} of ${total} bytes`));
    };
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      stream.off('error', onError);
      stream.off('close', onClose);
      stream.off('drain', pump);
      if (error) reject(error);
      else resolve(hash.digest('hex'));
    };
    function pump(): void {
      while (written < total) {
        const length = Math.min(total - written, 1024 + Math.floor(next() * 127 * 1024));
        const offset = Math.floor(next() * (data.length - length));
        const chunk = data.subarray(offset, offset + length);
        hash.update(chunk);
        written += length;
        progress.bytes += length;
        if (!stream.write(chunk)) {
          if (written < total) return void stream.once('drain', pump);
        }
      }
      finish();
    }
    stream.on('error', onError);
    stream.on('close', onClose);
    pump();
  });
}

/** Reads exactly `total` bytes from `stream`; resolves with their SHA-256. Leaves the stream paused. */
export function readHashed(stream: Duplex, total: number, progress: Progress = { bytes: 0 }, timeout = 60_000): Promise<string> {
  const hash = createHash('sha256');
  return new Promise((resolve, reject) => {
    let read = 0;
    const timer = setTimeout(() => finish(new Error(`readHashed: only ${read} of ${total} bytes within ${timeout} ms`)), timeout);
    const onData = (chunk: Buffer): void => {
      const wanted = Math.min(chunk.length, total - read);
      hash.update(wanted === chunk.length ? chunk : chunk.subarray(0, wanted));
      read += wanted;
      progress.bytes += wanted;
      if (read >= total) {
        if (wanted < chunk.length) finish(new Error(`readHashed: ${chunk.length - wanted} bytes more than the ${total} expected`));
        else finish();
      }
    };
    const onEnd = (): void => finish(new Error(`readHashed: the stream ended after ${read} of ${total} bytes`));
    const onError = (error: Error): void => finish(error);
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (error) reject(error);
      else resolve(hash.digest('hex'));
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}

/** Resolves when `stream` has emitted 'close' (at once if it already has). */
export function closedOf(stream: Duplex, timeout = 5000): Promise<void> {
  if (stream.closed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no 'close' within ${timeout} ms`)), timeout);
    stream.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Ends the application's side of a pooled stream once both directions are
 * through, reads the peer's side to its end and waits for the stream to
 * close. Pooled streams are half-open on tcp/TLS and http2: one closes once
 * both sides have ended, so call this on both ends.
 */
export async function finishStream(stream: Duplex, timeout = 5000): Promise<void> {
  stream.on('error', () => undefined);
  stream.resume();
  stream.end();
  try {
    await closedOf(stream, timeout);
  } finally {
    stream.destroy();
  }
}

/** The last dial failures of any pool in this process, with their messages, for `takePair`'s error (see `recordDialErrors`). */
const recentDialErrors: string[] = [];
const onDialError = (message: unknown): void => {
  const { code, error, durationMs } = message as { code: string; error: Error; durationMs: number };
  recentDialErrors.push(`${code} after ${Math.round(durationMs)} ms: ${error.message}`);
  if (recentDialErrors.length > 8) recentDialErrors.shift();
};

/**
 * Keeps the last dial errors for `takePair`'s error while this spec file
 * runs (a diagnostics_channel subscription is process-wide: it must not
 * outlive the file, other specs check that nobody subscribes).
 */
export function recordDialErrors(): void {
  beforeAll(() => diagnosticsChannel.subscribe('nestjs-tunnel-pool:dial:error', onDialError));
  afterAll(() => {
    diagnosticsChannel.unsubscribe('nestjs-tunnel-pool:dial:error', onDialError);
    recentDialErrors.length = 0;
  });
}

/**
 * `scope.handOff` with generous timeouts for runs under load, and the pools'
 * failure and drop counts in the error when a side does not show up.
 */
export async function takePair(scope: TestScope, p: PoolPair, timeout = 20_000): Promise<{ id: string; server: Duplex; client: Duplex }> {
  const [id, server] = await p.server.incomingGet(timeout);
  scope.track(server);
  try {
    const client = scope.track(await p.client.outgoingGet(id, timeout));
    return { id, server, client };
  } catch (error) {
    const { failures, drops, dialing, active } = p.client.stats;
    throw new Error(
      `${String(error)}; client pool: ${JSON.stringify({ active, dialing, failures, drops })}; server drops: ${JSON.stringify(p.server.stats.drops)}; ` +
        `last dial errors: ${JSON.stringify(recentDialErrors)}`,
    );
  }
}
