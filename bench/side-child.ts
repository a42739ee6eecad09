/**
 * A forked side process (see `side-process.ts`): holds BOTH ends of the
 * connections of one side, raw or pooled, of one transport, and runs the
 * commands the bench sends over IPC. Started as
 *
 *   node --expose-gc dist/bench/side-child.js <adapter> <raw|pooled>
 *
 * by `Side.start()`; one process per side and measurement (per run for
 * the idle-streams measurement, whose memory figure needs a fresh one).
 */
import { ADAPTERS, openPools, type AdapterName, type Pools, type RawLink } from './adapters.js';
import { type HandOffEngine, type Latency, PooledHandOff, type PooledLatency, pooledLatency, PreopenedHandOff, RawDialHandOff, rawLatency } from './scenarios/handoff-engine.js';
import { openLoop, RefillRecorder, type OpenLoopResult } from './scenarios/refilling-measure.js';
import { measureRate, type RateResult } from './scenarios/rate-measure.js';
import { type FarOpen, TunnelFar } from './scenarios/tunnel-far.js';
import {
  Control,
  destroyHard,
  finish,
  now,
  ObservedTransport,
  runConcurrently,
  sleep,
  StallError,
  tick,
  transfer,
  within,
  type StreamPair,
  type Transfer,
} from './util.js';

/** What a side process holds: one side, or (`both`) a raw link and pools, to play either side. */
export type SideMode = 'raw' | 'pooled' | 'both';

export interface IdleResult {
  count: number;
  /** From start() (raw: the first connect) until `count` streams were open. */
  warmupMs: number;
  /** CPU time (user + system) of this process over those `warmupMs`. */
  warmupCpuMs: number;
  /** Bytes added per idle stream (both ends), over the baseline. */
  rss: number;
  heapUsed: number;
  external: number;
  baseline: { rss: number; heapUsed: number };
}

/** A transfer, with the CPU time (user + system, both ends) this process spent on it. */
export type ThroughputResult = { transfer: Transfer; cpuMs: number; stalled?: undefined } | { transfer?: undefined; stalled: string };

function cpuSince(start: NodeJS.CpuUsage): number {
  const { user, system } = process.cpuUsage(start);
  return (user + system) / 1000;
}

/** Command name → [arguments, result]. */
export interface SideCommands {
  'throughput.open': [{ streams: number }, { label: string }];
  'throughput.prepare': [{ streams: number; as: 'raw' | 'pooled' }, null];
  'throughput.go': [{ perStream: number; bothWays: boolean; stallMs: number; bound: number; as: 'raw' | 'pooled' }, ThroughputResult];
  'rate.open': [{ pool: number }, { label: string }];
  'rate.prepare': [Record<string, never>, null];
  'rate.go': [{ concurrency: number; seconds: number }, RateResult];
  /** `settleMs`: how long to let things settle before a memory reading (shorter in --quick). */
  'idle.prepare': [{ count: number; settleMs: number }, null];
  'idle.go': [Record<string, never>, IdleResult];
  /** After idle.go: hand-off latency on the idle pool, with the floor interleaved (pooled), or dialing fresh connections (raw). */
  'handoff.pooled': [{ count: number; batch: number }, PooledLatency & { floor: Latency }];
  'handoff.raw': [{ count: number }, Latency];
  /** Hand-off while refilling: pooled side, a pool of `pool` refilling on demand; raw side, the floor engine. */
  'refilling.open': [{ pool: number }, { label: string }];
  /** Pooled: how many streams per second the pool dials back after all `pool` were taken at once. */
  'refilling.rate': [Record<string, never>, { perSecond: number }];
  /** Open loop at `perSecond` (Poisson), `count` hand-offs: pooled, from the refilling pool; raw, the floor on `count` pre-opened connections. */
  'refilling.go': [{ perSecond: number; count: number }, OpenLoopResult];
  /** After rate.open: open loop at `perSecond` (Poisson) on this side's rate engine (pooled: its pool full first; raw: a fresh dial per hand-off). */
  'openloop.go': [{ perSecond: number; count: number }, OpenLoopResult];
  /** The far end of the tunnel scenario (`tunnel-far.ts`): tunnel client, targets, the raw tunnel's and the pooled stream's far ends. */
  'tunnel.far.open': [FarOpen, { target: number; sink: number }];
  'tunnel.far.prepare': [{ count: number }, null];
  'tunnel.far.stamps': [Record<string, never>, number[]];
  'tunnel.far.take': [{ id: string; bytes: number }, null];
  /** The far side's tunnel client pools' figures, for a failure's report. */
  'tunnel.far.debug': [Record<string, never>, string];
  close: [Record<string, never>, null];
}

export type SideReply = { seq: number; ok: true; result: unknown } | { seq: number; ok: false; error: string };

const [adapterName, mode] = process.argv.slice(2) as [AdapterName, SideMode];
const adapter = ADAPTERS[adapterName];

// ---- what this side holds --------------------------------------------------

let pools: Pools | undefined;
let link: RawLink | undefined;
let control: Control | undefined;
let engine: HandOffEngine | undefined;
let pairs: StreamPair[] = [];
let tpStreams = 0;
let ratePool = 0;
let idle: { count: number; settleMs: number; base: NodeJS.MemoryUsage } | undefined;
let observed: ObservedTransport | undefined;
let far: TunnelFar | undefined;

async function openThroughputPools(streams: number): Promise<Pools> {
  const opened = await openPools(adapter, { client: { minCap: streams, maxCap: streams, minIvl: 20, maxIvl: 20 } });
  await opened.full(streams);
  return opened;
}

// ---- memory ----------------------------------------------------------------------

/** Connections opened and closed before the baseline: loads and warms the code paths. */
const WARM = 8;
/** Workers opening raw connections (the client pool's default `maxConcurrentDials`). */
const CONCURRENCY = 32;

async function collect(settleMs: number): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('the side process needs --expose-gc');
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
  await sleep(settleMs / 2);
  gc();
  return process.memoryUsage();
}

// ---- commands --------------------------------------------------------------------

type Handlers = { [K in keyof SideCommands]: (args: SideCommands[K][0]) => Promise<SideCommands[K][1]> };

const handlers: Handlers = {
  async 'throughput.open'({ streams }) {
    tpStreams = streams;
    if (mode !== 'raw') pools = await openThroughputPools(streams);
    if (mode !== 'pooled') link = await adapter.openRaw();
    return { label: link?.label ?? `pooled ${adapter.name}` };
  },

  async 'throughput.prepare'({ streams, as }) {
    pairs = [];
    for (let i = 0; i < streams; i++) pairs.push(as === 'raw' ? await link!.pair() : await pools!.take());
    // The pool refills what was taken before the clock starts: no handshakes during the transfer.
    if (as === 'pooled') await pools!.full(tpStreams);
    return null;
  },

  async 'throughput.go'({ perStream, bothWays, stallMs, bound, as }) {
    const taken = pairs;
    pairs = [];
    try {
      const cpu = process.cpuUsage();
      const result = await within(transfer(taken, perStream, bothWays, stallMs), bound, `${adapter.name} ${as} transfer`);
      const cpuMs = cpuSince(cpu);
      for (const { client, server } of taken) {
        finish(client);
        finish(server);
      }
      return { transfer: result, cpuMs };
    } catch (error) {
      if (!(error instanceof StallError)) throw error;
      for (const { client, server } of taken) {
        destroyHard(client);
        destroyHard(server);
      }
      // A stalled session (http2) holds its other streams too: start over with fresh ones.
      if (as === 'raw') {
        await link!.close();
        link = await adapter.openRaw();
      } else {
        await pools!.close();
        pools = await openThroughputPools(tpStreams);
      }
      return { stalled: error.message };
    }
  },

  async 'rate.open'({ pool }) {
    ratePool = pool;
    control = await Control.open();
    if (mode === 'pooled') {
      pools = await openPools(adapter, { client: { minCap: pool, maxCap: pool, minIvl: 1, maxIvl: 100 } });
      engine = new PooledHandOff(pools, control);
      return { label: `pooled ${adapter.name}` };
    }
    link = await adapter.openRaw();
    engine = new RawDialHandOff(link, control);
    return { label: link.label };
  },

  async 'rate.prepare'() {
    if (mode === 'pooled') await pools!.full(ratePool);
    return null;
  },

  async 'rate.go'({ concurrency, seconds }) {
    return measureRate(engine!, concurrency, seconds);
  },

  async 'idle.prepare'({ count, settleMs }) {
    // A process used for more than one run (--quick) starts each from nothing open.
    await control?.close();
    await pools?.close();
    await link?.close();
    control = undefined;
    pools = undefined;
    link = undefined;
    if (mode === 'pooled') {
      // Loads and warms the code paths, then is gone before the baseline.
      const warm = await openPools(adapter, { client: { minCap: WARM, maxCap: WARM, minIvl: 1000, maxIvl: 1000 } });
      await warm.full(WARM);
      await warm.close();
      // One creation round fills it (32 dials at a time); the short interval only matters for the hand-offs' refill later.
      pools = await openPools(adapter, {
        client: { minCap: count, maxCap: count, minIvl: 10, maxIvl: 10 },
        start: false,
        wrap: (transport) => (observed = new ObservedTransport(transport)),
      });
    } else {
      link = await adapter.openRaw();
      for (let i = 0; i < WARM; i++) {
        const { client, server } = await link.pair();
        client.destroy();
        server.destroy();
      }
      await sleep(settleMs / 2);
      link.drainQueue();
    }
    idle = { count, settleMs, base: await collect(settleMs) };
    return null;
  },

  async 'idle.go'() {
    const { count, settleMs, base } = idle!;
    const cpu = process.cpuUsage();
    const start = now();
    let warmupMs: number;
    let warmupCpuMs: number;
    if (mode === 'pooled') {
      pools!.client.start();
      await pools!.client.waitForActive(count, 120_000);
      warmupMs = now() - start;
      warmupCpuMs = cpuSince(cpu);
      await pools!.full(count, 120_000);
    } else {
      await within(
        runConcurrently(count, CONCURRENCY, () => link!.open()),
        120_000,
        `${adapter.name} raw warm-up`,
      );
      warmupMs = now() - start;
      warmupCpuMs = cpuSince(cpu);
    }
    await sleep(settleMs);
    const after = await collect(settleMs);
    return {
      count,
      warmupMs,
      warmupCpuMs,
      rss: (after.rss - base.rss) / count,
      heapUsed: (after.heapUsed - base.heapUsed) / count,
      external: (after.external - base.external) / count,
      baseline: { rss: base.rss, heapUsed: base.heapUsed },
    };
  },

  async 'handoff.pooled'({ count, batch }) {
    control ??= await Control.open();
    // The floor beside the pool, interleaved in this process: raw pairs of the kind and a control connection of their own.
    const floorLink = await adapter.openRaw();
    const floorControl = await Control.open();
    try {
      return await pooledLatency(pools!, observed!, control, count, batch, idle!.count, { link: floorLink, control: floorControl });
    } finally {
      await floorControl.close();
      await floorLink.close();
    }
  },

  async 'handoff.raw'({ count }) {
    control ??= await Control.open();
    return rawLatency(link!, control, count);
  },

  async 'refilling.open'({ pool }) {
    ratePool = pool;
    control = await Control.open();
    if (mode === 'pooled') {
      // The pool as a service runs it: refill on demand, background rounds every second.
      pools = await openPools(adapter, { client: { minCap: pool, maxCap: pool, minIvl: 1000, maxIvl: 1000 } });
      engine = new PooledHandOff(pools, control);
      await pools.full(pool, 120_000);
      return { label: `pooled ${adapter.name}` };
    }
    link = await adapter.openRaw();
    engine = new PreopenedHandOff(link, control);
    return { label: link.label };
  },

  async 'refilling.rate'() {
    // Take every idle stream at once (each is replaced on demand), time until the pool is full again.
    await pools!.full(ratePool, 120_000);
    const taken: Array<Promise<void>> = [];
    const start = now();
    for (let i = 0; i < ratePool; i++) {
      const [id, server] = await pools!.server.incomingGet(10_000);
      finish(server);
      taken.push(pools!.client.outgoingGet(id, 10_000).then(finish));
    }
    await Promise.all(taken);
    await pools!.full(ratePool, 120_000);
    return { perSecond: ratePool / ((now() - start) / 1000) };
  },

  async 'refilling.go'({ perSecond, count }) {
    if (mode === 'pooled') await pools!.full(ratePool, 120_000);
    else await (engine as PreopenedHandOff).open(count);
    return openLoop(engine!, perSecond, count, mode === 'pooled' ? new RefillRecorder() : undefined);
  },

  async 'openloop.go'({ perSecond, count }) {
    if (mode === 'pooled') await pools!.full(ratePool, 120_000);
    return openLoop(engine!, perSecond, count);
  },

  async 'tunnel.far.open'(ports) {
    far = new TunnelFar(adapter);
    await far.start(ports);
    return far.ports;
  },

  async 'tunnel.far.debug'() {
    return far?.poolStats() ?? '';
  },

  async 'tunnel.far.prepare'({ count }) {
    await far!.prepare(count);
    return null;
  },

  async 'tunnel.far.stamps'() {
    return far!.takeStamps();
  },

  async 'tunnel.far.take'({ id, bytes }) {
    await far!.takeStream(id, bytes);
    return null;
  },

  async close() {
    await far?.close();
    far = undefined;
    for (const { client, server } of pairs) {
      client.destroy();
      server.destroy();
    }
    pairs = [];
    await control?.close();
    await link?.close();
    await pools?.close();
    control = undefined;
    link = undefined;
    pools = undefined;
    return null;
  },
};

// The bench prints each distinct warning once: pass them up instead of printing them here.
process.removeAllListeners('warning');
process.on('warning', (warning) => process.send?.({ warning: { name: warning.name, message: warning.message } }));

process.on('message', (message: { seq: number; cmd: keyof SideCommands; args: never }) => {
  const handler = handlers[message.cmd] as (args: unknown) => Promise<unknown>;
  handler(message.args).then(
    (result) => process.send?.({ seq: message.seq, ok: true, result: result ?? null } satisfies SideReply),
    (error: unknown) =>
      process.send?.({ seq: message.seq, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies SideReply),
  );
});
