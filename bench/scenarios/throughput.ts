import { openPools, type Pools, type RawLink } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';
import { destroyHard, finish, MiB, StallError, transfer, within, type StreamPair } from '../util.js';

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
 * writes that honour backpressure; both ends in this process. Runs
 * alternate raw/pooled order so drift on a busy machine hits both alike;
 * the ratio is per run (pooled / raw of the same run).
 *
 * A transfer with no progress for 3 s (2 s in --quick) is a stall of the transport, not of
 * the harness: it is reported in the row (and that side's remaining runs of
 * the variant are skipped), the stalled pool or raw link is replaced, and
 * the bench goes on.
 */
export async function throughput(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const streams = sizes.streams;
  const variants: Variant[] = [
    { metric: '1 stream c→s', streams: 1, bothWays: false },
    { metric: '1 stream c↔s', streams: 1, bothWays: true },
    { metric: `${streams} streams c→s`, streams, bothWays: false },
  ];
  const openPooled = async (): Promise<Pools> => {
    const pools = await openPools(adapter, { client: { minCap: streams, maxCap: streams, minIvl: 20, maxIvl: 20 } });
    await pools.full(streams);
    return pools;
  };
  let pools: Pools | undefined;
  let link: RawLink | undefined;
  const rows: Row[] = [];
  try {
    pools = await openPooled();
    link = await adapter.openRaw();
    for (const variant of variants) {
      const total = variant.streams === 1 ? sizes.bytes : sizes.multiBytes;
      // Per stream and direction: both ways moves the same total, half each way.
      const perStream = Math.floor(total / variant.streams / (variant.bothWays ? 2 : 1));
      const moved = perStream * variant.streams * (variant.bothWays ? 2 : 1);
      // Generous bound on top of the stall watch: a slow trickle still ends.
      const bound = Math.max(60_000, (moved / (2 * MiB)) * 1000);
      const values: Record<Side, number[]> = { raw: [], pooled: [] };
      const stalled: Record<Side, string | undefined> = { raw: undefined, pooled: undefined };
      for (let run = 0; run < sizes.runs; run++) {
        const order: readonly Side[] = run % 2 === 0 ? ['raw', 'pooled'] : ['pooled', 'raw'];
        for (const side of order) {
          if (stalled[side]) {
            values[side].push(NaN);
            continue;
          }
          context.progress(`throughput ${variant.metric} · run ${run + 1}/${sizes.runs} · ${side}`);
          const pairs: StreamPair[] = [];
          for (let i = 0; i < variant.streams; i++) pairs.push(side === 'raw' ? await link.pair() : await pools.take());
          // The pool refills what was taken before the clock starts: no handshakes during the transfer.
          if (side === 'pooled') await pools.full(streams);
          try {
            const seconds = await within(transfer(pairs, perStream, variant.bothWays, sizes.quick ? 2000 : 3000), bound, `${adapter.name} ${variant.metric} (${side})`);
            values[side].push(moved / MiB / seconds);
          } catch (error) {
            if (!(error instanceof StallError)) throw error;
            values[side].push(NaN);
            stalled[side] = `${side} stalled in run ${run + 1} (${error.message})`;
            context.progress(`throughput ${variant.metric} · ${side} STALLED, replacing the ${side === 'raw' ? 'raw link' : 'pools'}`);
            for (const { client, server } of pairs) {
              destroyHard(client);
              destroyHard(server);
            }
            // A stalled session (http2) holds its other streams too: start over with fresh ones.
            if (side === 'raw') {
              await link.close();
              link = await adapter.openRaw();
            } else {
              await pools.close();
              pools = await openPooled();
            }
            continue;
          }
          for (const { client, server } of pairs) {
            finish(client);
            finish(server);
          }
        }
      }
      const stalls = [stalled.raw, stalled.pooled].filter(Boolean);
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
          `${fmtBytes(perStream)} per stream${variant.bothWays ? ' each way' : ''}, 64 KiB writes; raw: ${link.label}` +
          (stalls.length ? `. STALLED: ${stalls.join('; ')}; later runs of that side skipped` : ''),
      });
      if (stalled.pooled) row.met = false;
      rows.push(row);
    }
  } finally {
    await link?.close();
    await pools?.close();
  }
  return rows;
}

export function fmtBytes(bytes: number): string {
  if (bytes >= 1024 * MiB && bytes % (1024 * MiB) === 0) return `${bytes / (1024 * MiB)} GiB`;
  if (bytes >= MiB) return `${Math.round((bytes / MiB) * 10) / 10} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}
