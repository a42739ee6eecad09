import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';
import { describeLoopDelay, describeTails } from './handoff-engine.js';
import { BATCH, idleRuns } from './idle.js';

const P50_TARGET: Target = { label: '≤ 100 µs', value: 100, on: 'pooled', better: 'lower', inclusive: true };
/** Issue 18: with refill idle, the pooled p99 within 1.2× the floor (the same exchange on pre-opened raw connections), every transport. */
/** Issue 18: with refill idle, the pooled p50 at most 50 µs above the floor. */
const P50_OVER_FLOOR: Target = { label: '≤ 50 µs', value: 50, on: 'pooled', better: 'lower', inclusive: true };
const P99_TARGET: Target = { label: '≤ 1.2', value: 1.2, on: 'floor', better: 'lower', inclusive: true };

/**
 * Hand-off latency on a warm pool, one at a time: take `[id, stream]`, send
 * the ID on a control connection, `outgoingGet(id)`, one 64-byte round trip.
 * Measured in the warm-up/memory scenario's processes, on its pool of
 * `idle` streams (see `idle.ts`). Dialing is held back while a batch of
 * hand-offs runs (the pool is refilled between batches when it runs low;
 * one warm-up batch unmeasured, no forced GC),
 * so the figure is the hand-off path itself; the hand-off-rate scenario
 * measures it with refills running. Raw reference: the same exchange,
 * dialing a fresh raw connection instead.
 */
export async function handoff(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const runs = (await idleRuns(context)).handoff!;
  const series = (pick: (l: { p50: number; p99: number }) => number): { raw: number[]; pooled: number[]; floor: number[] } => ({
    raw: runs.raw.map(pick),
    pooled: runs.pooled.map(pick),
    floor: runs.floor.map(pick),
  });
  const p50 = series((l) => l.p50);
  const p99 = series((l) => l.p99);
  const batch = Math.min(BATCH, sizes.idle, sizes.handoffs);
  const note =
    `${sizes.handoffs} sequential hand-offs per run (raw: ${sizes.rawHandoffs} dial-on-demand round trips, each on a fresh connection/stream); ` +
    `pooled on the warm-up scenario's pool of ${sizes.idle} in its process, one unmeasured warm-up batch, no dialing during a batch of ${batch}, refilled between batches, no forced GC; raw and pooled one after the other; ` +
    describeLoopDelay(runs.pooled) +
    '; floor: the same exchange on raw connections of the kind opened beforehand (no pool), interleaved one for one with the pooled hand-offs in the pooled process (order alternating), so both see the same moment and process state';
  const tcp = adapter.name === 'tcp';
  return [
    judge({
      transport: adapter.name,
      scenario: 'handoff',
      metric: 'hand-off p50',
      unit: 'µs',
      raw: summarize(p50.raw),
      pooled: summarize(p50.pooled),
      ratio: summarize(pairedRatios(p50.pooled, p50.raw)),
      floor: summarize(p50.floor),
      floorRatio: summarize(pairedRatios(p50.pooled, p50.floor)),
      ...(tcp ? { target: P50_TARGET } : {}),
      note,
    }),
    judge({
      transport: adapter.name,
      scenario: 'handoff',
      metric: 'hand-off p99',
      unit: 'µs',
      raw: summarize(p99.raw),
      pooled: summarize(p99.pooled),
      ratio: summarize(pairedRatios(p99.pooled, p99.raw)),
      floor: summarize(p99.floor),
      floorRatio: summarize(pairedRatios(p99.pooled, p99.floor)),
      target: P99_TARGET,
      note: `${note}; ${describeTails(runs.pooled.map((l) => l.tail))}`,
    }),
    judge({
      transport: adapter.name,
      scenario: 'handoff',
      metric: 'hand-off p50 above the floor',
      unit: 'µs',
      pooled: summarize(p50.pooled.map((pooled, run) => pooled - (p50.floor[run] ?? NaN))),
      target: P50_OVER_FLOOR,
      note: 'per run: the pooled p50 minus the interleaved floor p50 of the same run (what the pool adds to a hand-off)',
    }),
  ];
}
