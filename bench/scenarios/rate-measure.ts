import { percentiles } from '../stats.js';
import { now, sleep, within } from '../util.js';
import type { HandOffEngine } from './handoff-engine.js';

export interface RateResult {
  /** Hand-offs completed per second inside the measured window. */
  rate: number;
  /** p99 latency (µs) of those. */
  p99: number;
  completed: number;
}

/**
 * Runs `concurrency` loops of hand-offs for `seconds` after a quarter as
 * long unmeasured; counts those completed inside the measured window.
 */
export async function measureRate(engine: HandOffEngine, concurrency: number, seconds: number): Promise<RateResult> {
  const warm = (seconds * 1000) / 4;
  const begin = now();
  const from = begin + warm;
  const until = from + seconds * 1000;
  const latencies: number[] = [];
  let completed = 0;
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      let elapsed: number;
      try {
        elapsed = await within(engine.once(), 15_000, 'a hand-off');
      } catch (error) {
        stop = true; // the other workers finish their hand-off in flight and stop too
        throw error;
      }
      const at = now();
      if (at >= from && at < until) {
        completed++;
        latencies.push(elapsed * 1000);
      }
      if (at >= until) stop = true;
    }
  };
  const workers = Promise.all(Array.from({ length: concurrency }, worker));
  workers.catch(() => undefined);
  await Promise.race([sleep(warm + seconds * 1000), workers]);
  stop = true;
  await workers;
  return { rate: completed / seconds, p99: percentiles(latencies).p99, completed };
}
