/**
 * Issue 18: the bench's scenarios run in the test suite, so they cannot rot
 * between two full runs. The built bench (`npm test` builds dist/ first) runs
 * as a child process in its quick sizes with one run per measurement: every
 * scenario on plain tcp, and the handshake scenario (TLS kinds only) on tls
 * and wss. It checks what the harness produces, never how fast anything is:
 * every scenario gives its rows, every figure is a number, the rows that are
 * read against the floor carry one, and resumption really resumed.
 */
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const script = resolve(root, 'dist/bench/run.js');
const dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Summary {
  n: number;
  min: number;
  median: number;
  max: number;
}
interface Row {
  transport: string;
  scenario: string;
  metric: string;
  raw?: Summary;
  pooled?: Summary;
  floor?: Summary;
  floorRatio?: Summary;
  note?: string;
}
interface Results {
  failures: Array<{ transport: string; scenario: string; error: string }>;
  scenarios: string[];
  rows: Row[];
}

/** Runs the bench with `args` plus quick sizes, one run, no result files; its JSON. */
function bench(name: string, args: string[]): Promise<Results> {
  const out = join(dir, `${name}.json`);
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [script, '--quick', '--runs', '1', '--no-write', '--json', out, ...args], { cwd: root, timeout: 240_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`the bench failed: ${String(error)}\n${stdout}\n${stderr}`));
      else resolvePromise(JSON.parse(readFileSync(out, 'utf8')) as Results);
    });
  });
}

/** Every summary of the row is a finite number over one run. */
function figures(row: Row): Array<[string, number]> {
  const named: Array<[string, Summary | undefined]> = [
    ['raw', row.raw],
    ['pooled', row.pooled],
    ['floor', row.floor],
    ['floorRatio', row.floorRatio],
  ];
  return named.filter((entry): entry is [string, Summary] => entry[1] !== undefined).map(([name, summary]) => [`${row.metric} ${name}`, summary.median]);
}

describe('bench smoke run (quick sizes, one run)', () => {
  it('the bench is built', () => {
    expect(existsSync(script)).toBe(true);
  });

  it('every scenario runs on tcp and gives finite figures; hand-off rows carry their floor', async () => {
    const results = await bench('tcp', ['--transport', 'tcp']);
    expect(results.failures).toEqual([]);
    const scenariosWithRows = new Set(results.rows.map((row) => row.scenario));
    // The handshake scenario measures TLS handshakes: plain tcp has no row.
    expect([...scenariosWithRows].sort()).toEqual(results.scenarios.filter((name) => name !== 'handshake').sort());

    const notFinite = results.rows.flatMap(figures).filter(([, value]) => !Number.isFinite(value));
    expect(notFinite).toEqual([]);

    const byMetric = new Map(results.rows.map((row) => [row.metric, row]));
    for (const metric of [
      'hand-off p50',
      'hand-off p99',
      'hand-off p99 while refilling at 25 %',
      'hand-off p99 while refilling at 50 %',
      'hand-off p99 while refilling at 90 %',
      'tunnel open latency p99',
    ]) {
      expect({ metric, floor: byMetric.get(metric)?.floor?.n }).toEqual({ metric, floor: 1 });
    }
    for (const metric of ['open-loop p99 at 90 % of dialing', 'hand-off rate c=16', 'tunnel open latency p50 over a 5 ms link, earlyData on/off']) {
      expect({ metric, raw: byMetric.get(metric)?.raw?.n, pooled: byMetric.get(metric)?.pooled?.n }).toEqual({ metric, raw: 1, pooled: 1 });
    }
  }, 300_000);

  it('the handshake scenario on tls and wss: with tlsResume on every measured dial resumed, with it off none', async () => {
    const results = await bench('handshake', ['--transport', 'tls,wss', '--scenario', 'handshake']);
    expect(results.failures).toEqual([]);
    const rows = results.rows.filter((row) => row.scenario === 'handshake');
    expect(rows.map((row) => row.transport).sort()).toEqual(['tls', 'wss']);
    for (const row of rows) {
      const counts = /off: (\d+) of (\d+) resumed, on: (\d+) of (\d+) resumed/.exec(row.note ?? '');
      expect(counts).not.toBeNull();
      const [, offResumed, offDials, onResumed, onDials] = counts!.map(Number);
      expect({ transport: row.transport, offResumed, onResumed }).toEqual({ transport: row.transport, offResumed: 0, onResumed: onDials });
      expect(offDials).toBeGreaterThan(0);
      expect(figures(row).filter(([, value]) => !Number.isFinite(value) || value <= 0)).toEqual([]);
    }
  }, 120_000);
});
