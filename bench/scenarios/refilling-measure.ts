import { percentile } from '../stats.js';
import { now, sleep, within } from '../util.js';
import type { HandOffEngine } from './handoff-engine.js';

/** Latency percentiles (µs) of one open-loop run. */
export interface OpenLoopResult {
  p50: number;
  p99: number;
  p999: number;
  n: number;
  /** The arrival rate actually offered (per second). */
  offered: number;
}

/**
 * Open loop: `count` hand-offs whose starts follow a Poisson process of
 * `perSecond` (exponential gaps), each started on time whether or not the
 * ones before finished (a busy tunnel's traffic does not wait for the
 * pool). Latency is from the scheduled start to the echo.
 */
export async function openLoop(engine: HandOffEngine, perSecond: number, count: number): Promise<OpenLoopResult> {
  const latencies: number[] = [];
  const running: Array<Promise<void>> = [];
  const begin = now();
  let at = begin;
  for (let i = 0; i < count; i++) {
    at += (-Math.log(1 - Math.random()) / perSecond) * 1000;
    // Never early: a timer for the bulk of the gap (timers fire late, not early), the rest yielding to I/O.
    const wait = at - now();
    if (wait > 2) await sleep(wait - 1);
    while (now() < at) await new Promise((resolve) => setImmediate(resolve));
    const scheduled = at;
    running.push(
      within(engine.once(), 15_000, 'an open-loop hand-off').then(() => {
        latencies.push((now() - scheduled) * 1000);
      }),
    );
  }
  await Promise.all(running);
  const sorted = [...latencies].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), p999: percentile(sorted, 99.9), n: sorted.length, offered: count / ((at - begin) / 1000) };
}
