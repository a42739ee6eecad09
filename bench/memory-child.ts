/**
 * The forked memory measurement (`--expose-gc`): one process holds BOTH
 * ends of `count` idle connections of one kind, pooled or raw, and reports
 * what they added to RSS and the JS heap over a GC'd baseline taken once
 * its servers listen and a few warm-up connections have come and gone.
 *
 *   node --expose-gc dist/bench/memory-child.js '{"adapter":"tls","mode":"pooled","count":1000}'
 */
import { ADAPTERS, openPools, type AdapterName } from './adapters.js';
import { runConcurrently, sleep, tick } from './util.js';

export interface MemoryRequest {
  adapter: AdapterName;
  mode: 'pooled' | 'raw';
  count: number;
}

export interface MemoryResult {
  count: number;
  /** Bytes added per idle stream (both ends), over the baseline. */
  rss: number;
  heapUsed: number;
  external: number;
  baseline: { rss: number; heapUsed: number };
}

const WARM = 8;

async function collect(): Promise<NodeJS.MemoryUsage> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('memory-child needs --expose-gc');
  for (let i = 0; i < 4; i++) {
    gc();
    await tick();
  }
  await sleep(50);
  gc();
  return process.memoryUsage();
}

async function measure(request: MemoryRequest): Promise<MemoryResult> {
  const adapter = ADAPTERS[request.adapter];
  const { count } = request;
  let base: NodeJS.MemoryUsage;
  let after: NodeJS.MemoryUsage;
  if (request.mode === 'pooled') {
    // Loads and warms the code paths, then is gone before the baseline.
    const warm = await openPools(adapter, { client: { minCap: WARM, maxCap: WARM, minIvl: 1000, maxIvl: 1000 } });
    await warm.full(WARM);
    await warm.close();
    const pools = await openPools(adapter, { client: { minCap: count, maxCap: count, minIvl: 1000, maxIvl: 1000 }, start: false });
    try {
      base = await collect();
      pools.client.start();
      await pools.full(count, 120_000);
      await sleep(100);
      after = await collect();
    } finally {
      await pools.close();
    }
  } else {
    const link = await adapter.openRaw();
    try {
      for (let i = 0; i < WARM; i++) {
        const { client, server } = await link.pair();
        client.destroy();
        server.destroy();
      }
      await sleep(50);
      link.drainQueue();
      base = await collect();
      await runConcurrently(count, 32, () => link.open());
      await sleep(100);
      after = await collect();
    } finally {
      await link.close();
    }
  }
  return {
    count,
    rss: (after.rss - base.rss) / count,
    heapUsed: (after.heapUsed - base.heapUsed) / count,
    external: (after.external - base.external) / count,
    baseline: { rss: base.rss, heapUsed: base.heapUsed },
  };
}

// The parent reports the pools' warnings once; a child only measures.
process.removeAllListeners('warning');
process.on('warning', () => undefined);
const request = JSON.parse(process.argv[2] ?? '{}') as MemoryRequest;
measure(request).then(
  (result) => {
    if (process.send) process.send({ ok: true, result }, () => process.disconnect());
    else console.log(JSON.stringify(result));
  },
  (error: unknown) => {
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    if (process.send) process.send({ ok: false, error: message }, () => process.disconnect());
    else console.error(message);
    process.exitCode = 1;
  },
);
