import { openPools } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';
import { now, runConcurrently, within } from '../util.js';

/** The client pool's default `maxConcurrentDials`; the raw side dials with the same concurrency. */
const CONCURRENCY = 32;

/**
 * Time from `start()` to a full client pool of `warmup` streams (pool
 * defaults: `maxConcurrentDials` 32, one round fills it), as streams per
 * second, against raw connections of the same kind opened by 32 workers
 * (for tls: `tls.connect` handshakes per second), in the same run.
 */
export async function warmup(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const count = sizes.warmup;
  const raw: number[] = [];
  const pooled: number[] = [];
  const pooledMs: number[] = [];
  for (let run = 0; run < sizes.runs; run++) {
    const order = run % 2 === 0 ? (['raw', 'pooled'] as const) : (['pooled', 'raw'] as const);
    for (const side of order) {
      context.progress(`warm-up ${count} · run ${run + 1}/${sizes.runs} · ${side}`);
      if (side === 'pooled') {
        const pools = await openPools(adapter, { client: { minCap: count, maxCap: count, minIvl: 1000, maxIvl: 1000 }, start: false });
        try {
          const start = now();
          pools.client.start();
          await pools.client.waitForActive(count, 120_000);
          const ms = now() - start;
          pooledMs.push(ms);
          pooled.push(count / (ms / 1000));
        } finally {
          await pools.close();
        }
      } else {
        const link = await adapter.openRaw();
        try {
          const start = now();
          await within(
            runConcurrently(count, CONCURRENCY, () => link.open()),
            120_000,
            `${adapter.name} raw warm-up`,
          );
          raw.push(count / ((now() - start) / 1000));
        } finally {
          await link.close();
        }
      }
    }
  }
  const tls = adapter.name === 'tls';
  return [
    judge({
      transport: adapter.name,
      scenario: 'warmup',
      metric: `warm-up to ${count}`,
      unit: 'streams/s',
      raw: summarize(raw),
      pooled: summarize(pooled),
      ratio: summarize(pairedRatios(pooled, raw)),
      ...(tls ? { target: { label: '≥ 0.9', value: 0.9, on: 'ratio', better: 'higher', inclusive: true } as const } : {}),
      note: `start() to ${count} idle: median ${Math.round(summarize(pooledMs).median)} ms; raw: ${CONCURRENCY} workers opening raw connections/streams of the same kind, each done once the server side has it too`,
    }),
  ];
}
