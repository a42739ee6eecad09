import type { Adapter } from './adapters.js';

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
  /** Rendezvous samples per run. */
  readonly rendezvous: number;
  /** Pool size for the warm-up measurement. */
  readonly warmup: number;
  /** Idle streams for the memory measurement. */
  readonly idle: number;
  /** Measured seconds of each hand-off-rate run (after a quarter as much unmeasured). */
  readonly rateSeconds: number;
  readonly rateConcurrency: number;
  readonly ratePool: number;
}

/**
 * The sizes, trimmed where it leaves room so the default run stays
 * near 3 minutes on 2 cores with all five transports: both ways moves the
 * same 1 GiB in all (512 MiB each way), 16 streams move 256 MiB in all,
 * rendezvous takes 1000 samples per run, the rate runs 1 s per side.
 */
export const FULL: Sizes = {
  quick: false,
  runs: 3,
  bytes: 1024 * 1024 * 1024,
  streams: 16,
  multiBytes: 256 * 1024 * 1024,
  handoffs: 2000,
  rawHandoffs: 100,
  rendezvous: 1000,
  warmup: 1000,
  idle: 1000,
  rateSeconds: 1,
  rateConcurrency: 64,
  ratePool: 256,
};

/** A smoke run (CI): every code path, sizes scaled down, under 30 s on 2 cores. */
export const QUICK: Sizes = {
  quick: true,
  runs: 3,
  bytes: 64 * 1024 * 1024,
  streams: 16,
  multiBytes: 16 * 1024 * 1024,
  handoffs: 100,
  rawHandoffs: 20,
  rendezvous: 100,
  warmup: 64,
  idle: 64,
  rateSeconds: 0.12,
  rateConcurrency: 16,
  ratePool: 64,
};

/** What a scenario gets: the transport, the sizes, and a way to say what it is doing. */
export interface ScenarioContext {
  readonly adapter: Adapter;
  readonly sizes: Sizes;
  progress(step: string): void;
}
