import { register as defaultRegistry, type Registry } from 'prom-client';
import type { PoolStats } from '../core/stats.js';
import { LATENCY_BOUNDS_MS, type TunnelCounters, type TunnelStatsSnapshot } from '../tunnel/tunnel-stats.js';
import { METRIC_PREFIX, type MetricsDisposer, type PoolMetricsOptions } from './pool-metrics.js';
import { checkFree, checkPrefix, perScrape, registerScrapeMetrics, type Reading, type Sample, type ScrapeDefinition, type ScrapeHistogramDefinition } from './scrape-metrics.js';

/**
 * What the tunnel metrics read of a tunnel end: a `TunnelServer` or a
 * `TunnelClient` fits as it is. `pool` names it (the pool's name, role and
 * transport are the labels); `stats` gives the per-route and per-client
 * figures; the control channel's state comes from `connected` and
 * `controlRtt` (a client) or `clients` and `controlRttOf` (a server).
 */
export interface TunnelStatsSource {
  readonly pool: { readonly stats: PoolStats };
  readonly stats: TunnelStatsSnapshot;
  /** A tunnel client: whether its control channel is up. */
  readonly connected?: boolean;
  /** A tunnel client: the control channel's last ping round trip (ms). */
  readonly controlRtt?: number | undefined;
  /** A tunnel server: the clients with a control channel up. */
  readonly clients?: readonly string[];
  /** A tunnel server: the last ping round trip (ms) of a client's control channel. */
  controlRttOf?(client: string): number | undefined;
}

/** The tunnels to read at each scrape: a fixed list, or a function called at every scrape. */
export type TunnelsSource = Iterable<TunnelStatsSource> | (() => Iterable<TunnelStatsSource>);

const LABELS = ['pool', 'role', 'transport'] as const;

interface TunnelReading {
  readonly stats: TunnelStatsSnapshot;
  /** The control channels: one without a client name on a tunnel client, one per client on a server. */
  readonly control: ReadonlyArray<{ client?: string; up: boolean; rttMs?: number }>;
}

const perRoute = (figure: (counters: TunnelCounters) => number) => (data: TunnelReading): Sample[] =>
  Object.entries(data.stats.routes).map(([route, counters]) => [figure(counters), route]);
const perClient = (figure: (counters: TunnelCounters) => number) => (data: TunnelReading): Sample[] =>
  Object.entries(data.stats.clients).map(([client, counters]) => [figure(counters), client]);

/**
 * Every scrape-time tunnel metric, by name without the prefix (public
 * names, docs/OBSERVABILITY.md). Labels: the pool's `pool`, `role`,
 * `transport`, plus `route` (a name the configuration gives), `client` (a
 * client's identity label on a tunnel server: a key id or a certificate
 * subject, bounded by the server's keys and certificates) and `reason`
 * (the library's finite set). Never an ID or an address.
 */
export const TUNNEL_METRICS: readonly ScrapeDefinition<TunnelReading>[] = [
  { name: 'tunnel_connections_open', kind: 'gauge', extra: ['route'], help: 'Tunnelled connections being forwarded now, per route.', read: perRoute((c) => c.open) },
  { name: 'tunnel_connections_total', kind: 'counter', extra: ['route'], help: 'Tunnelled connections forwarded since the start, per route.', read: perRoute((c) => c.total) },
  {
    name: 'tunnel_received_bytes_total',
    kind: 'counter',
    extra: ['route'],
    help: "Bytes from the route's public side into the tunnel, per route, open connections included (they move while a connection lasts).",
    read: perRoute((c) => c.bytesIn),
  },
  {
    name: 'tunnel_sent_bytes_total',
    kind: 'counter',
    extra: ['route'],
    help: "Bytes from the tunnel back to the route's public side, per route, open connections included.",
    read: perRoute((c) => c.bytesOut),
  },
  {
    name: 'tunnel_connection_failures_total',
    kind: 'counter',
    extra: ['route', 'reason'],
    help: 'Tunnelled connections that failed to open or ended in an error, per route and reason.',
    read: (data) => Object.entries(data.stats.routes).flatMap(([route, counters]) => Object.entries(counters.failures).map(([reason, count]): Sample => [count, route, reason])),
  },
  { name: 'tunnel_client_connections_open', kind: 'gauge', extra: ['client'], help: 'Server only: tunnelled connections open now, per tunnel client.', read: perClient((c) => c.open) },
  { name: 'tunnel_client_connections_total', kind: 'counter', extra: ['client'], help: 'Server only: tunnelled connections since the start, per tunnel client.', read: perClient((c) => c.total) },
  { name: 'tunnel_client_received_bytes_total', kind: 'counter', extra: ['client'], help: 'Server only: bytes from the public side into the tunnel, per tunnel client.', read: perClient((c) => c.bytesIn) },
  { name: 'tunnel_client_sent_bytes_total', kind: 'counter', extra: ['client'], help: 'Server only: bytes from the tunnel back to the public side, per tunnel client.', read: perClient((c) => c.bytesOut) },
  {
    name: 'tunnel_control_up',
    kind: 'gauge',
    extra: ['client'],
    help: 'Control channels: 1 while up. A tunnel client has one series (client=""); a server one per client with a channel.',
    read: (data) => data.control.map(({ client, up }): Sample => [up ? 1 : 0, client ?? '']),
  },
  {
    name: 'tunnel_control_rtt_seconds',
    kind: 'gauge',
    extra: ['client'],
    help: "Control channels: the last ping's round trip (absent before the first pong).",
    read: (data) => data.control.flatMap(({ client, rttMs }): Sample[] => (rttMs === undefined ? [] : [[rttMs / 1000, client ?? '']])),
  },
];

const LATENCY_BOUNDS_S = LATENCY_BOUNDS_MS.map((ms) => ms / 1000);

/** The tunnel's histograms, exposed from its own bucket counts at scrape time. */
export const TUNNEL_HISTOGRAMS: readonly ScrapeHistogramDefinition<TunnelReading>[] = [
  {
    name: 'tunnel_open_latency_seconds',
    help: 'Tunnelled connections from the public connection to forwarding (its stream taken and named to the other side), per route.',
    bounds: LATENCY_BOUNDS_S,
    extra: ['route'],
    read: (data) =>
      Object.entries(data.stats.routes)
        .filter(([, counters]) => counters.openLatency.count > 0)
        .map(([route, counters]) => ({ extra: [route], counts: counters.openLatency.buckets, sum: counters.openLatency.sum / 1000 })),
  },
];

/** The metric names `registerTunnelMetrics` adds, without the prefix. */
export const TUNNEL_METRIC_NAMES: readonly string[] = [...TUNNEL_METRICS, ...TUNNEL_HISTOGRAMS].map((metric) => metric.name);

function controlOf(tunnel: TunnelStatsSource): TunnelReading['control'] {
  if (tunnel.clients !== undefined) return tunnel.clients.map((client) => ({ client, up: true, rttMs: tunnel.controlRttOf?.(client) }));
  if (tunnel.connected !== undefined) return [{ up: tunnel.connected, rttMs: tunnel.connected ? tunnel.controlRtt : undefined }];
  return [];
}

/**
 * Registers the tunnel metrics (`TUNNEL_METRICS`, `TUNNEL_HISTOGRAMS`) in a
 * prom-client registry (the default one when `registry` is omitted or null).
 * Like the pool metrics, nothing runs until a scrape: each scrape reads
 * every tunnel's `stats` once, and an open connection's bytes are read from
 * its forwarding's counters then, so a long-lived connection's traffic
 * moves at every scrape rather than at its close. The tunnels' pools are
 * not included: register them with `registerPoolMetrics` (the Nest module
 * does both). Returns a disposer that removes the metrics.
 */
export function registerTunnelMetrics(registry: Registry | null | undefined, tunnels: TunnelsSource, options: PoolMetricsOptions = {}): MetricsDisposer {
  const target = registry ?? defaultRegistry;
  const prefix = options.prefix ?? METRIC_PREFIX;
  checkPrefix(prefix);
  checkFree(target, TUNNEL_METRIC_NAMES.map((name) => prefix + name), 'tunnel metrics');
  const list = typeof tunnels === 'function' ? tunnels : () => tunnels;
  const readings = perScrape((): Reading<TunnelReading>[] =>
    [...list()].map((tunnel) => {
      const { name, role, transport } = tunnel.pool.stats;
      return { labels: { pool: name, role, transport }, data: { stats: tunnel.stats, control: controlOf(tunnel) } };
    }),
  );
  const names = registerScrapeMetrics(target, prefix, LABELS, TUNNEL_METRICS, TUNNEL_HISTOGRAMS, readings);
  let disposed = false;
  return () => {
    if (disposed) return;
    disposed = true;
    for (const name of names) target.removeSingleMetric(name);
  };
}
