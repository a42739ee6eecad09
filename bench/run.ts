/**
 * npm run bench [-- --quick] [-- --transport tcp,tls,http2,ws,wss] [-- --scenario throughput,handoff,...]
 *
 * Measures the pools against the raw Node transport of the same kind in
 * the same run and prints pooled / raw ratios (see bench/README.md).
 * Exits 0 when every measurement ran (targets are reported, never
 * asserted), 1 when the harness itself failed, 2 on a bad command line.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ADAPTER_NAMES, ADAPTERS, isRegistered, type Adapter, type AdapterName } from './adapters.js';
import { dedupeWarnings } from './util.js';
import { FULL, QUICK, type ScenarioContext, type Sizes } from './context.js';
import { json, machine, markdown, svg, textTable, type Failure, type Results, type Skipped, type Timing } from './report.js';
import { SCENARIO_NAMES, type Row, type ScenarioName } from './report-types.js';
import { handoff } from './scenarios/handoff.js';
import { memory } from './scenarios/memory.js';
import { rate } from './scenarios/rate.js';
import { refilling } from './scenarios/refilling.js';
import { openloop } from './scenarios/openloop.js';
import { rendezvous } from './scenarios/rendezvous.js';
import { throughput } from './scenarios/throughput.js';
import { warmup } from './scenarios/warmup.js';
import { metricsCost } from './scenarios/metrics-cost.js';
import { tunnel } from './scenarios/tunnel.js';
import { handshake } from './scenarios/handshake.js';
import { wsMasking } from '../lib/transports/ws/masking.js';

const SCENARIOS: Record<ScenarioName, (context: ScenarioContext) => Promise<Row[]>> = {
  throughput,
  handoff,
  rendezvous,
  warmup,
  memory,
  rate,
  refilling,
  openloop,
  metrics: metricsCost,
  tunnel,
  handshake,
};

const USAGE = `Usage: npm run bench [-- options]   (or: node dist/bench/run.js [options] after npm run build)

  --quick                 sizes scaled down (32 MiB instead of 1 GiB, fewer hand-offs...): a smoke run under 30 s
  --transport <list>      comma-separated: ${ADAPTER_NAMES.join(',')} (default: all registered)
  --scenario <list>       comma-separated: ${SCENARIO_NAMES.join(',')} (default: all)
  --runs <n>              runs per measurement (default 3)
  --size <MiB>            bytes per single-stream throughput run, in MiB (default 1024, quick 32)
  --out <name>            result files bench/results/<name>.{json,md,svg} (default: latest, quick with --quick)
  --json <file>           also write the results as JSON to <file> (any path; the test suite's smoke run reads it)
  --no-write              print the table only
  -h, --help`;

class UsageError extends Error {}

interface Options {
  sizes: Sizes;
  adapters: AdapterName[];
  scenarios: ScenarioName[];
  out: string | null;
  json: string | null;
}

function list<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (value === undefined || value === 'all') return [...allowed];
  const names = value.split(',').map((name) => name.trim()).filter(Boolean);
  for (const name of names) if (!allowed.includes(name as T)) throw new UsageError(`unknown ${what} ${JSON.stringify(name)}: expected ${allowed.join(', ')}`);
  return allowed.filter((name) => names.includes(name));
}

function positive(value: string | undefined, what: string): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!Number.isFinite(number) || number <= 0) throw new UsageError(`${what} must be a positive number, got ${JSON.stringify(value)}`);
  return number;
}

function parse(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      transport: { type: 'string' },
      transports: { type: 'string' },
      scenario: { type: 'string' },
      scenarios: { type: 'string' },
      runs: { type: 'string' },
      size: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) return null;
  const base = values.quick ? QUICK : FULL;
  const runs = positive(values.runs, '--runs');
  const size = positive(values.size, '--size');
  const sizes: Sizes = {
    ...base,
    ...(runs !== undefined ? { runs: Math.round(runs) } : {}),
    ...(size !== undefined ? { bytes: Math.round(size * 1024 * 1024) } : {}),
  };
  return {
    sizes,
    adapters: list(values.transport ?? values.transports, ADAPTER_NAMES, 'transport'),
    scenarios: list(values.scenario ?? values.scenarios, SCENARIO_NAMES, 'scenario'),
    out: values['no-write'] ? null : (values.out ?? (values.quick ? 'quick' : 'latest')),
    json: values.json ?? null,
  };
}

/** One progress line on stderr (rewritten in place on a terminal, one line per step otherwise). */
class Progress {
  private readonly started = Date.now();
  private readonly tty = process.stderr.isTTY === true;
  private shown = false;

  step(text: string): void {
    const line = `[${String(Math.round((Date.now() - this.started) / 1000)).padStart(4)} s] ${text}`;
    if (this.tty) {
      process.stderr.write(`\r\x1b[2K${line.slice(0, (process.stderr.columns || 120) - 1)}`);
      this.shown = true;
    } else {
      process.stderr.write(`${line}\n`);
    }
  }

  say(text: string): void {
    this.clear();
    process.stderr.write(`${text}\n`);
  }

  clear(): void {
    if (this.tty && this.shown) process.stderr.write('\r\x1b[2K');
    this.shown = false;
  }

  get seconds(): number {
    return (Date.now() - this.started) / 1000;
  }
}

async function main(): Promise<number> {
  let options: Options | null;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (!options) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const { sizes } = options;
  const progress = new Progress();
  // A hang in the harness must not hold CI forever: past this, report what is open and fail.
  const watchdog = setTimeout(
    () => {
      progress.say(`bench: still running after ${Math.round(progress.seconds)} s; open resources: ${process.getActiveResourcesInfo().join(', ')}`);
      process.exit(1);
    },
    (sizes.quick ? 5 : 30) * 60_000,
  );
  watchdog.unref();

  const host = machine();
  const skipped: Skipped[] = [];
  const failures: Failure[] = [];
  const rows: Row[] = [];
  const adapters: Adapter[] = [];
  for (const name of options.adapters) {
    const adapter = ADAPTERS[name];
    if (isRegistered(adapter)) adapters.push(adapter);
    else {
      const reason = `transport '${adapter.transport}' is not registered in lib/transports/index.ts (BUILT_IN_TRANSPORTS) in this build`;
      skipped.push({ transport: name, reason });
      progress.say(`bench: skipping ${name}: ${reason}`);
    }
  }
  progress.say(
    `bench: ${sizes.quick ? 'QUICK mode, sizes scaled down' : 'full run'}; transports ${adapters.map((a) => a.name).join(', ') || '(none)'}; ` +
      `scenarios ${options.scenarios.join(', ')}; ${host.cores} cores, load average ${host.loadStart}`,
  );

  const timings: Timing[] = [];
  for (const adapter of adapters) {
    for (const scenario of options.scenarios) {
      const context: ScenarioContext = { adapter, sizes, scenarios: options.scenarios, progress: (step) => progress.step(`${adapter.name} · ${step}`) };
      const started = progress.seconds;
      try {
        rows.push(...(await SCENARIOS[scenario](context)));
        timings.push({ transport: adapter.name, scenario, seconds: Math.round((progress.seconds - started) * 10) / 10 });
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        failures.push({ transport: adapter.name, scenario, error: message });
        progress.say(`bench: ${adapter.name} ${scenario} FAILED: ${message}`);
      }
    }
  }
  progress.clear();

  const notes: string[] = [];
  if (adapters.some((a) => a.transport === 'ws')) notes.push(`ws/wss client masking: ${wsMasking()} (where it says javascript, masking caps ws c→s near 90 MiB/s)`);
  if (host.loadStart > host.cores * 0.5) notes.push(`The machine was busy at the start (load average ${host.loadStart} on ${host.cores} cores): absolute figures are noisy; ratios are paired per run.`);
  const results: Results = {
    version: 1,
    mode: sizes.quick ? 'quick' : 'full',
    machine: { ...host, loadEnd: Math.round(os.loadavg()[0]! * 100) / 100 },
    sizes,
    transports: adapters.map((a) => a.name),
    scenarios: options.scenarios,
    skipped,
    failures,
    notes,
    durationSeconds: progress.seconds,
    timings,
    rows,
  };
  process.stdout.write(`${textTable(results)}\n`);
  if (options.out) {
    const dir = fileURLToPath(new URL('../../bench/results/', import.meta.url));
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}${options.out}.json`, json(results));
    writeFileSync(`${dir}${options.out}.svg`, svg(results));
    writeFileSync(`${dir}${options.out}.md`, markdown(results, `${options.out}.svg`));
    process.stderr.write(`bench: wrote bench/results/${options.out}.{json,md,svg}\n`);
  }
  if (options.json) writeFileSync(options.json, json(results));
  process.stderr.write(`bench: seconds per measurement: ${timings.map((t) => `${t.transport}/${t.scenario} ${t.seconds}`).join(', ')}\n`);
  if (failures.length > 0) process.stderr.write(`bench: ${failures.length} measurement(s) failed to run (see above): exit 1\n`);
  return failures.length > 0 ? 1 : 0;
}

/**
 * Everything the bench opened is closed by now, so the process exits on its
 * own. If a handle leaked, say which and exit non-zero instead of hanging CI.
 */
function exitGuard(): void {
  const timer = setTimeout(() => {
    process.stderr.write(`bench: the process did not exit on its own; still open: ${process.getActiveResourcesInfo().join(', ')}\n`);
    process.exit(process.exitCode || 1);
  }, 15_000);
  timer.unref();
}

dedupeWarnings('bench');
main().then(
  (code) => {
    process.exitCode = code;
    exitGuard();
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
    exitGuard();
  },
);
