import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { both, withSides } from '../side-process.js';
import { pairedRatios, summarize } from '../stats.js';

/**
 * Completed hand-offs (take, ID over the control connection, `outgoingGet`,
 * one 64-byte round trip) per second with `rateConcurrency` of them in
 * flight and a pool of `ratePool` refilling itself meanwhile (adaptive
 * interval 1–100 ms). Raw reference: the same exchange dialing a fresh
 * raw connection per hand-off, at the same concurrency.
 *
 * Raw and pooled run at the same time, each in its own process holding
 * both ends (`side-child.ts`), over the same time-boxed window.
 */
export async function rate(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const pool = sizes.ratePool;
  const perSecond = { raw: [] as number[], pooled: [] as number[] };
  const tail = { raw: [] as number[], pooled: [] as number[] };
  let label = '';
  await withSides(adapter.name, async (sides) => {
    context.progress(`hand-off rate c=${sizes.rateConcurrency} · opening raw and pooled side processes`);
    label = (await both(sides, 0, 'rate.open', { pool })).raw.label;
    for (let run = 0; run < sizes.runs; run++) {
      context.progress(`hand-off rate c=${sizes.rateConcurrency} · run ${run + 1}/${sizes.runs} · raw and pooled side by side`);
      await both(sides, run, 'rate.prepare', {});
      const result = await both(sides, run, 'rate.go', { concurrency: sizes.rateConcurrency, seconds: sizes.rateSeconds }, 60_000 + sizes.rateSeconds * 2000);
      for (const side of ['raw', 'pooled'] as const) {
        perSecond[side].push(result[side].rate);
        tail[side].push(result[side].p99);
      }
    }
  });
  const note =
    `${sizes.rateConcurrency} hand-offs in flight for ${sizes.rateSeconds} s after ${sizes.rateSeconds / 4} s unmeasured; pool of ${pool} (adaptive interval 1–100 ms); ` +
    `raw: dial a fresh ${label} per hand-off; raw and pooled side by side, each in its own process`;
  return [
    judge({
      transport: adapter.name,
      scenario: 'rate',
      metric: `hand-off rate c=${sizes.rateConcurrency}`,
      unit: '/s',
      raw: summarize(perSecond.raw),
      pooled: summarize(perSecond.pooled),
      ratio: summarize(pairedRatios(perSecond.pooled, perSecond.raw)),
      note,
    }),
    judge({
      transport: adapter.name,
      scenario: 'rate',
      metric: `hand-off p99 at c=${sizes.rateConcurrency}`,
      unit: 'µs',
      raw: summarize(tail.raw),
      pooled: summarize(tail.pooled),
      ratio: summarize(pairedRatios(tail.pooled, tail.raw)),
      note,
    }),
  ];
}
