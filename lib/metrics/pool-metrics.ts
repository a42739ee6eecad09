import { register as defaultRegistry, type Registry } from 'prom-client';
import type { ClientPoolStats, PoolStats, ServerPoolStats } from '../core/stats.js';
import { EVENT_METRIC_NAMES, registerEventMetrics } from './event-metrics.js';
import { checkFree, checkPrefix, perScrape, registerScrapeMetrics, type Reading, type ScrapeDefinition } from './scrape-metrics.js';

/** The prefix of every metric name, unless `options.prefix` sets another. */
export const METRIC_PREFIX = 'tunnel_pool_';

/** Anything with a core stats snapshot: a `ClientPool`, a `ServerPool`, or a stand-in. */
export interface StatsSource {
  readonly stats: PoolStats;
}

/** The pools to read at each scrape: a fixed list, or a function called at every scrape. */
export type PoolsSource = Iterable<StatsSource> | (() => Iterable<StatsSource>);

export interface PoolMetricsOptions {
  /** Prepended to every metric name (default `tunnel_pool_`). Change it only to avoid a clash. */
  prefix?: string;
}

/** Undoes `registerPoolMetrics`: removes its metrics from the registry. Idempotent. */
export type MetricsDisposer = () => void;

const LABELS = ['pool', 'role', 'transport'] as const;

type Definition = ScrapeDefinition<PoolStats>;

const client = (stats: PoolStats): stats is ClientPoolStats => stats.role === 'client';
const server = (stats: PoolStats): stats is ServerPoolStats => stats.role === 'server';
const one = (value: number): Array<[number]> => [[value]];
const byKey = (counts: Record<string, number>): Array<[number, string]> => Object.entries(counts).map(([key, value]) => [value, key]);
const numeric = (stats: PoolStats, key: string): number | undefined => {
  const value = stats.transportStats[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
};
const seconds = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms / 1000);
const optional = (value: number | undefined): Array<[number]> => (value === undefined ? [] : [[value]]);

/**
 * Every metric, by name without the prefix. The names, labels and meanings
 * are part of the public contract (docs/OBSERVABILITY.md): dashboards rely on
 * them. Labels are bounded: pool name, role, transport kind, and for
 * `reason`/`code` the library's own finite sets. Never an ID or an address.
 */
export const POOL_METRICS: readonly Definition[] = [
  { name: 'up', kind: 'gauge', help: '1 when the pool is started and not closing, else 0.', read: (s) => one(s.ready ? 1 : 0) },
  { name: 'idle_streams', kind: 'gauge', help: 'Idle pooled streams ready to be taken.', read: (s) => one(s.active) },
  { name: 'in_use_streams', kind: 'gauge', help: 'Streams handed to the application and not closed yet.', read: (s) => one(s.inUse) },
  { name: 'capacity', kind: 'gauge', help: 'The number of idle streams the pool aims for.', read: (s) => one(s.capacity) },
  { name: 'waiting_gets', kind: 'gauge', help: 'Pending gets waiting for a stream.', read: (s) => one(s.waiting) },
  { name: 'oldest_idle_seconds', kind: 'gauge', help: 'Age of the oldest idle stream.', read: (s) => one(s.oldestIdleMs / 1000) },
  { name: 'dialing', kind: 'gauge', help: 'Client only: dials in flight.', read: (s) => (client(s) ? one(s.dialing) : []) },
  { name: 'failed_rounds', kind: 'gauge', help: 'Client only: consecutive creation rounds in which most dials failed.', read: (s) => (client(s) ? one(s.failedRounds) : []) },
  { name: 'handshaking', kind: 'gauge', help: 'Server only: connections admitted and still in their handshake.', read: (s) => (server(s) ? one(s.handshaking) : []) },
  { name: 'errors_total', kind: 'counter', help: 'Background errors the pool counted.', read: (s) => one(s.errorCount) },
  { name: 'dials_total', kind: 'counter', help: 'Client only: dials started.', read: (s) => (client(s) ? one(s.totals.dials) : []) },
  { name: 'streams_created_total', kind: 'counter', help: 'Client only: streams dialled and handshaken into the pool.', read: (s) => (client(s) ? one(s.totals.created) : []) },
  { name: 'creation_rounds_total', kind: 'counter', help: 'Client only: creation rounds run.', read: (s) => (client(s) ? one(s.totals.rounds) : []) },
  { name: 'streams_accepted_total', kind: 'counter', help: 'Server only: streams accepted into the pool.', read: (s) => (server(s) ? one(s.totals.accepted) : []) },
  { name: 'streams_taken_total', kind: 'counter', help: 'Streams handed to the application.', read: (s) => one(s.totals.taken) },
  { name: 'drops_total', kind: 'counter', extra: ['reason'], help: 'Idle streams that left without being taken, by reason.', read: (s) => byKey(s.drops) },
  { name: 'dial_failures_total', kind: 'counter', extra: ['code'], help: 'Client only: failed dials, by error code.', read: (s) => (client(s) ? byKey(s.failures) : []) },
  { name: 'refusals_total', kind: 'counter', extra: ['reason'], help: 'Server only: connections turned away, by reason.', read: (s) => (server(s) ? byKey(s.refusals) : []) },
  // Generic transport figures: present only for transports that report them (http2 today).
  { name: 'transport_sessions', kind: 'gauge', help: 'Multiplexing transports: sessions open.', read: (s) => optional(numeric(s, 'sessions')) },
  { name: 'transport_active_streams', kind: 'gauge', help: 'Multiplexing transports: streams open over those sessions.', read: (s) => optional(numeric(s, 'activeStreams')) },
  { name: 'transport_sessions_opened_total', kind: 'counter', help: 'Multiplexing transports: sessions opened.', read: (s) => optional(numeric(s, 'sessionsOpened')) },
  { name: 'transport_streams_opened_total', kind: 'counter', help: 'Multiplexing transports: streams opened.', read: (s) => optional(numeric(s, 'streamsOpened')) },
  {
    name: 'transport_streams_per_session',
    kind: 'gauge',
    help: 'Multiplexing transports: streams open per open session (0 with no session).',
    read: (s) => {
      const sessions = numeric(s, 'sessions');
      const streams = numeric(s, 'activeStreams');
      return sessions === undefined || streams === undefined ? [] : one(sessions > 0 ? streams / sessions : 0);
    },
  },
  { name: 'transport_ping_rtt_seconds', kind: 'gauge', help: 'Multiplexing transports: the last measured ping round trip.', read: (s) => optional(seconds(numeric(s, 'lastPingRttMs'))) },
];

/**
 * Registers the pool metrics in a prom-client registry (the default one when
 * `registry` is omitted or null). Nothing runs until the registry is scraped:
 * each scrape reads every pool's `stats` once and sets every metric from it,
 * so there is no cost per byte or per stream. Counters are the pools' own
 * running totals (a pool that restarts starts again from 0, which Prometheus
 * reads as a counter reset). Beside them, the histograms of `EVENT_METRICS`
 * (dial, handshake and hand-off durations, streams per http2 session) are
 * fed by the pools' diagnostics_channel events, of the pools listed only:
 * the channels are subscribed from here to the disposer, and carry no
 * subscriber (so cost nothing) without a registration. Returns a disposer
 * that unsubscribes and removes the metrics.
 */
export function registerPoolMetrics(registry: Registry | null | undefined, pools: PoolsSource, options: PoolMetricsOptions = {}): MetricsDisposer {
  const target = registry ?? defaultRegistry;
  const prefix = options.prefix ?? METRIC_PREFIX;
  checkPrefix(prefix);
  checkFree(target, [...POOL_METRICS.map((d) => d.name), ...EVENT_METRIC_NAMES].map((name) => prefix + name), 'pool metrics');
  const list = typeof pools === 'function' ? pools : () => pools;

  // One read of every pool per scrape, shared by all metrics.
  const readings = perScrape((): Reading<PoolStats>[] => {
    const read: Reading<PoolStats>[] = [];
    for (const pool of list()) {
      const stats = pool.stats as PoolStats & { configured?: boolean };
      if (stats.configured === false) continue;
      read.push({ data: stats, labels: { pool: stats.name, role: stats.role, transport: stats.transport } });
    }
    return read;
  });

  const names = registerScrapeMetrics(target, prefix, LABELS, POOL_METRICS, [], readings);
  let disposeEvents: (() => void) | undefined;
  try {
    // Durations, fed by the pools' diagnostics_channel events while registered.
    disposeEvents = registerEventMetrics(target, prefix, () => [...list()].map((pool) => pool.stats));
  } catch (error) {
    for (const name of names) target.removeSingleMetric(name);
    throw error;
  }
  let disposed = false;
  return () => {
    if (disposed) return;
    disposed = true;
    disposeEvents?.();
    for (const name of names) target.removeSingleMetric(name);
  };
}
