import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { both, inTurn, withSides } from '../side-process.js';
import { pairedRatios, summarize } from '../stats.js';
import { openLoopCounts, openLoopTimeout, type OpenLoopResult } from './refilling-measure.js';

/** Offered load, as a share of the pool's own refill rate measured in the same run. */
const SHARES = [0.25, 0.5, 0.9] as const;

/** The goals on p99, as pooled / floor: 1.5× at 50 % of the refill rate, 3× at 90 %. */
const P99_TARGETS: Partial<Record<(typeof SHARES)[number], Target>> = {
  0.5: { label: '≤ 1.5', value: 1.5, on: 'floor', better: 'lower', inclusive: true },
  0.9: { label: '≤ 3', value: 3, on: 'floor', better: 'lower', inclusive: true },
};

/**
 * Hand-off while the pool refills, as a busy tunnel sees it: hand-offs
 * arrive open loop (Poisson) at 25 %, 50 % and 90 % of the rate at which
 * the pool dials streams back (measured first in the same process: all its
 * streams taken at once, time until it is full again), from a pool of
 * `ratePool` refilling on demand. The floor beside it: the same exchange,
 * at the same offered rate, on raw connections of the same kind opened
 * beforehand (no pool, no refill), in the raw side's process. Both sides
 * measure in turn (order alternating per run, the other process idle;
 * see `inTurn`), each in its own process holding both ends.
 */
export async function refilling(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const pool = sizes.ratePool;
  const { count, warmUp } = openLoopCounts(sizes.quick);
  const results = new Map<number, { pooled: OpenLoopResult[]; floor: OpenLoopResult[] }>(SHARES.map((share) => [share, { pooled: [], floor: [] }]));
  const refillRates: number[] = [];
  await withSides(adapter.name, async (sides) => {
    context.progress(`hand-off while refilling · opening the side processes (pool of ${pool})`);
    await both(sides, 0, 'refilling.open', { pool }, 180_000);
    for (let run = 0; run < sizes.runs; run++) {
      context.progress(`hand-off while refilling · run ${run + 1}/${sizes.runs} · the pool's refill rate`);
      const { perSecond } = await sides.pooled.call('refilling.rate', {}, 180_000);
      refillRates.push(perSecond);
      // One unmeasured batch on both sides first (the floor's process has done no hand-off yet, the pool's only takes).
      context.progress(`hand-off while refilling · run ${run + 1}/${sizes.runs} · warm-up`);
      await inTurn(sides, run, 'refilling.go', { perSecond: SHARES[0] * perSecond, count: warmUp }, openLoopTimeout(warmUp, SHARES[0] * perSecond));
      for (const share of SHARES) {
        context.progress(`hand-off while refilling · run ${run + 1}/${sizes.runs} · ${share * 100} % of ${Math.round(perSecond)}/s`);
        const offered = share * perSecond;
        const result = await inTurn(sides, run, 'refilling.go', { perSecond: offered, count }, openLoopTimeout(count, offered));
        results.get(share)!.pooled.push(result.pooled);
        results.get(share)!.floor.push(result.raw);
      }
    }
  });
  const rate = summarize(refillRates);
  const note =
    `${count} hand-offs per rate and run, open loop (Poisson arrivals) at a share of the pool's own refill rate measured in the same run ` +
    `(${Math.round(rate.min)}–${Math.round(rate.max)} streams/s: all ${pool} taken at once, time until full again), after ${warmUp} unmeasured at 25 % on both sides; pool of ${pool}, refill on demand; ` +
    `floor: the same exchange at the same rate on raw connections opened beforehand; latency from the scheduled arrival to the echo`;
  const rows: Row[] = [];
  for (const share of SHARES) {
    const { pooled, floor } = results.get(share)!;
    const blame = pooled.map((r) => r.attribution).filter((a) => a !== undefined);
    const sum = (pick: (a: NonNullable<OpenLoopResult['attribution']>) => number): number => blame.reduce((total, a) => total + pick(a), 0);
    const attribution =
      `of the slowest 1 % of pooled hand-offs at ${share * 100} % (${sum((a) => a.slowest)} over ${blame.length} runs): ${sum((a) => a.dial)} overlapped a dial of the pool in flight, ` +
      `${sum((a) => a.handshake)} a server handshake, ${sum((a) => a.gc)} a GC; ${sum((a) => a.none)} none of these`;
    for (const [metric, pick] of [
      ['p50', (r: OpenLoopResult) => r.p50],
      ['p99', (r: OpenLoopResult) => r.p99],
      ['p99.9', (r: OpenLoopResult) => r.p999],
    ] as const) {
      const p = pooled.map(pick);
      const f = floor.map(pick);
      const target = metric === 'p99' ? P99_TARGETS[share] : undefined;
      rows.push(
        judge({
          transport: adapter.name,
          scenario: 'refilling',
          metric: `hand-off ${metric} while refilling at ${share * 100} %`,
          unit: 'µs',
          pooled: summarize(p),
          floor: summarize(f),
          floorRatio: summarize(pairedRatios(p, f)),
          ...(target ? { target } : {}),
          note: metric === 'p99' ? `${note}; ${attribution}` : note,
        }),
      );
    }
  }
  return rows;
}
