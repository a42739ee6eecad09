import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';
import { idleRuns } from './idle.js';

/**
 * Time from `start()` to a full client pool of `idle` streams (pool
 * defaults: `maxConcurrentDials` 32, one round fills it), as streams per
 * second, against raw connections of the same kind opened by 32 workers
 * (for tls: `tls.connect` handshakes per second), in the same run and at
 * the same time (see `idle.ts`: the memory scenario's connections).
 */
export async function warmup(context: ScenarioContext): Promise<Row[]> {
  const { adapter } = context;
  const runs = await idleRuns(context);
  const count = runs.pooled[0]?.count ?? context.sizes.idle;
  const raw = runs.raw.map((r) => r.count / (r.warmupMs / 1000));
  const pooled = runs.pooled.map((r) => r.count / (r.warmupMs / 1000));
  const tls = adapter.name === 'tls';
  const cpuRaw = runs.raw.map((r) => r.warmupCpuMs / r.count);
  const cpuPooled = runs.pooled.map((r) => r.warmupCpuMs / r.count);
  const cpuRatio = summarize(pairedRatios(cpuPooled, cpuRaw));
  const µs = (ms: number): string => `${Math.round(ms * 1000)} µs`;
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
      note:
        `start() to ${count} idle: median ${Math.round(summarize(runs.pooled.map((r) => r.warmupMs)).median)} ms; ` +
        'raw: 32 workers opening raw connections/streams of the same kind, each done once the server side has it too; ' +
        `raw and pooled side by side, each in ${context.sizes.isolateRuns ? 'a fresh process' : 'its own process'} (after 8 warm-up connections); ` +
        `CPU per stream (both ends) raw ${µs(summarize(cpuRaw).median)}, pooled ${µs(summarize(cpuPooled).median)}, ratio ${cpuRatio.median.toFixed(2)} (${cpuRatio.min.toFixed(2)}–${cpuRatio.max.toFixed(2)})`,
    }),
  ];
}
