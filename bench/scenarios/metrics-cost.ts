import { Registry } from 'prom-client';
import { registerPoolMetrics } from '../../lib/metrics/pool-metrics.js';
import { openPools, type Pools } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row, type Target } from '../report-types.js';
import { pairedRatios, percentiles, summarize } from '../stats.js';
import { Control, MiB, now, transfer, within } from '../util.js';
import { PooledHandOff } from './handoff-engine.js';

/** The pool the hand-offs draw from; refilled (unmeasured) whenever a batch has used most of it. */
const POOL = 32;
const BATCH = 24;
/** Transfers per run, half of them with metrics (off, on, on, off...). */
const TRANSFERS = 4;
const THROUGHPUT_TARGET: Target = { label: '≥ 0.98', value: 0.98, on: 'ratio', better: 'higher', inclusive: true };
const P50_TARGET: Target = { label: '≤ 5 µs', value: 5, on: 'pooled', better: 'lower', inclusive: true };

/** One measurement of one run, with metrics off and on: the same sizes, interleaved. */
interface Pair<T> {
  off: T;
  on: T;
}

type Metrics = 'off' | 'on';

/** Registers the pool metrics (in a registry of their own) for `on`; returns what undoes it. */
function switchTo(metrics: Metrics, pools: Pools): () => void {
  return metrics === 'on' ? registerPoolMetrics(new Registry(), [pools.client, pools.server]) : () => undefined;
}

/**
 * `count` samples per side, in batches of at most BATCH that alternate
 * between metrics off and on (the pool full before each, the metrics
 * registered or removed between batches, outside the clock; no forced GC), so that both
 * sides see the same machine load. µs per sample.
 */
async function interleaved(pools: Pools, count: number, sample: () => Promise<number>): Promise<Pair<number[]>> {
  const samples: Pair<number[]> = { off: [], on: [] };
  let turn = 0;
  while (samples.off.length < count || samples.on.length < count) {
    const metrics: Metrics = turn++ % 2 === 0 ? 'off' : 'on';
    const into = samples[metrics];
    if (into.length >= count) continue;
    // No forced GC here: before a latency window it throws optimised code away (see handoff-engine.ts).
    await pools.full(POOL);
    const undo = switchTo(metrics, pools);
    try {
      const batch = Math.min(BATCH, count - into.length);
      for (let i = 0; i < batch; i++) into.push((await sample()) * 1000);
    } finally {
      undo();
    }
  }
  return samples;
}

/** The two takes of a hand-off alone, from an idle pool: server `incomingGet`, client `outgoingGet(id)`; ms. */
async function takePair(pools: Pools): Promise<number> {
  const start = now();
  const [id, server] = await pools.server.incomingGet(10_000);
  const client = await pools.client.outgoingGet(id, 10_000);
  const elapsed = now() - start;
  client.destroy();
  server.destroy();
  return elapsed;
}

/** One pooled stream moving `bytes`, metrics off or on: MiB and seconds. */
async function transferOf(pools: Pools, metrics: Metrics, bytes: number): Promise<{ mib: number; seconds: number }> {
  await pools.full(POOL);
  const pair = await pools.take();
  const undo = switchTo(metrics, pools);
  try {
    const moved = await transfer([pair], bytes, false, 5000);
    return { mib: moved.bytes / MiB, seconds: moved.seconds };
  } finally {
    undo();
    pair.client.destroy();
    pair.server.destroy();
  }
}

/** MiB/s of each side over TRANSFERS transfers of `bytes` each, alternating off, on, on, off... */
async function throughputs(pools: Pools, bytes: number): Promise<Pair<number>> {
  const totals = { off: { mib: 0, seconds: 0 }, on: { mib: 0, seconds: 0 } };
  for (let i = 0; i < TRANSFERS; i++) {
    const metrics: Metrics = i % 4 === 0 || i % 4 === 3 ? 'off' : 'on';
    const { mib, seconds } = await transferOf(pools, metrics, bytes);
    totals[metrics].mib += mib;
    totals[metrics].seconds += seconds;
  }
  return { off: totals.off.mib / totals.off.seconds, on: totals.on.mib / totals.on.seconds };
}

export async function metricsCost(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  // What the metrics cost is the pool's (the events carry no byte): in a quick run, one transport shows the scenario works.
  if (sizes.quick && adapter.name !== 'tcp') return [];
  const count = sizes.quick ? 48 : 1000;
  const bytes = sizes.quick ? 8 * MiB : 128 * MiB;
  const pools = await openPools(adapter, { server: { name: 'bench' }, client: { name: 'bench', minCap: POOL, maxCap: POOL, minIvl: 20, maxIvl: 20 } });
  const control = await Control.open();
  const engine = new PooledHandOff(pools, control);
  const runs: Array<{ takes: Pair<number[]>; handoffs: Pair<number[]>; mibps: Pair<number> }> = [];
  try {
    // One unmeasured round of each, so neither side pays for warming up the code.
    await interleaved(pools, BATCH, () => takePair(pools));
    await interleaved(pools, BATCH, () => engine.once());
    for (let run = 0; run < sizes.runs; run++) {
      context.progress(`metrics cost: run ${run + 1}/${sizes.runs}`);
      const takes = await within(interleaved(pools, count, () => takePair(pools)), 120_000, 'the takes of a metrics-cost run');
      const handoffs = await within(interleaved(pools, count, () => engine.once()), 120_000, 'the hand-offs of a metrics-cost run');
      const mibps = await within(throughputs(pools, bytes), 120_000, 'the transfers of a metrics-cost run');
      runs.push({ takes, handoffs, mibps });
    }
  } finally {
    await control.close();
    await pools.close();
  }
  const p50 = (samples: number[]): number => percentiles(samples).p50;
  const takesOff = runs.map((r) => p50(r.takes.off));
  const takesOn = runs.map((r) => p50(r.takes.on));
  const handoffsOff = runs.map((r) => p50(r.handoffs.off));
  const handoffsOn = runs.map((r) => p50(r.handoffs.on));
  const mibpsOff = runs.map((r) => r.mibps.off);
  const mibpsOn = runs.map((r) => r.mibps.on);
  const how = `one pool pair in the bench process, "raw" column: metrics off (no subscriber), "pooled" column: registerPoolMetrics in place; samples in batches of ${BATCH} alternating off/on, from a pool of ${POOL} refilled between batches`;
  return [
    judge({
      transport: adapter.name,
      scenario: 'metrics',
      metric: 'metrics on/off: throughput',
      unit: 'MiB/s',
      raw: summarize(mibpsOff),
      pooled: summarize(mibpsOn),
      ratio: summarize(pairedRatios(mibpsOn, mibpsOff)),
      target: THROUGHPUT_TARGET,
      note: `${how}; ${TRANSFERS} transfers of ${bytes / MiB} MiB over one pooled stream per run, half with metrics (off, on, on, off)`,
    }),
    {
      transport: adapter.name,
      scenario: 'metrics',
      metric: 'metrics on/off: hand-off p50',
      unit: 'µs',
      raw: summarize(handoffsOff),
      pooled: summarize(handoffsOn),
      ratio: summarize(pairedRatios(handoffsOn, handoffsOff)),
      note: `${count} hand-offs per side and run as in the hand-off scenario (take, ID on a control connection, outgoingGet, a 64-byte round trip)`,
    },
    {
      transport: adapter.name,
      scenario: 'metrics',
      metric: 'metrics on/off: take pair p50',
      unit: 'µs',
      raw: summarize(takesOff),
      pooled: summarize(takesOn),
      ratio: summarize(pairedRatios(takesOn, takesOff)),
      note: `${count} per side and run: server incomingGet + client outgoingGet(id) of idle streams, no I/O (where every event of a hand-off is published)`,
    },
    judge({
      transport: adapter.name,
      scenario: 'metrics',
      metric: 'hand-off p50 added by metrics',
      unit: 'µs',
      pooled: summarize(takesOn.map((value, i) => value - takesOff[i]!)),
      target: P50_TARGET,
      note: 'per run: take-pair p50 with metrics minus without (the hand-off\'s round trip itself carries no event)',
    }),
  ];
}
