import type { Duplex } from 'node:stream';
import { openPools } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { percentiles, summarize } from '../stats.js';
import { finish, now, ObservedTransport, quiet, within } from '../util.js';

const POOL = 32;
/** A time-boxed run still takes at least this many samples (its p99 is then the 3rd largest). */
const MIN_SAMPLES = 300;

/**
 * `outgoingGet(id)` called before the stream with that ID reaches the
 * client: the server pool's `onIncoming` fires when the server has sent
 * the ID, before the client has read it, and calls `outgoingGet(id)` right
 * there. The stream's arrival is the instant the client transport's
 * `dial()` resolves (a wrapper around the real transport records it); the
 * sample is the time from there to the `outgoingGet` promise resolving.
 * Samples where the get came after the arrival are counted and left out.
 */
export async function rendezvous(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const p50: number[] = [];
  const p99: number[] = [];
  const counts: number[] = [];
  let late = 0;
  for (let run = 0; run < sizes.runs; run++) {
    context.progress(`rendezvous · run ${run + 1}/${sizes.runs}`);
    let observed: ObservedTransport | undefined;
    const pools = await openPools(adapter, {
      client: { minCap: POOL, maxCap: POOL, minIvl: 1, maxIvl: 1 },
      wrap: (transport) => (observed = new ObservedTransport(transport)),
      start: false,
    });
    observed!.recordArrivals = true;
    const samples: number[] = [];
    let stop = false;
    let deadline = Infinity;
    let fail: (error: unknown) => void = () => undefined;
    let complete: () => void = () => undefined;
    const finished = new Promise<void>((resolve, reject) => {
      complete = resolve;
      fail = reject;
    });
    const unsubscribe = pools.server.onIncoming(([id, server]: [string, Duplex]) => {
      quiet(server);
      if (stop) return finish(server);
      const called = now();
      const early = observed!.arrivals.has(id);
      pools.client.outgoingGet(id, 10_000).then(
        (client) => {
          const resolved = now();
          const arrived = observed!.arrivals.get(id);
          observed!.arrivals.delete(id);
          finish(client);
          finish(server);
          if (stop) return;
          if (early || arrived === undefined || arrived < called) late++;
          else samples.push((resolved - arrived) * 1000);
          // Time-boxed: the sample count, or the time box once there are enough for a p99.
          if (samples.length >= sizes.rendezvous || (samples.length >= MIN_SAMPLES && now() >= deadline)) {
            stop = true;
            complete();
          }
        },
        (error: unknown) => {
          if (!stop) fail(error);
        },
      );
    });
    try {
      deadline = now() + sizes.rendezvousSeconds * 1000;
      pools.client.start();
      await within(finished, 120_000, `${adapter.name} rendezvous`);
    } finally {
      stop = true;
      unsubscribe();
      await pools.close();
    }
    counts.push(samples.length);
    const { p50: median, p99: tail } = percentiles(samples);
    p50.push(median);
    p99.push(tail);
  }
  const n = summarize(counts);
  const note = `${n.min === n.max ? n.min : `${n.min}–${n.max}`} gets per run (up to ${sizes.rendezvous}, time-boxed to ${sizes.rendezvousSeconds} s) called before their stream arrived${late ? ` (${late} arrived first and were left out)` : ''}; the Go pools poll every 50 ms`;
  return [
    judge({ transport: adapter.name, scenario: 'rendezvous', metric: 'rendezvous p50', unit: 'µs', pooled: summarize(p50), note }),
    judge({
      transport: adapter.name,
      scenario: 'rendezvous',
      metric: 'rendezvous p99',
      unit: 'µs',
      pooled: summarize(p99),
      target: { label: '< 1 ms', value: 1000, on: 'pooled', better: 'lower', inclusive: false },
      note,
    }),
  ];
}
