import diagnosticsChannel from 'node:diagnostics_channel';
import { PerformanceObserver } from 'node:perf_hooks';
import { percentile } from '../stats.js';
import { now, within } from '../util.js';
import type { HandOffEngine } from './handoff-engine.js';

/** Latency percentiles (µs) of one open-loop run. */
export interface OpenLoopResult {
  p50: number;
  p99: number;
  p999: number;
  n: number;
  /** The arrival rate actually offered (per second). */
  offered: number;
  /** Pooled runs with a recorder: what overlapped the slowest hand-offs. */
  attribution?: Attribution;
}

/** Arrivals per offered rate and run in the open-loop scenarios, and the unmeasured batch on each side before a run's rates. */
export function openLoopCounts(quick: boolean): { count: number; warmUp: number } {
  return quick ? { count: 30, warmUp: 20 } : { count: 1000, warmUp: 100 };
}

/** The bound on one side's open-loop batch (its IPC call): a minute, plus twice the time its arrivals take. */
export function openLoopTimeout(count: number, perSecond: number): number {
  return 60_000 + (count / perSecond) * 2000;
}

/**
 * Open loop: `count` hand-offs whose starts follow a Poisson process of
 * `perSecond` (exponential gaps), each started on time whether or not the
 * ones before finished (a busy tunnel's traffic does not wait for the
 * pool). Latency is from the scheduled start to the echo.
 */
export async function openLoop(engine: HandOffEngine, perSecond: number, count: number, recorder?: RefillRecorder): Promise<OpenLoopResult> {
  const latencies: number[] = [];
  const intervals: Array<[number, number]> = [];
  recorder?.start();
  const running: Array<Promise<void>> = [];
  const begin = now();
  const gap = (): number => (-Math.log(1 - Math.random()) / perSecond) * 1000;
  let at = begin + gap();
  const start = (scheduled: number): void => {
    running.push(
      within(engine.once(), 15_000, 'an open-loop hand-off').then(() => {
        const end = now();
        latencies.push((end - scheduled) * 1000);
        intervals.push([scheduled, end]);
      }),
    );
  };
  // Never early: a timer for the bulk of the gap (timers fire late, not early), then one setImmediate
  // per turn until the instant, letting I/O run between. A plain callback, not a promise per turn: at
  // these rates the wait spins for most of the time, and a promise and a closure per spin were most of
  // what the process allocated (a scavenge every few tens of ms, landing on the hand-offs measured).
  let started = 0;
  let last = begin;
  await new Promise<void>((done) => {
    const step = (): void => {
      const time = now();
      while (started < count && at <= time) {
        start(at);
        last = at;
        started++;
        at += gap();
      }
      if (started >= count) return done();
      const wait = at - now();
      if (wait > 2) setTimeout(step, wait - 1);
      else setImmediate(step);
    };
    step();
  });
  try {
    await Promise.all(running);
  } finally {
    recorder?.finish();
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  const result: OpenLoopResult = { p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9), n: sorted.length, offered: count / ((last - begin) / 1000) };
  if (recorder) result.attribution = recorder.attribute(intervals);
  return result;
}

/** What ran on the event loop during the slowest hand-offs of an open-loop run (see `Attribution`). */
export interface Attribution {
  /** Hand-offs at or above the run's p99. */
  slowest: number;
  /** Of those, how many overlapped: a dial of the pool in flight (connect, TLS, ID read), a server handshake, a GC. */
  dial: number;
  handshake: number;
  gc: number;
  /** None of the three. */
  none: number;
}

type Interval = readonly [from: number, until: number];

/**
 * Records, while running, the intervals of the pool's dials (dial:start to
 * dial:end/error, from the diagnostics channels), of the server's
 * handshakes (accept to the end of the front door) and of GCs, to say
 * afterwards what overlapped each slow hand-off.
 */
export class RefillRecorder {
  private readonly dials: Interval[] = [];
  private readonly handshakes: Interval[] = [];
  private readonly gcs: Interval[] = [];
  private readonly started = new Map<number, number>();
  private readonly stop: Array<() => void> = [];

  start(): void {
    const onStart = (message: unknown): void => void this.started.set((message as { dial: number }).dial, now());
    const onEnd = (message: unknown): void => {
      const { dial } = message as { dial: number };
      const from = this.started.get(dial);
      if (from === undefined) return;
      this.started.delete(dial);
      this.dials.push([from, now()]);
    };
    const onHandshake = (message: unknown): void => {
      const { durationMs } = message as { durationMs: number };
      const until = now();
      this.handshakes.push([until - durationMs, until]);
    };
    const subscriptions: Array<[string, (message: unknown) => void]> = [
      ['nestjs-tunnel-pool:dial:start', onStart],
      ['nestjs-tunnel-pool:dial:end', onEnd],
      ['nestjs-tunnel-pool:dial:error', onEnd],
      ['nestjs-tunnel-pool:handshake', onHandshake],
    ];
    for (const [name, fn] of subscriptions) {
      diagnosticsChannel.subscribe(name, fn);
      this.stop.push(() => diagnosticsChannel.unsubscribe(name, fn));
    }
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) this.gcs.push([entry.startTime, entry.startTime + entry.duration]);
    });
    observer.observe({ entryTypes: ['gc'] });
    this.stop.push(() => observer.disconnect());
  }

  finish(): void {
    for (const stop of this.stop.splice(0)) stop();
  }

  /** What overlapped the hand-offs at or above the p99 of `samples` ([start, end] in `now()` ms). */
  attribute(samples: readonly Interval[]): Attribution {
    const overlaps = (list: readonly Interval[], [from, until]: Interval): boolean => list.some(([a, b]) => a < until && b > from);
    const lengths = samples.map(([from, until]) => until - from).sort((a, b) => a - b);
    const threshold = percentile(lengths, 99);
    const slow = samples.filter(([from, until]) => until - from >= threshold);
    const out: Attribution = { slowest: slow.length, dial: 0, handshake: 0, gc: 0, none: 0 };
    for (const sample of slow) {
      const dial = overlaps(this.dials, sample);
      const handshake = overlaps(this.handshakes, sample);
      const gc = overlaps(this.gcs, sample);
      if (dial) out.dial++;
      if (handshake) out.handshake++;
      if (gc) out.gc++;
      if (!dial && !handshake && !gc) out.none++;
    }
    return out;
  }
}
