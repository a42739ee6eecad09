import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { both, type Side as SideProcess, withSides } from '../side-process.js';
import type { SideCommands, ThroughputResult } from '../side-child.js';
import { pairedRatios, summarize } from '../stats.js';
import { GiB, MiB } from '../util.js';

/** Throughput ratio targets of the issue: ≥ 0.95 for tcp and tls, ≥ 0.85 for http2 and ws/wss. */
export function throughputTarget(name: string): Target {
  const value = name === 'tcp' || name === 'tls' ? 0.95 : 0.85;
  return { label: `≥ ${value}`, value, on: 'ratio', better: 'higher', inclusive: true };
}

interface Variant {
  readonly metric: string;
  readonly streams: number;
  readonly bothWays: boolean;
}

type Side = 'raw' | 'pooled';

/**
 * One pooled stream (taken from a warm pool as an application takes it)
 * against one raw connection of the same kind, moving the bytes with 64 KiB
 * writes that honour backpressure.
 *
 * Raw and pooled move their bytes at the same time, each in its own
 * process holding both ends of its connections (`side-child.ts`): on 2
 * cores each has one, and whatever else loads the machine loads both
 * alike. The two processes are fresh for every run and each holds a raw
 * link and pools; which one plays raw alternates, and they swap cores
 * every 100 ms while measuring (see `side-process.ts`): a process, or a
 * core, that happens to be faster favours neither side for long.
 * Each run also records the CPU time per GiB of each side (both ends):
 * unlike MiB/s it does not depend on how busy the machine was.
 *
 * A transfer with no progress for 3 s (2 s in --quick) is a stall of the
 * transport, not of the harness: it is reported in the row, the side
 * process replaces the stalled pool or raw link, and the bench goes on;
 * the later runs try that side again in their fresh processes (in
 * --quick, where the processes are shared, they skip it).
 */
export async function throughput(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const streams = sizes.streams;
  const variants: Variant[] = [
    { metric: '1 stream c→s', streams: 1, bothWays: false },
    { metric: '1 stream c↔s', streams: 1, bothWays: true },
    { metric: `${streams} streams c→s`, streams, bothWays: false },
  ];
  const stallMs = sizes.quick ? 2000 : 3000;
  const plan = variants.map((variant) => {
    const total = variant.streams === 1 ? sizes.bytes : sizes.multiBytes;
    // Per stream and direction: both ways moves the same total, half each way.
    const perStream = Math.floor(total / variant.streams / (variant.bothWays ? 2 : 1));
    const moved = perStream * variant.streams * (variant.bothWays ? 2 : 1);
    return {
      variant,
      perStream,
      moved,
      // Generous bound on top of the stall watch: a slow trickle still ends.
      bound: Math.max(60_000, (moved / (2 * MiB)) * 1000),
      values: { raw: [] as number[], pooled: [] as number[] },
      cpu: { raw: [] as number[], pooled: [] as number[] },
      /** Stalls so far, per side (each names its run). */
      stalled: { raw: [] as string[], pooled: [] as string[] },
    };
  });
  let label = '';
  const measureRun = async (processes: { raw: SideProcess; pooled: SideProcess }, run: number): Promise<void> => {
    for (const [index, entry] of plan.entries()) {
      const { variant, perStream, moved, bound, values, cpu, stalled } = entry;
      // Which process plays which side alternates: neither side keeps a process's luck.
      const roles = (run + index) % 2 === 0 ? processes : { raw: processes.pooled, pooled: processes.raw };
      // A side that stalled sits out the later runs, unless they are in fresh processes (a stall is not certain to recur).
      const active = (['raw', 'pooled'] as const).filter((side) => sizes.isolateRuns || stalled[side].length === 0);
      context.progress(`throughput ${variant.metric} · run ${run + 1}/${sizes.runs} · ${active.join(' and ')}${active.length === 2 ? ' side by side' : ''}`);
      const go = (side: Side): SideCommands['throughput.go'][0] => ({ perStream, bothWays: variant.bothWays, stallMs, bound, as: side });
      let results: Partial<Record<Side, ThroughputResult>>;
      if (active.length === 2) {
        await both(roles, run, 'throughput.prepare', (side) => ({ streams: variant.streams, as: side }));
        results = await both(roles, run, 'throughput.go', go, bound + 30_000);
      } else {
        results = {};
        for (const side of active) {
          await roles[side].call('throughput.prepare', { streams: variant.streams, as: side });
          results[side] = await roles[side].call('throughput.go', go(side), bound + 30_000);
        }
      }
      for (const side of ['raw', 'pooled'] as const) {
        const result = results[side];
        if (!result?.transfer) {
          values[side].push(NaN);
          if (result?.stalled) stalled[side].push(`${side} stalled in run ${run + 1} (${result.stalled})`);
          continue;
        }
        values[side].push(moved / MiB / result.transfer.seconds);
        cpu[side].push(result.cpuMs / (moved / GiB));
      }
    }
  };
  const open = async (processes: { raw: SideProcess; pooled: SideProcess }, run: number): Promise<void> => {
    context.progress(`throughput · run ${run + 1}/${sizes.runs} · starting two side processes`);
    label = (await both(processes, run, 'throughput.open', { streams })).raw.label;
  };
  if (sizes.isolateRuns) {
    // Fresh processes for every run: a process that happens to run faster (memory placement...) favours neither side for long.
    for (let run = 0; run < sizes.runs; run++) {
      await withSides(adapter.name, async (processes) => {
        await open(processes, run);
        await measureRun(processes, run);
      }, 'both');
    }
  } else {
    await withSides(adapter.name, async (processes) => {
      await open(processes, 0);
      for (let run = 0; run < sizes.runs; run++) await measureRun(processes, run);
    }, 'both');
  }
  return plan.map(({ variant, perStream, values, cpu, stalled }) => {
    const stalls = [...stalled.raw, ...stalled.pooled];
    const cpuRatio = summarize(pairedRatios(cpu.pooled, cpu.raw).filter(Number.isFinite));
    const row = judge({
      transport: adapter.name,
      scenario: 'throughput',
      metric: variant.metric,
      unit: 'MiB/s',
      raw: summarize(values.raw.filter(Number.isFinite)),
      pooled: summarize(values.pooled.filter(Number.isFinite)),
      ratio: summarize(pairedRatios(values.pooled, values.raw).filter(Number.isFinite)),
      target: throughputTarget(adapter.name),
      note:
        `${fmtBytes(perStream)} per stream${variant.bothWays ? ' each way' : ''}, 64 KiB writes; raw: ${label}; ` +
        `raw and pooled side by side in two processes (${sizes.isolateRuns ? 'fresh per run, ' : ''}swapping cores)` +
        (cpuRatio.n
          ? `; CPU per GiB (both ends) raw ${Math.round(summarize(cpu.raw).median)} ms, pooled ${Math.round(summarize(cpu.pooled).median)} ms, ratio ${cpuRatio.median.toFixed(2)} (${cpuRatio.min.toFixed(2)}–${cpuRatio.max.toFixed(2)})`
          : '') +
        (stalls.length ? `. STALLED: ${stalls.join('; ')}${sizes.isolateRuns ? '' : '; later runs of that side skipped'}` : ''),
    });
    if (stalled.pooled.length > 0) row.met = false;
    return row;
  });
}

export function fmtBytes(bytes: number): string {
  if (bytes >= 1024 * MiB && bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes >= MiB) return `${Math.round((bytes / MiB) * 10) / 10} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}
