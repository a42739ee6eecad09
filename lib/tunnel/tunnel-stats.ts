import { PoolAbortedError, PoolTimeoutError, ProxyHeaderError, RouteLimitError, TargetConnectError } from '../core/errors.js';
import { performance } from 'node:perf_hooks';
import { StreamCutError } from '../core/errors.js';
import { channelOf, CHANNELS, type TunnelConnectionOpenMessage } from '../diagnostics/channels.js';
import type { FailReason } from './control/wire.js';
import type { Forwarding } from './forward.js';

/** Which route (and which client of the tunnel server, when known) a connection belongs to. */
export interface ConnectionKey {
  readonly route: string;
  readonly client?: string;
  /** The pooled stream's ID, for the diagnostics events (never a stats key). */
  readonly id?: string;
}

/** Which tunnel end the figures are of, for the diagnostics events. */
export type TunnelEnd = () => { readonly pool: string; readonly role: 'server' | 'client' };

const connectionOpen = channelOf(CHANNELS.tunnelConnectionOpen);
const connectionClose = channelOf(CHANNELS.tunnelConnectionClose);

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
  /** Sum of every observation, for a Prometheus histogram's `_sum`. */
  readonly sum: number;
  /** Observations per bucket of `LATENCY_BOUNDS_MS` (not cumulative), and one more for beyond the last bound. */
  readonly buckets: readonly number[];
}

/** The figures of one route, one client, or the whole tunnel. */
export interface TunnelCounters {
  /** Connections being forwarded now. */
  readonly open: number;
  /** Connections forwarded since the start (open or closed). */
  readonly total: number;
  /** Bytes from the route's public side towards its target (on either end of the tunnel), closed connections and open ones so far. */
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
 * (`RouteLimitError`), `'proxy-header'`, `'idle-timeout'`, `'aborted'`; for
 * a connection the other side of the tunnel could not open (its FAIL, see
 * `peerFailure`) the FAIL's reason (`'target-refused'`, `'no-stream'`...,
 * `'peer-failed'` for `other`); and `'cut'` for any other error (a reset, a
 * side that died).
 */
export function failureReason(error: unknown): string {
  const peer = (error as { [PEER_FAIL]?: FailReason } | undefined)?.[PEER_FAIL];
  if (peer !== undefined) return peer === 'other' ? 'peer-failed' : peer;
  if (error instanceof TargetConnectError) return `target-${error.reason}`;
  if (error instanceof RouteLimitError) return 'limit';
  if (error instanceof ProxyHeaderError) return 'proxy-header';
  if (error instanceof PoolTimeoutError) return 'idle-timeout';
  if (error instanceof PoolAbortedError) return 'aborted';
  return 'cut';
}

const PEER_FAIL = Symbol('nestjs-tunnel-pool.peerFail');

/**
 * The cut of a connection the other side of the tunnel could not open (it
 * answered FAIL): a reset towards the public side, counted in the stats by
 * the FAIL's own reason.
 */
export function peerFailure(reason: FailReason, message: string): StreamCutError {
  const error = new StreamCutError('reset', message);
  Object.defineProperty(error, PEER_FAIL, { value: reason });
  return error;
}

/** Whether `error` is the cut of a connection the other end answered with FAIL (see `peerFailure`). */
export function isPeerFailure(error: unknown): boolean {
  return peerFailureReason(error) !== undefined;
}

/** The FAIL reason behind a `peerFailure`, undefined for any other error. */
export function peerFailureReason(error: unknown): FailReason | undefined {
  return (error as { [PEER_FAIL]?: FailReason } | undefined)?.[PEER_FAIL];
}

class Bucket {
  open = 0;
  total = 0;
  closedIn = 0;
  closedOut = 0;
  /** Open connections, each with whether its public side is the forwarding's `b` (then `bToA` is the inbound direction). */
  readonly live = new Map<Forwarding, boolean>();
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
    for (const [forwarding, publicIsB] of this.live) {
      bytesIn += publicIsB ? forwarding.bToA : forwarding.aToB;
      bytesOut += publicIsB ? forwarding.aToB : forwarding.bToA;
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
        sum: this.latencySum,
        buckets: [...this.latency],
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
  /** Connections opened per route while someone listened to the tunnel channels (the events' `connection`). */
  private readonly numbers = new Map<string, number>();

  /** `end` names the tunnel end in the `tunnel:connection:*` diagnostics events; without it none are published. */
  constructor(private readonly end?: TunnelEnd) {}

  /**
   * Follows a forwarded connection from now until its `done`: counted open
   * and in the total now, its bytes moving in every snapshot while it runs,
   * a failure by reason if it ended with an error. `openLatencyMs`: how
   * long it took to open (public connect to forwarding), for the histogram.
   * `publicSide`: which end of the forwarding the route's public peer is
   * behind: 'a' (the public socket, on the end that took the connection) or
   * 'b' (the pooled stream, on the end that connects the target), so that
   * `bytesIn` means "from the public side" on both ends. With someone subscribed, publishes `tunnel:connection:open` now and
   * `tunnel:connection:close` at its end.
   */
  track(key: ConnectionKey, forwarding: Forwarding, openLatencyMs?: number, publicSide: 'a' | 'b' = 'a'): void {
    if (this.end && (connectionOpen.hasSubscribers || connectionClose.hasSubscribers)) this.publish(key, forwarding, openLatencyMs, publicSide);
    const buckets = this.bucketsOf(key);
    for (const bucket of buckets) {
      bucket.open++;
      bucket.total++;
      bucket.live.set(forwarding, publicSide === 'b');
      if (openLatencyMs !== undefined) bucket.observe(openLatencyMs);
    }
    void forwarding.done.then((result) => {
      const [inbound, outbound] = publicSide === 'b' ? [result.bToA, result.aToB] : [result.aToB, result.bToA];
      const reason = result.error === undefined ? undefined : failureReason(result.error);
      for (const bucket of buckets) {
        bucket.open--;
        bucket.live.delete(forwarding);
        bucket.closedIn += inbound.bytes;
        bucket.closedOut += outbound.bytes;
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

  private publish(key: ConnectionKey, forwarding: Forwarding, openLatencyMs: number | undefined, publicSide: 'a' | 'b'): void {
    const { pool, role } = this.end!();
    const connection = (this.numbers.get(key.route) ?? 0) + 1;
    this.numbers.set(key.route, connection);
    const open: TunnelConnectionOpenMessage = { route: key.route, pool, role, id: key.id ?? '', connection };
    if (key.client !== undefined) open.client = key.client;
    if (openLatencyMs !== undefined) open.openLatencyMs = openLatencyMs;
    const started = performance.now();
    if (connectionOpen.hasSubscribers) connectionOpen.publish(open);
    void forwarding.done.then((result) => {
      if (!connectionClose.hasSubscribers) return;
      const [inbound, outbound] = publicSide === 'b' ? [result.bToA, result.aToB] : [result.aToB, result.bToA];
      const close = { ...open, bytesIn: inbound.bytes, bytesOut: outbound.bytes, durationMs: performance.now() - started };
      connectionClose.publish(result.error === undefined ? close : { ...close, error: result.error });
    });
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
