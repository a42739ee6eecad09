import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { both, inTurn, withSides } from '../side-process.js';
import { pairedRatios, summarize } from '../stats.js';
import { openLoopCounts, openLoopTimeout, type OpenLoopResult } from './refilling-measure.js';

/** Offered load, as a share of dialing's saturation rate measured in the same run. */
const SHARES = [0.25, 0.5, 0.9] as const;

/** Issue 18: up to 90 % of dialing's saturation, pooled p50 ≤ ⅓ of dialing's, pooled p99 ≤ dialing's. */
const TARGETS: Record<'p50' | 'p99', Target> = {
  p50: { label: '≤ 0.33', value: 1 / 3, on: 'ratio', better: 'lower', inclusive: true },
  p99: { label: '≤ 1', value: 1, on: 'ratio', better: 'lower', inclusive: true },
};

/**
 * Open loop against dialing: first the rate at which dialing a fresh raw
 * connection per hand-off saturates (the `rate` scenario's raw side, closed
 * loop at c=`rateConcurrency`), then hand-offs arriving open loop (Poisson)
 * at 25 %, 50 % and 90 % of it, on each side in turn: raw dials per
 * hand-off, pooled takes from a pool of `ratePool` refilling on demand.
 * Latency from the scheduled arrival to the echo; rows p50, p99, p99.9.
 */
export async function openloop(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const { count, warmUp } = openLoopCounts(sizes.quick);
  const results = new Map<number, { raw: OpenLoopResult[]; pooled: OpenLoopResult[] }>(SHARES.map((share) => [share, { raw: [], pooled: [] }]));
  const saturation: number[] = [];
  let label = '';
  await withSides(adapter.name, async (sides) => {
    context.progress(`open loop against dialing · opening the side processes`);
    label = (await both(sides, 0, 'rate.open', { pool: sizes.ratePool }, 180_000)).raw.label;
    for (let run = 0; run < sizes.runs; run++) {
      context.progress(`open loop against dialing · run ${run + 1}/${sizes.runs} · dialing's saturation rate`);
      const { rate } = await sides.raw.call('rate.go', { concurrency: sizes.rateConcurrency, seconds: sizes.rateSeconds }, 60_000 + sizes.rateSeconds * 2000);
      saturation.push(rate);
      // One unmeasured batch on both sides first: the pooled process sat idle while the raw one measured
      // its saturation, and its first hand-offs (cold code, a process asleep in epoll) were the slowest.
      context.progress(`open loop against dialing · run ${run + 1}/${sizes.runs} · warm-up`);
      await inTurn(sides, run, 'openloop.go', { perSecond: SHARES[0] * rate, count: warmUp }, openLoopTimeout(warmUp, SHARES[0] * rate));
      for (const share of SHARES) {
        context.progress(`open loop against dialing · run ${run + 1}/${sizes.runs} · ${share * 100} % of ${Math.round(rate)}/s`);
        const offered = share * rate;
        const result = await inTurn(sides, run, 'openloop.go', { perSecond: offered, count }, openLoopTimeout(count, offered));
        results.get(share)!.raw.push(result.raw);
        results.get(share)!.pooled.push(result.pooled);
      }
    }
  });
  const rate = summarize(saturation);
  const note =
    `${count} hand-offs per rate and run, open loop (Poisson) at a share of dialing's saturation rate measured in the same run ` +
    `(${Math.round(rate.min)}–${Math.round(rate.max)}/s closed loop at c=${sizes.rateConcurrency}), after ${warmUp} unmeasured at 25 % on both sides; raw: a fresh ${label} dialed per hand-off; ` +
    `pooled: a pool of ${sizes.ratePool} refilling on demand; each in its own process, in turn (order alternating per run, the other idle); latency from the scheduled arrival to the echo`;
  const rows: Row[] = [];
  for (const share of SHARES) {
    const { raw, pooled } = results.get(share)!;
    for (const [metric, pick, target] of [
      ['p50', (r: OpenLoopResult) => r.p50, TARGETS.p50],
      ['p99', (r: OpenLoopResult) => r.p99, TARGETS.p99],
      ['p99.9', (r: OpenLoopResult) => r.p999, undefined],
    ] as const) {
      const r = raw.map(pick);
      const p = pooled.map(pick);
      rows.push(
        judge({
          transport: adapter.name,
          scenario: 'openloop',
          metric: `open-loop ${metric} at ${share * 100} % of dialing`,
          unit: 'µs',
          raw: summarize(r),
          pooled: summarize(p),
          ratio: summarize(pairedRatios(p, r)),
          ...(target ? { target } : {}),
          note,
        }),
      );
    }
  }
  return rows;
}
