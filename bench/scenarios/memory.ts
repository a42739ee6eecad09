import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';
import { idleRuns } from './idle.js';

const TARGET: Target = { label: '≤ 1.25', value: 1.25, on: 'ratio', better: 'lower', inclusive: true };

/**
 * RSS and JS heap per idle stream with `idle` of them, pooled against raw
 * of the same kind: each side in its own fresh process per run
 * (`--expose-gc`), both ends of every connection in that process, GC'd,
 * baseline subtracted (see `idle.ts`: the warm-up scenario's connections).
 */
export async function memory(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const runs = await idleRuns(context);
  const kib = (values: number[]): number[] => values.map((bytes) => bytes / 1024);
  const note =
    `${sizes.idle} idle streams, both ends in one ${sizes.isolateRuns ? 'fresh process per side and run' : 'process per side (the same for every run)'} (raw and pooled side by side), GC'd, baseline subtracted; per stream = both ends` +
    (sizes.idle < 500 ? '; at this count RSS per stream is within page-size noise' : '');
  const row = (metric: string, pick: (r: { rss: number; heapUsed: number }) => number): Row => {
    const raw = kib(runs.raw.map(pick));
    const pooled = kib(runs.pooled.map(pick));
    return judge({
      transport: adapter.name,
      scenario: 'memory',
      metric,
      unit: 'KiB',
      raw: summarize(raw),
      pooled: summarize(pooled),
      ratio: summarize(pairedRatios(pooled, raw)),
      target: TARGET,
      note,
    });
  };
  return [row('RSS per idle stream', (r) => r.rss), row('JS heap per idle stream', (r) => r.heapUsed)];
}
