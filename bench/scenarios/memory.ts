import { fork } from 'node:child_process';
import type { ScenarioContext } from '../context.js';
import type { MemoryRequest, MemoryResult } from '../memory-child.js';
import { judge, type Row, type Target } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';

const CHILD = new URL('../memory-child.js', import.meta.url);
const TARGET: Target = { label: '≤ 1.25', value: 1.25, on: 'ratio', better: 'lower', inclusive: true };

/**
 * RSS and JS heap per idle stream with `idle` of them, pooled against raw
 * of the same kind: each side in its own forked child (`--expose-gc`),
 * both ends of every connection in that child, GC'd, baseline subtracted.
 */
export async function memory(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const rss = { raw: [] as number[], pooled: [] as number[] };
  const heap = { raw: [] as number[], pooled: [] as number[] };
  // All children at once: what a process holds does not depend on its neighbours
  // (each measures itself), and on 2 cores it overlaps their start-up and waits.
  context.progress(`memory ${sizes.idle} idle · ${sizes.runs} runs · raw and pooled (${2 * sizes.runs} child processes)`);
  const requests: MemoryRequest[] = [];
  for (let run = 0; run < sizes.runs; run++) {
    requests.push({ adapter: adapter.name, mode: 'raw', count: sizes.idle }, { adapter: adapter.name, mode: 'pooled', count: sizes.idle });
  }
  const results = await Promise.all(requests.map((request) => child(request)));
  results.forEach((result, i) => {
    const mode = requests[i]!.mode;
    rss[mode].push(result.rss / 1024);
    heap[mode].push(result.heapUsed / 1024);
  });
  const note =
    `${sizes.idle} idle streams, both ends in one forked child per side and run (all children side by side), GC'd, baseline subtracted; per stream = both ends` +
    (sizes.idle < 500 ? '; at this count RSS per stream is within page-size noise' : '');
  const row = (metric: string, values: { raw: number[]; pooled: number[] }): Row =>
    judge({
      transport: adapter.name,
      scenario: 'memory',
      metric,
      unit: 'KiB',
      raw: summarize(values.raw),
      pooled: summarize(values.pooled),
      ratio: summarize(pairedRatios(values.pooled, values.raw)),
      target: TARGET,
      note,
    });
  return [row('RSS per idle stream', rss), row('JS heap per idle stream', heap)];
}

function child(request: MemoryRequest): Promise<MemoryResult> {
  return new Promise((resolve, reject) => {
    const proc = fork(CHILD, [JSON.stringify(request)], { execArgv: ['--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const what = `the memory child (${request.adapter}, ${request.mode})`;
    let result: MemoryResult | undefined;
    let failure: Error | undefined;
    // A child that does not exit on its own is killed: it must never hold the bench open.
    let timer = setTimeout(() => {
      failure ??= new Error(`${what} did not finish within 120 s`);
      proc.kill('SIGKILL');
    }, 120_000);
    proc.on('message', (message: { ok: boolean; result?: MemoryResult; error?: string }) => {
      if (message.ok) result = message.result;
      else failure = new Error(`${what}: ${message.error}`);
      clearTimeout(timer);
      timer = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    });
    proc.on('error', (error) => {
      failure ??= error;
    });
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (result) resolve(result);
      else reject(failure ?? new Error(`${what} exited with ${signal ?? code} before reporting`));
    });
  });
}
