import { openPools } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { pairedRatios, percentiles, summarize } from '../stats.js';
import { Control, ObservedTransport, within } from '../util.js';
import { PooledHandOff, RawDialHandOff } from './handoff-engine.js';

/** Pool size and hand-offs per batch (quick runs use fewer hand-offs than a batch). */
const POOL = 256;
const BATCH = 200;

const P50_TARGET: Target = { label: '≤ 100 µs', value: 100, on: 'pooled', better: 'lower', inclusive: true };
const P99_TARGET: Target = { label: '≤ 1 ms', value: 1000, on: 'pooled', better: 'lower', inclusive: true };

/**
 * Hand-off latency on a warm pool, one at a time: take `[id, stream]`, send
 * the ID on a control connection, `outgoingGet(id)`, one 64-byte round trip.
 * Refilling is held back while a batch of hand-offs runs (the pool is
 * refilled between batches), so the figure is the hand-off path itself;
 * the hand-off-rate scenario measures it with refills running.
 * Raw reference: the same exchange, dialing a fresh raw connection instead.
 */
export async function handoff(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const poolSize = Math.min(POOL, sizes.handoffs);
  const batch = Math.min(BATCH, poolSize);
  let observed: ObservedTransport | undefined;
  const pools = await openPools(adapter, {
    client: { minCap: poolSize, maxCap: poolSize, minIvl: 10, maxIvl: 10 },
    wrap: (transport) => (observed = new ObservedTransport(transport)),
  });
  const link = await adapter.openRaw();
  const pooledControl = await Control.open();
  const rawControl = await Control.open();
  const pooledEngine = new PooledHandOff(pools, pooledControl);
  const rawEngine = new RawDialHandOff(link, rawControl);
  const p50 = { raw: [] as number[], pooled: [] as number[] };
  const p99 = { raw: [] as number[], pooled: [] as number[] };
  try {
    for (let run = 0; run < sizes.runs; run++) {
      const order = run % 2 === 0 ? (['raw', 'pooled'] as const) : (['pooled', 'raw'] as const);
      for (const side of order) {
        context.progress(`hand-off latency · run ${run + 1}/${sizes.runs} · ${side}`);
        const samples: number[] = [];
        if (side === 'pooled') {
          for (let i = 0; i < sizes.handoffs; i++) {
            if (i % batch === 0) {
              observed!.resume();
              await pools.full(poolSize);
              observed!.pause();
            }
            samples.push(await within(pooledEngine.once(), 15_000, `${adapter.name} pooled hand-off`));
          }
          observed!.resume();
        } else {
          for (let i = 0; i < sizes.rawHandoffs; i++) samples.push(await within(rawEngine.once(), 15_000, `${adapter.name} raw dial hand-off`));
        }
        const { p50: median, p99: tail } = percentiles(samples.map((ms) => ms * 1000));
        p50[side].push(median);
        p99[side].push(tail);
      }
    }
  } finally {
    observed?.resume();
    await pooledControl.close();
    await rawControl.close();
    await link.close();
    await pools.close();
  }
  const note = `${sizes.handoffs} sequential hand-offs per run (raw: ${sizes.rawHandoffs} dial-on-demand round trips on ${link.label}); pool of ${poolSize}, refilled between batches of ${batch}`;
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
      ...(tcp ? { target: P99_TARGET } : {}),
      note,
    }),
  ];
}
