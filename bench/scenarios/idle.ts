import type { ScenarioContext } from '../context.js';
import { both, orderOf, type Side, withSides } from '../side-process.js';
import type { IdleResult } from '../side-child.js';
import type { Latency, PooledLatency } from './handoff-engine.js';

/** Hand-offs per batch: no stream is dialed during a batch, the pool is refilled (if it must be) and garbage collected between batches. */
export const BATCH = 200;

export interface IdleRuns {
  raw: IdleResult[];
  pooled: IdleResult[];
  /** When the hand-off scenario is part of the bench run. */
  handoff?: { raw: Latency[]; pooled: PooledLatency[]; floor: Array<Latency & { loopDelay: { p50: number; p99: number } }> };
}

/** One measurement per transport, shared by the warm-up, memory and hand-off scenarios (whichever runs first makes it). */
const made = new Map<string, Promise<IdleRuns>>();

/**
 * Per run, a raw and a pooled side process (fresh ones, side by side)
 * open `idle` streams: the time that takes is the warm-up figure, what
 * they add to the process (GC'd, over a baseline taken after 8 warm-up
 * connections came and went) the memory figure. Then, one side after the
 * other (order alternating), the same processes measure hand-off latency:
 * the pooled one on that warm pool (its 1000 idle streams serve the first
 * 1000 hand-offs, one refill the rest), the raw one dialing a fresh
 * connection per hand-off. Sharing the streams saves the TLS transports
 * half their handshakes; the pooled hand-off is still measured with both
 * of its ends in one otherwise idle process, as before.
 */
export function idleRuns(context: ScenarioContext): Promise<IdleRuns> {
  const key = context.adapter.name;
  let runs = made.get(key);
  if (!runs) {
    runs = measure(context);
    made.set(key, runs);
  }
  return runs;
}

async function measure(context: ScenarioContext): Promise<IdleRuns> {
  const { adapter, sizes } = context;
  const count = sizes.idle;
  const withHandoffs = context.scenarios.includes('handoff');
  const batch = Math.min(BATCH, count, sizes.handoffs);
  const out: IdleRuns = { raw: [], pooled: [], ...(withHandoffs ? { handoff: { raw: [], pooled: [], floor: [] } } : {}) };
  const what = `warm-up and memory${withHandoffs ? ', then hand-off latency,' : ''} with ${count} streams`;
  const one = async (sides: { raw: Side; pooled: Side }, run: number): Promise<void> => {
    const label = `run ${run + 1}/${sizes.runs}`;
    context.progress(`${what} · ${label} · raw and pooled side by side${sizes.isolateRuns ? ' (fresh processes)' : ''}`);
    await both(sides, run, 'idle.prepare', { count, settleMs: sizes.quick ? 20 : 100 });
    const result = await both(sides, run, 'idle.go', {});
    out.raw.push(result.raw);
    out.pooled.push(result.pooled);
    if (!out.handoff) return;
    const order = orderOf(run);
    for (const side of order) {
      context.progress(`hand-off latency · ${label} · ${side}`);
      if (side === 'raw') out.handoff.raw.push(await sides.raw.call('handoff.raw', { count: sizes.rawHandoffs }));
      else {
        // The floor runs interleaved with the pooled hand-offs, in the pooled process: same moment, same process state.
        const pooled = await sides.pooled.call('handoff.pooled', { count: sizes.handoffs, batch });
        out.handoff.pooled.push(pooled);
        out.handoff.floor.push({ ...pooled.floor, loopDelay: pooled.loopDelay });
      }
    }
  };
  if (sizes.isolateRuns) {
    for (let run = 0; run < sizes.runs; run++) await withSides(adapter.name, (sides) => one(sides, run));
  } else {
    // --quick: one pair of processes for every run (what the first run leaves behind blurs the next one's memory figure; a smoke run).
    await withSides(adapter.name, async (sides) => {
      for (let run = 0; run < sizes.runs; run++) await one(sides, run);
    });
  }
  return out;
}
