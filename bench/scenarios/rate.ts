import { openPools } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { pairedRatios, percentiles, summarize } from '../stats.js';
import { Control, now, sleep, within } from '../util.js';
import { type HandOffEngine, PooledHandOff, RawDialHandOff } from './handoff-engine.js';

/**
 * Completed hand-offs (take, ID over the control connection, `outgoingGet`,
 * one 64-byte round trip) per second with `rateConcurrency` of them in
 * flight and a pool of `ratePool` refilling itself meanwhile (adaptive
 * interval 1–100 ms). Raw reference: the same exchange dialing a fresh
 * raw connection per hand-off, at the same concurrency.
 */
export async function rate(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const pool = sizes.ratePool;
  const pools = await openPools(adapter, { client: { minCap: pool, maxCap: pool, minIvl: 1, maxIvl: 100 } });
  const link = await adapter.openRaw();
  const pooledControl = await Control.open();
  const rawControl = await Control.open();
  const engines = { pooled: new PooledHandOff(pools, pooledControl), raw: new RawDialHandOff(link, rawControl) };
  const perSecond = { raw: [] as number[], pooled: [] as number[] };
  const tail = { raw: [] as number[], pooled: [] as number[] };
  try {
    for (let run = 0; run < sizes.runs; run++) {
      const order = run % 2 === 0 ? (['raw', 'pooled'] as const) : (['pooled', 'raw'] as const);
      for (const side of order) {
        context.progress(`hand-off rate c=${sizes.rateConcurrency} · run ${run + 1}/${sizes.runs} · ${side}`);
        if (side === 'pooled') await pools.full(pool);
        const { rate: value, p99 } = await within(measure(engines[side], sizes.rateConcurrency, sizes.rateSeconds), 60_000 + sizes.rateSeconds * 2000, `${adapter.name} ${side} hand-off rate`);
        perSecond[side].push(value);
        tail[side].push(p99);
      }
    }
  } finally {
    await pooledControl.close();
    await rawControl.close();
    await link.close();
    await pools.close();
  }
  const note = `${sizes.rateConcurrency} hand-offs in flight for ${sizes.rateSeconds} s after ${sizes.rateSeconds / 4} s unmeasured; pool of ${pool} (adaptive interval 1–100 ms); raw: dial a fresh ${link.label} per hand-off`;
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

/** Runs `concurrency` loops of hand-offs; counts those completed inside the measured window. */
async function measure(engine: HandOffEngine, concurrency: number, seconds: number): Promise<{ rate: number; p99: number }> {
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
  return { rate: completed / seconds, p99: percentiles(latencies).p99 };
}
