import { PoolAbortedError, PoolTimeoutError, ProxyHeaderError, RouteLimitError, TargetConnectError } from '../core/errors.js';
import type { Forwarding } from './forward.js';

/** Which route (and which client of the tunnel server, when known) a connection belongs to. */
export interface ConnectionKey {
  readonly route: string;
  readonly client?: string;
}

/**
 * Open latency (milliseconds) from a bounded histogram: each percentile is
 * the upper bound of the bucket it falls in (`max` beyond the last bound).
 */
export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** The figures of one route, one client, or the whole tunnel. */
export interface TunnelCounters {
  /** Connections being forwarded now. */
  readonly open: number;
  /** Connections forwarded since the start (open or closed). */
  readonly total: number;
  /** Bytes from the public side towards the target (the `a` to `b` direction), closed connections and open ones so far. */
  readonly bytesIn: number;
  /** Bytes from the target back to the public side. */
  readonly bytesOut: number;
  /** Failures by reason (see `failureReason`). */
  readonly failures: Readonly<Record<string, number>>;
  readonly openLatency: LatencySummary;
}

export interface TunnelStatsSnapshot {
  readonly total: TunnelCounters;
  readonly routes: Readonly<Record<string, TunnelCounters>>;
  readonly clients: Readonly<Record<string, TunnelCounters>>;
}

/** Upper bounds of the open-latency buckets, in milliseconds. */
export const LATENCY_BOUNDS_MS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];

/**
 * The stable name of a failure for `failures`: `'target-refused'`,
 * `'target-timeout'`, `'target-unreachable'`, `'target-dns'`,
 * `'target-aborted'`, `'target-failed'` (`TargetConnectError`), `'limit'`
 * (`RouteLimitError`), `'proxy-header'`, `'idle-timeout'`, `'aborted'`, and
 * `'cut'` for any other error (a reset, a side that died).
 */
export function failureReason(error: unknown): string {
  if (error instanceof TargetConnectError) return `target-${error.reason}`;
  if (error instanceof RouteLimitError) return 'limit';
  if (error instanceof ProxyHeaderError) return 'proxy-header';
  if (error instanceof PoolTimeoutError) return 'idle-timeout';
  if (error instanceof PoolAbortedError) return 'aborted';
  return 'cut';
}

class Bucket {
  open = 0;
  total = 0;
  closedIn = 0;
  closedOut = 0;
  readonly live = new Set<Forwarding>();
  readonly failures = new Map<string, number>();
  readonly latency = new Array<number>(LATENCY_BOUNDS_MS.length + 1).fill(0);
  latencyCount = 0;
  latencySum = 0;
  latencyMax = 0;

  fail(reason: string): void {
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1);
  }

  observe(ms: number): void {
    let i = 0;
    while (i < LATENCY_BOUNDS_MS.length && ms > LATENCY_BOUNDS_MS[i]!) i++;
    this.latency[i]!++;
    this.latencyCount++;
    this.latencySum += ms;
    if (ms > this.latencyMax) this.latencyMax = ms;
  }

  snapshot(): TunnelCounters {
    let bytesIn = this.closedIn;
    let bytesOut = this.closedOut;
    for (const forwarding of this.live) {
      bytesIn += forwarding.aToB;
      bytesOut += forwarding.bToA;
    }
    return {
      open: this.open,
      total: this.total,
      bytesIn,
      bytesOut,
      failures: Object.fromEntries(this.failures),
      openLatency: {
        count: this.latencyCount,
        mean: this.latencyCount === 0 ? 0 : this.latencySum / this.latencyCount,
        p50: this.percentile(0.5),
        p90: this.percentile(0.9),
        p99: this.percentile(0.99),
        max: this.latencyMax,
      },
    };
  }

  private percentile(q: number): number {
    if (this.latencyCount === 0) return 0;
    const rank = Math.ceil(q * this.latencyCount);
    let seen = 0;
    for (let i = 0; i < this.latency.length; i++) {
      seen += this.latency[i]!;
      if (seen >= rank) return Math.min(LATENCY_BOUNDS_MS[i] ?? this.latencyMax, this.latencyMax);
    }
    return this.latencyMax;
  }
}

/**
 * Per-route and per-client figures of a tunnel. Bytes cost nothing per
 * chunk here: an open connection's bytes are read from its `Forwarding`
 * counters when a snapshot is taken, and added to the closed totals when
 * it ends. Memory is bounded by the routes, clients and open connections.
 */
export class TunnelStats {
  private readonly all = new Bucket();
  private readonly routes = new Map<string, Bucket>();
  private readonly clients = new Map<string, Bucket>();

  /**
   * Follows a forwarded connection from now until its `done`: counted open
   * and in the total now, its bytes moving in every snapshot while it runs,
   * a failure by reason if it ended with an error. `openLatencyMs`: how
   * long it took to open (public connect to forwarding), for the histogram.
   */
  track(key: ConnectionKey, forwarding: Forwarding, openLatencyMs?: number): void {
    const buckets = this.bucketsOf(key);
    for (const bucket of buckets) {
      bucket.open++;
      bucket.total++;
      bucket.live.add(forwarding);
      if (openLatencyMs !== undefined) bucket.observe(openLatencyMs);
    }
    void forwarding.done.then((result) => {
      const reason = result.error === undefined ? undefined : failureReason(result.error);
      for (const bucket of buckets) {
        bucket.open--;
        bucket.live.delete(forwarding);
        bucket.closedIn += result.aToB.bytes;
        bucket.closedOut += result.bToA.bytes;
        if (reason !== undefined) bucket.fail(reason);
      }
    });
  }

  /** Counts a connection that failed before it was forwarded (a refused target, the route's limit). */
  failed(key: ConnectionKey, error: unknown): void {
    const reason = failureReason(error);
    for (const bucket of this.bucketsOf(key)) bucket.fail(reason);
  }

  snapshot(): TunnelStatsSnapshot {
    const of = (map: Map<string, Bucket>): Record<string, TunnelCounters> => Object.fromEntries([...map].map(([name, bucket]) => [name, bucket.snapshot()]));
    return { total: this.all.snapshot(), routes: of(this.routes), clients: of(this.clients) };
  }

  private bucketsOf(key: ConnectionKey): Bucket[] {
    const buckets = [this.all, bucketIn(this.routes, key.route)];
    if (key.client !== undefined) buckets.push(bucketIn(this.clients, key.client));
    return buckets;
  }
}

function bucketIn(map: Map<string, Bucket>, name: string): Bucket {
  let bucket = map.get(name);
  if (!bucket) map.set(name, (bucket = new Bucket()));
  return bucket;
}
