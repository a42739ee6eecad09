import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { ClientTransport, DialContext, DialResult } from '../lib/core/transport.js';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export const now = (): number => performance.now();
export const noop = (): void => undefined;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let gcFunction: (() => void) | undefined;

/**
 * A full garbage collection now (the bench process is not started with
 * `--expose-gc`, so the flag is set at run time). Used between measured
 * batches, so that the garbage of the work before (refilling a pool) is
 * not collected in the middle of the next measurement.
 */
export function collectGarbage(): void {
  if (!gcFunction) {
    v8.setFlagsFromString('--expose-gc');
    gcFunction = vm.runInNewContext('gc') as () => void;
  }
  gcFunction();
}

/** Lets pending I/O callbacks and timers of this turn run. */
export function tick(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Keeps a stream's late errors (resets at teardown) from crashing the harness. */
export function quiet<T extends Duplex>(stream: T): T {
  if (stream.listenerCount('error') === 0) stream.on('error', noop);
  return stream;
}

/** The streams one end of a measurement keeps open (each made `quiet`), destroyed together by `destroyAll()`. */
export class OpenStreams {
  private readonly open = new Set<Duplex>();

  keep<T extends Duplex>(stream: T): T {
    quiet(stream);
    this.open.add(stream);
    stream.once('close', () => this.open.delete(stream));
    return stream;
  }

  destroyAll(): void {
    for (const stream of [...this.open]) stream.destroy();
    this.open.clear();
  }
}

/** Joins two streams with `pipe()` both ways, as a raw-Node tunnel does; either one's close destroys the other. */
export function join(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  a.once('close', () => b.destroy());
  b.once('close', () => a.destroy());
}

/**
 * Destroys a stream and, for an HTTP/2 stream, the socket under its session.
 * After a flow-control stall neither `stream.destroy()` nor
 * `session.destroy()` frees that socket: Node ends it and waits for its
 * pending writes to flush, which never happens when the peer has stopped
 * reading. The real socket is only reachable through the session's
 * internal symbol (`session.socket` is a proxy that forbids `destroy`).
 */
export function destroyHard(stream: Duplex): void {
  const session = (stream as Duplex & { session?: object }).session;
  stream.destroy();
  if (!session) return;
  const key = Object.getOwnPropertySymbols(session).find((symbol) => symbol.description === 'socket');
  const socket = key ? (session as Record<symbol, unknown>)[key] : undefined;
  if (socket && typeof socket === 'object' && 'destroy' in socket) {
    (socket as Duplex).destroy();
    (socket as Duplex & { _parent?: Duplex })._parent?.destroy();
  }
}

/** Bounds a promise: a bench step that hangs fails with `what` in the message. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not complete within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs `task` `total` times with at most `concurrency` in flight. */
export async function runConcurrently(total: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(total, concurrency) }, worker));
}

/** Gracefully ends and then destroys a stream (errors ignored): both sides of a finished hand-off. */
export function finish(stream: Duplex): void {
  quiet(stream);
  stream.resume();
  if (!stream.writableEnded) stream.end();
}

// ---- bulk transfer ------------------------------------------------------

const CHUNK = Buffer.alloc(64 * KiB, 0x61);

/** Writes `total` bytes in 64 KiB writes, waiting for 'drain' whenever `write()` says so. */
function pump(stream: Duplex, total: number, onError: (error: Error) => void): void {
  let sent = 0;
  const write = (): void => {
    while (sent < total) {
      const size = Math.min(CHUNK.length, total - sent);
      sent += size;
      if (!stream.write(size === CHUNK.length ? CHUNK : CHUNK.subarray(0, size))) {
        stream.once('drain', write);
        return;
      }
    }
  };
  stream.once('error', onError);
  write();
}

/** A transfer that made no progress for a while: the transport stalled (not a harness failure). */
export class StallError extends Error {
  constructor(
    readonly received: number,
    readonly expected: number,
    readonly quietMs: number,
  ) {
    super(`no byte arrived for ${quietMs} ms (${received} of ${expected} bytes received): the transfer stalled`);
  }
}

interface Progress {
  received: number;
}

/** Resolves once `total` bytes have been read from `stream`. */
function receive(stream: Duplex, total: number, progress: Progress): Promise<void> {
  return new Promise((resolve, reject) => {
    let received = 0;
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      progress.received += chunk.length;
      if (received >= total) done(null);
    };
    const onEnd = (): void => done(new Error(`the stream ended after ${received} of ${total} bytes`));
    const done = (error: Error | null): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', done);
      if (error) reject(error);
      else resolve();
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('error', done);
  });
}

export interface StreamPair {
  /** The dialing side's end (pooled: from `outgoingGet`; raw: the connecting socket). */
  readonly client: Duplex;
  /** The listening side's end. */
  readonly server: Duplex;
}

export interface Transfer {
  /** From the first write until the last byte was read. */
  readonly seconds: number;
  /** Bytes received in all (every direction, every pair). */
  readonly bytes: number;
}

/**
 * Moves `bytesPerStream` client → server on every pair (and server → client
 * at the same time when `bothWays`), all pairs at once. Resolves with the
 * seconds from the first write until the last byte was read. Rejects with `StallError` when no byte arrives anywhere for `stallMs`.
 */
export async function transfer(pairs: readonly StreamPair[], bytesPerStream: number, bothWays: boolean, stallMs = 3000): Promise<Transfer> {
  let failed: ((error: Error) => void) | undefined;
  const failure = new Promise<never>((_, reject) => {
    failed = reject;
  });
  const expected = bytesPerStream * pairs.length * (bothWays ? 2 : 1);
  const progress: Progress = { received: 0 };
  const reads: Promise<void>[] = [];
  for (const { client, server } of pairs) {
    reads.push(receive(server, bytesPerStream, progress));
    if (bothWays) reads.push(receive(client, bytesPerStream, progress));
  }
  let seen = -1;
  let movedAt = now();
  const watch = setInterval(() => {
    if (progress.received !== seen) {
      seen = progress.received;
      movedAt = now();
    } else if (now() - movedAt >= stallMs) {
      failed!(new StallError(progress.received, expected, stallMs));
    }
  }, stallMs / 4);
  const start = now();
  try {
    for (const { client, server } of pairs) {
      pump(client, bytesPerStream, failed!);
      if (bothWays) pump(server, bytesPerStream, failed!);
    }
    await Promise.race([Promise.all(reads), failure]);
    return { seconds: (now() - start) / 1000, bytes: progress.received };
  } finally {
    clearInterval(watch);
    for (const { client, server } of pairs) {
      client.removeAllListeners('drain');
      server.removeAllListeners('drain');
    }
  }
}

// ---- control connection -------------------------------------------------

/**
 * The application's own control channel of a tunnel: a plain TCP
 * connection on which the server side names the ID it took, one per line.
 */
export class Control {
  private constructor(
    private readonly listener: net.Server,
    private readonly serverEnd: net.Socket,
    private readonly clientEnd: net.Socket,
  ) {}

  static open(): Promise<Control> {
    return within(Control.connect(), 15_000, 'opening the control connection');
  }

  private static async connect(): Promise<Control> {
    const listener = net.createServer({ noDelay: true });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const { port } = listener.address() as net.AddressInfo;
    const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
    const clientEnd = net.connect({ host: '127.0.0.1', port, noDelay: true });
    await new Promise<void>((resolve, reject) => clientEnd.once('connect', resolve).once('error', reject));
    const serverEnd = await accepted;
    serverEnd.setNoDelay(true);
    quiet(serverEnd);
    quiet(clientEnd);
    return new Control(listener, serverEnd, clientEnd);
  }

  /** Server side: names an ID (or any token). */
  send(line: string): void {
    this.serverEnd.write(`${line}\n`);
  }

  /** Client side: `handler` gets every line, in order. */
  onLine(handler: (line: string) => void): void {
    let pending = '';
    this.clientEnd.setEncoding('latin1');
    this.clientEnd.removeAllListeners('data');
    this.clientEnd.on('data', (text: string) => {
      pending += text;
      let newline = pending.indexOf('\n');
      while (newline !== -1) {
        handler(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
        newline = pending.indexOf('\n');
      }
    });
  }

  async close(): Promise<void> {
    this.clientEnd.destroy();
    this.serverEnd.destroy();
    await within(new Promise<void>((resolve) => this.listener.close(() => resolve())), 15_000, 'closing the control listener');
  }
}

// ---- transport wrappers --------------------------------------------------

/**
 * Wraps a pool's client transport: records the instant each `dial()`
 * resolves (the stream's arrival at the client), and can hold new dials
 * back (`pause()`), so a measurement runs on a warm pool with no refill
 * in progress.
 */
export class ObservedTransport implements ClientTransport {
  readonly kind: string;
  /** Arrival instants (`performance.now()`) by ID. */
  readonly arrivals = new Map<string, number>();
  recordArrivals = false;
  private gate?: Promise<void>;
  private release?: () => void;

  constructor(private readonly inner: ClientTransport) {
    this.kind = inner.kind;
  }

  pause(): void {
    if (!this.gate) this.gate = new Promise((resolve) => (this.release = resolve));
  }

  resume(): void {
    this.release?.();
    this.gate = undefined;
    this.release = undefined;
  }

  async dial(context: DialContext): Promise<DialResult> {
    while (this.gate) await this.gate;
    const result = await this.inner.dial(context);
    if (this.recordArrivals && result.id !== null) this.arrivals.set(result.id, now());
    return result;
  }

  /** `timeout`: the pool's close timeout, passed on (transports that take none ignore it). */
  close(timeout?: number): Promise<void> {
    this.resume();
    return (this.inner.close as (this: ClientTransport, timeout?: number) => Promise<void>).call(this.inner, timeout);
  }

  stats(): Record<string, unknown> {
    return this.inner.stats?.() ?? {};
  }
}

/**
 * Node prints a process warning every time it happens; the pools may raise
 * the same one per pool (dozens per run). Print each distinct one once.
 */
export function dedupeWarnings(where: string): void {
  const seen = new Set<string>();
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    const key = `${warning.name}: ${warning.message}`;
    if (seen.has(key)) return;
    seen.add(key);
    const origin = warning.stack?.split('\n').find((line) => line.includes('/dist/lib/'))?.trim();
    process.stderr.write(`${where}: warning (shown once): ${key}${origin ? ` [${origin}]` : ''}\n`);
  });
}

/**
 * A TCP relay on 127.0.0.1 that holds every chunk (and the FIN) `delayMs`
 * each way before passing it on: a link with that one-way delay, for a
 * figure that depends on round trips (a tunnel's open) and that loopback,
 * where a round trip costs about what a local connect does, cannot show.
 * Timers of one duration fire in the order they were set, so the bytes of
 * each direction stay in order. No back-pressure: for small exchanges.
 */
export class DelayLink {
  private readonly open = new OpenStreams();
  private server?: net.Server;

  constructor(
    private readonly to: number,
    readonly delayMs: number,
  ) {}

  /** Listens; resolves with the port to dial instead of `to`. */
  async listen(): Promise<number> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (near) => {
      const far = net.connect({ host: '127.0.0.1', port: this.to, noDelay: true, allowHalfOpen: true });
      this.open.keep(near);
      this.open.keep(far);
      this.relay(near, far);
      this.relay(far, near);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  private relay(from: net.Socket, to: net.Socket): void {
    const later = (action: () => void): void => void setTimeout(action, this.delayMs);
    from.on('data', (chunk: Buffer) => later(() => to.destroyed || to.write(chunk)));
    from.once('end', () => later(() => to.end()));
    from.once('close', () => later(() => to.destroy()));
  }

  async close(): Promise<void> {
    this.open.destroyAll();
    const server = this.server;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
