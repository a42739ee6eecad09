import type { Adapter } from './adapters.js';
import type { ScenarioName } from './report-types.js';

/** Sizes of one bench run; `--quick` scales them down. */
export interface Sizes {
  readonly quick: boolean;
  /** Runs of every measurement (min / median / max over them). */
  readonly runs: number;
  /** Bytes one stream moves in the single-stream throughput runs (both ways: half each way). */
  readonly bytes: number;
  /** Streams at once in the multi-stream throughput run. */
  readonly streams: number;
  /** Bytes the multi-stream run moves in all, split between its streams. */
  readonly multiBytes: number;
  /** Sequential hand-offs per run (latency). */
  readonly handoffs: number;
  /** Raw dial-on-demand round trips per run (the latency reference). */
  readonly rawHandoffs: number;
  /** Rendezvous samples per run (at most: see `rendezvousSeconds`). */
  readonly rendezvous: number;
  /** A rendezvous run stops after this many seconds once it has 300 samples (a TLS dial per sample is slow). */
  readonly rendezvousSeconds: number;
  /** Streams opened for the warm-up measurement, then held idle for the memory measurement (the same ones). */
  readonly idle: number;
  /** Measured seconds of each hand-off-rate run (after a quarter as much unmeasured). */
  readonly rateSeconds: number;
  readonly rateConcurrency: number;
  readonly ratePool: number;
  /**
   * Full runs: fresh side processes for every throughput run, and one
   * warm-up/memory run at a time. Quick runs save the process start-ups:
   * one pair of throughput processes for all runs, all warm-up/memory
   * processes at once.
   */
  readonly isolateRuns: boolean;
}

/**
 * The sizes (1 GiB per single-stream run, ≥ 2000 hand-offs per run,
 * 1000 streams for warm-up and memory, c=64 with a pool of 256, 3 runs),
 * trimmed where it leaves room so the default run stays under 3
 * minutes on 2 cores with all five transports: both ways moves the same
 * 1 GiB in all (512 MiB each way), 16 streams move 128 MiB in all (8 MiB
 * each), rendezvous stops at 1000 samples or after 0.5 s once it has 300,
 * the rate is measured over 0.5 s (raw and pooled at the same time).
 */
export const FULL: Sizes = {
  quick: false,
  runs: 3,
  bytes: 1024 * 1024 * 1024,
  streams: 16,
  multiBytes: 128 * 1024 * 1024,
  handoffs: 2000,
  rawHandoffs: 100,
  rendezvous: 1000,
  rendezvousSeconds: 0.5,
  idle: 1000,
  rateSeconds: 0.5,
  rateConcurrency: 64,
  ratePool: 256,
  isolateRuns: true,
};

/** A smoke run (CI): every code path, sizes scaled down, under 30 s on 2 cores. */
export const QUICK: Sizes = {
  quick: true,
  runs: 3,
  bytes: 32 * 1024 * 1024,
  streams: 16,
  multiBytes: 8 * 1024 * 1024,
  handoffs: 100,
  rawHandoffs: 20,
  rendezvous: 100,
  rendezvousSeconds: 1,
  idle: 64,
  rateSeconds: 0.12,
  rateConcurrency: 16,
  ratePool: 64,
  isolateRuns: false,
};

/** What a scenario gets: the transport, the sizes, and a way to say what it is doing. */
export interface ScenarioContext {
  readonly adapter: Adapter;
  readonly sizes: Sizes;
  /** Every scenario of this bench run (some share one measurement: see scenarios/idle.ts). */
  readonly scenarios: readonly ScenarioName[];
  progress(step: string): void;
}
