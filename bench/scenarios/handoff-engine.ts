import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { Pools, RawLink } from '../adapters.js';
import { percentiles, summarize } from '../stats.js';
import { type Control, finish, now, type ObservedTransport, quiet, tick, within } from '../util.js';

/** The 64 bytes of the round trip that completes a hand-off. */
const PAYLOAD = Buffer.alloc(64, 0x5a);
const GET_TIMEOUT = 10_000;

interface Pending {
  resolve(stream: Duplex): void;
  reject(error: unknown): void;
}

/**
 * One hand-off as a tunnel does it: one side produces a stream and names
 * it on the control connection, the other side gets that stream, and one
 * 64-byte round trip crosses it. `once()` returns the milliseconds from
 * the start (before the take) to the echo's arrival.
 */
export interface HandOffEngine {
  once(): Promise<number>;
}

/** Completes the client side: writes the payload, resolves once the echo is back. */
function roundTrip(stream: Duplex, pending: Pending): void {
  quiet(stream);
  let received = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received < PAYLOAD.length) return;
    stream.off('data', onData);
    pending.resolve(stream);
  };
  stream.on('data', onData);
  stream.write(PAYLOAD);
}

function echo(stream: Duplex): void {
  quiet(stream);
  stream.on('data', (chunk: Buffer) => {
    if (!stream.writableEnded) stream.write(chunk);
  });
  stream.once('end', () => finish(stream));
}

/**
 * The pool: the server side takes `[id, stream]` (`incomingGet`), sends
 * the ID as a line on the control connection; the client side reads the
 * line and calls `outgoingGet(id)`.
 */
export class PooledHandOff implements HandOffEngine {
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly pools: Pools, private readonly control: Control) {
    control.onLine((id) => {
      const waiter = this.pending.get(id);
      if (!waiter) return;
      this.pools.client.outgoingGet(id, GET_TIMEOUT).then(
        (stream) => roundTrip(stream, waiter),
        (error: unknown) => waiter.reject(error),
      );
    });
  }

  async once(): Promise<number> {
    const start = now();
    const [id, server] = await this.pools.server.incomingGet(GET_TIMEOUT);
    echo(server);
    const done = new Promise<Duplex>((resolve, reject) => this.pending.set(id, { resolve, reject }));
    this.control.send(id);
    try {
      const client = await done;
      const elapsed = now() - start;
      finish(client);
      finish(server);
      return elapsed;
    } finally {
      this.pending.delete(id);
    }
  }
}

/**
 * What a tunnel without a pool does: the server side names a token on the
 * control connection, the client side dials a fresh raw connection (or, for
 * http2, a fresh stream on its session) and the round trip crosses it.
 */
export class RawDialHandOff implements HandOffEngine {
  private readonly pending = new Map<string, Pending>();
  private sequence = 0;

  constructor(private readonly link: RawLink, private readonly control: Control) {
    link.onServer = echo;
    control.onLine((token) => {
      const waiter = this.pending.get(token);
      if (!waiter) return;
      this.link.dial().then(
        (stream) => roundTrip(stream, waiter),
        (error: unknown) => waiter.reject(error),
      );
    });
  }

  async once(): Promise<number> {
    const start = now();
    const token = `t${this.sequence++}`;
    const done = new Promise<Duplex>((resolve, reject) => this.pending.set(token, { resolve, reject }));
    this.control.send(token);
    try {
      const client = await done;
      const elapsed = now() - start;
      finish(client);
      return elapsed;
    } finally {
      this.pending.delete(token);
    }
  }
}

/**
 * The physical floor of a hand-off: the pool's exact exchange (the server
 * side picks a ready connection and names it on the control connection,
 * the client side finds its end in a Map, one 64-byte round trip crosses
 * it) on raw connections or streams of the same kind opened beforehand,
 * with no pool at all. What no pool can beat in this process layout.
 */
export class PreopenedHandOff implements HandOffEngine {
  private readonly ready: Array<{ token: string; server: Duplex }> = [];
  private readonly clients = new Map<string, Duplex>();
  private readonly pending = new Map<string, Pending>();
  private sequence = 0;

  constructor(private readonly link: RawLink, private readonly control: Control) {
    control.onLine((token) => {
      const waiter = this.pending.get(token);
      const client = this.clients.get(token);
      if (!waiter || !client) return;
      this.clients.delete(token);
      roundTrip(client, waiter);
    });
  }

  get size(): number {
    return this.ready.length;
  }

  /** Opens `count` raw pairs, outside any measurement. */
  async open(count: number): Promise<void> {
    this.link.onServer = undefined; // pairs match their ends through the link's queue
    for (let i = 0; i < count; i++) {
      const { client, server } = await this.link.pair();
      const token = `p${this.sequence++}`;
      this.clients.set(token, quiet(client));
      this.ready.push({ token, server: quiet(server) });
    }
  }

  async once(): Promise<number> {
    const start = now();
    const next = this.ready.shift();
    if (!next) throw new Error('no pre-opened connection left');
    echo(next.server);
    const done = new Promise<Duplex>((resolve, reject) => this.pending.set(next.token, { resolve, reject }));
    this.control.send(next.token);
    try {
      const client = await done;
      const elapsed = now() - start;
      finish(client);
      finish(next.server);
      return elapsed;
    } finally {
      this.pending.delete(next.token);
    }
  }
}

// ---- latency runs --------------------------------------------------------------

export interface Latency {
  /** µs */
  p50: number;
  p99: number;
  n: number;
}

export interface PooledLatency extends Latency {
  tail: Tail;
  /** Event-loop delay (µs) while the measured hand-offs ran: how busy the loop was around them. */
  loopDelay: { p50: number; p99: number };
}

/**
 * `count` sequential pooled hand-offs in batches of `batch`, after one
 * unmeasured warm-up batch. While a batch runs no new stream is dialed
 * (`observed` holds the pool's dials back); before a batch the pool is
 * refilled if fewer than `batch` streams are idle. No GC is forced: a
 * forced full GC before a batch threw optimised code away (V8 deoptimised
 * with reason "weak objects"), and most of the slowest hand-offs were the
 * first ones after it. The event-loop delay is recorded over the measured
 * batches and reported beside the latency.
 */
export async function pooledLatency(
  pools: Pools,
  observed: ObservedTransport,
  control: Control,
  count: number,
  batch: number,
  refillTo: number,
  beside: { link: RawLink; control: Control },
): Promise<PooledLatency & { floor: Latency }> {
  const engine = new PooledHandOff(pools, control);
  // The floor interleaved: one floor hand-off beside each pooled one (order alternating), in this process, at the same moment.
  const floor = new PreopenedHandOff(beside.link, beside.control);
  const floorSamples: number[] = [];
  const gcs: Array<[number, number]> = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcs.push([entry.startTime, entry.startTime + entry.duration]);
  });
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const samples: Sample[] = [];
  const refillIfLow = async (): Promise<void> => {
    if (pools.client.active < batch || pools.server.active < batch) {
      observed.resume();
      await pools.full(refillTo, 120_000);
    }
    observed.pause();
    if (floor.size < batch) await floor.open(batch - floor.size);
  };
  try {
    // Warm-up, unmeasured: the hand-off path's code optimised before the clock starts.
    await refillIfLow();
    for (let i = 0; i < Math.min(batch, count); i++) {
      await within(engine.once(), 15_000, 'a warm-up hand-off');
      await within(floor.once(), 15_000, 'a warm-up floor hand-off');
    }
    gcObserver.observe({ entryTypes: ['gc'] });
    for (let i = 0; i < count; i++) {
      if (i % batch === 0) {
        loop.disable();
        await refillIfLow();
        loop.enable();
      }
      if (i % 2 === 1) floorSamples.push(await within(floor.once(), 15_000, 'a floor hand-off'));
      const switches = process.resourceUsage().involuntaryContextSwitches;
      const start = now();
      const ms = await within(engine.once(), 15_000, 'a pooled hand-off');
      samples.push({ start, end: start + ms, preempted: process.resourceUsage().involuntaryContextSwitches > switches });
      if (i % 2 === 0) floorSamples.push(await within(floor.once(), 15_000, 'a floor hand-off'));
    }
    loop.disable();
    // GC entries arrive asynchronously: let them in before looking.
    await tick();
  } finally {
    loop.disable();
    observed.resume();
    gcObserver.disconnect();
  }
  const { p50, p99, n } = percentiles(samples.map((s) => (s.end - s.start) * 1000));
  const loopDelay = loop.count > 0 ? { p50: loop.percentile(50) / 1000, p99: loop.percentile(99) / 1000 } : { p50: 0, p99: 0 };
  const floorLatency = percentiles(floorSamples.map((ms) => ms * 1000));
  return { p50, p99, n, tail: explainTail(samples, gcs), loopDelay, floor: { p50: floorLatency.p50, p99: floorLatency.p99, n: floorLatency.n } };
}

/** `count` sequential dial-on-demand round trips on `link` (the raw reference). */
export async function rawLatency(link: RawLink, control: Control, count: number): Promise<Latency> {
  const engine = new RawDialHandOff(link, control);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await within(engine.once(), 15_000, 'a raw dial hand-off'));
  const { p50, p99, n } = percentiles(samples.map((ms) => ms * 1000));
  return { p50, p99, n };
}

interface Sample {
  start: number;
  end: number;
  /** The OS switched this process out (for another one) during the hand-off. */
  preempted: boolean;
}

export interface Tail {
  /** Hand-offs at or above the run's p99. */
  slowest: number;
  preempted: number;
  /** Not preempted, but a GC ran during it. */
  gc: number;
  /** p99 (µs) of the hand-offs that were neither preempted nor hit by a GC. */
  cleanP99: number;
}

/**
 * Why the slowest 1 % were slow: on a shared 2-core machine most of them
 * were switched out by the OS (an involuntary context switch during the
 * hand-off) or overlapped a GC; the p99 of the others is the hand-off
 * path's own tail.
 */
function explainTail(samples: readonly Sample[], gcs: ReadonlyArray<readonly [number, number]>): Tail {
  const inGc = (s: Sample): boolean => gcs.some(([from, until]) => from < s.end && until > s.start);
  const micros = (s: Sample): number => (s.end - s.start) * 1000;
  const threshold = percentiles(samples.map(micros)).p99;
  const slowest = samples.filter((s) => micros(s) >= threshold);
  const clean = samples.filter((s) => !s.preempted && !inGc(s)).map(micros);
  return {
    slowest: slowest.length,
    preempted: slowest.filter((s) => s.preempted).length,
    gc: slowest.filter((s) => !s.preempted && inGc(s)).length,
    cleanP99: percentiles(clean).p99,
  };
}

/** The event-loop delay beside a latency row: the range over runs of its p50 and p99. */
export function describeLoopDelay(runs: ReadonlyArray<{ loopDelay?: { p50: number; p99: number } }>): string {
  const delays = runs.map((r) => r.loopDelay).filter((d): d is { p50: number; p99: number } => d !== undefined);
  if (delays.length === 0) return '';
  const range = (values: number[]): string => `${Math.round(Math.min(...values))}–${Math.round(Math.max(...values))} µs`;
  return `event-loop delay during the measured hand-offs: p50 ${range(delays.map((d) => d.p50))}, p99 ${range(delays.map((d) => d.p99))}`;
}

export function describeTails(tails: readonly Tail[]): string {
  if (tails.length === 0) return '';
  const sum = (pick: (t: Tail) => number): number => tails.reduce((total, t) => total + pick(t), 0);
  const clean = summarize(tails.map((t) => t.cleanP99));
  return (
    `of the slowest 1 % of pooled hand-offs (${sum((t) => t.slowest)} over ${tails.length} runs) ${sum((t) => t.preempted)} were preempted by the OS ` +
    `(an involuntary context switch during the hand-off) and ${sum((t) => t.gc)} more overlapped a GC; p99 of the hand-offs with neither: ${Math.round(clean.min)}–${Math.round(clean.max)} µs`
  );
}
