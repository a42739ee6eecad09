import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import type { Metric, Registry } from 'prom-client';
import { CHANNELS, type ChannelMessages, type ChannelName, type PoolRef } from '../diagnostics/channels.js';

/*
 * The metrics fed by the pools' diagnostics_channel events: durations a
 * stats snapshot cannot hold. Counts the snapshot already has (dials,
 * drops and refusals by reason, sessions open) stay scrape-time collectors
 * in pool-metrics.ts, so nothing is counted twice; a histogram's `_count`
 * gives the counts by outcome the snapshot lacks.
 */

/** One event-fed histogram: its name without the prefix, the channel that feeds it and how. */
export interface EventMetric<N extends ChannelName = ChannelName> {
  name: string;
  help: string;
  channel: N;
  /** A label besides pool, role and transport, from a fixed set. */
  extra?: 'outcome';
  buckets: number[];
  /** The value to observe, or undefined for an event this metric skips. */
  value(message: ChannelMessages[N]): number | undefined;
  /** The extra label's value. */
  label?(message: ChannelMessages[N]): string;
}

const define = <N extends ChannelName>(metric: EventMetric<N>): EventMetric => metric as unknown as EventMetric;
const seconds = (ms: number): number => ms / 1000;
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Every event-fed metric (public names, see docs/OBSERVABILITY.md). */
export const EVENT_METRICS: readonly EventMetric[] = [
  define({
    name: 'dial_duration_seconds',
    help: 'Client only: dials from start to a stream with its ID (outcome ok) or to their failure (outcome error).',
    channel: CHANNELS.dialEnd,
    extra: 'outcome',
    buckets: DURATION_BUCKETS,
    value: (m) => seconds(m.durationMs),
    label: () => 'ok',
  }),
  define({
    name: 'dial_duration_seconds',
    help: '',
    channel: CHANNELS.dialError,
    extra: 'outcome',
    buckets: DURATION_BUCKETS,
    value: (m) => seconds(m.durationMs),
    label: () => 'error',
  }),
  define({
    name: 'handshake_duration_seconds',
    help: 'Server only: connections from accept to the end of their handshake in the front door, by outcome (ok, failed).',
    channel: CHANNELS.handshake,
    extra: 'outcome',
    buckets: DURATION_BUCKETS,
    value: (m) => seconds(m.durationMs),
    label: (m) => m.outcome,
  }),
  define({
    name: 'hand_off_wait_seconds',
    help: 'Each side: how long a take waited for its stream (about 0 when one was idle).',
    channel: CHANNELS.handOff,
    buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    value: (m) => seconds(m.waitedMs),
  }),
  define({
    name: 'hand_off_idle_seconds',
    help: 'Each side: how long a stream was ready before it was taken.',
    channel: CHANNELS.handOff,
    buckets: [0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 300, 1800],
    value: (m) => (m.idleMs === undefined ? undefined : seconds(m.idleMs)),
  }),
  define({
    name: 'session_streams',
    help: 'Multiplexing transports (http2): streams a session carried in its life, observed at its close.',
    channel: CHANNELS.sessionClose,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000],
    value: (m) => m.streams,
  }),
];

/** The metric names `registerEventMetrics` adds, without the prefix. */
export const EVENT_METRIC_NAMES: readonly string[] = [...new Set(EVENT_METRICS.map((metric) => metric.name))];

/** Which pools' events count: the registration's own (by name and role), looked up again when a name is new, at most once a second. */
export type PoolKeys = () => Iterable<{ readonly name: string; readonly role: string }>;

/** One label set's figures. */
export interface Series {
  readonly labels: Record<string, string>;
  /** Observations per bucket (not cumulative): counts[i] for values in (bounds[i-1], bounds[i]]. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/**
 * A Prometheus histogram written for the event path: an observation is a
 * bucket search and three additions on a series the caller already holds
 * (the prom-client `Histogram` validates and hashes its labels at every
 * observation, microseconds per hand-off). It is registered in a
 * prom-client registry as any metric is (`registerMetric`) and exposes the
 * same series: `_bucket` with `le`, `_sum`, `_count`.
 */
export class EventHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly series: Series[] = [];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
  ) {}

  /** A new series with these labels (the caller keeps it and observes into it). */
  add(labels: Record<string, string>): Series {
    const series: Series = { labels, counts: this.bounds.map(() => 0), sum: 0, count: 0 };
    this.series.push(series);
    return series;
  }

  observe(series: Series, value: number): void {
    const { bounds } = this;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    if (bucket < bounds.length) series.counts[bucket]!++;
    series.sum += value;
    series.count++;
  }

  /** Zeroes every series (prom-client's `registry.resetMetrics()`). */
  reset(): void {
    for (const series of this.series) {
      series.counts.fill(0);
      series.sum = 0;
      series.count = 0;
    }
  }

  /** The metric as prom-client's registry reads it. */
  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> } {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { labels, counts, sum, count } of this.series) {
      if (count === 0) continue;
      let cumulative = 0;
      this.bounds.forEach((bound, i) => {
        cumulative += counts[i]!;
        values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** Nested maps by the label values, so that the event path builds no key string (label strings hash once). */
type Tree<T> = Map<string, T>;
function branch<T>(tree: Tree<T>, key: string, make: () => T): T {
  let found = tree.get(key);
  if (found === undefined) {
    found = make();
    tree.set(key, found);
  }
  return found;
}

/**
 * Registers the event-fed histograms in `registry` and subscribes to the
 * channels that feed them; returns what undoes both. Only events of the
 * pools `keys` lists are observed, so two registrations for different pools
 * never count each other's: a pool met for the first time is looked up in
 * `keys()` (at most once a second while unknown ones keep coming).
 */
export function registerEventMetrics(registry: Registry, prefix: string, keys: PoolKeys): () => void {
  let listed: Set<string> | undefined;
  let readAt = -Infinity;
  const isListed = (role: string, pool: string, now: number): boolean => {
    if (!listed || now - readAt >= 1000) {
      readAt = now;
      listed = new Set([...keys()].map((entry) => `${entry.role}\u0000${entry.name}`));
    }
    return listed.has(`${role}\u0000${pool}`);
  };

  const histograms = new Map<string, EventHistogram>();
  const unsubscribe: Array<() => void> = [];
  const undo = (): void => {
    for (const forget of unsubscribe) forget();
    for (const name of histograms.keys()) registry.removeSingleMetric(name);
  };
  try {
    for (const metric of EVENT_METRICS) {
      const name = prefix + metric.name;
      if (!histograms.has(name)) {
        const histogram = new EventHistogram(name, metric.help, metric.buckets);
        registry.registerMetric(histogram as unknown as Metric);
        histograms.set(name, histogram);
      }
    }
    // One subscriber per channel, feeding every histogram of that channel.
    for (const channel of new Set(EVENT_METRICS.map((metric) => metric.channel))) {
      const fed = EVENT_METRICS.filter((metric) => metric.channel === channel).map((metric) => ({ metric, histogram: histograms.get(prefix + metric.name)! }));
      // pool → role → transport → per histogram, by extra label: the series.
      // A number instead: when a pool not listed was last asked about.
      const tree: Tree<Tree<Tree<Array<Tree<Series>> | number>>> = new Map();
      const subscriber = (message: unknown): void => {
        const event = message as ChannelMessages[ChannelName] & PoolRef;
        const byRole = branch(tree, event.pool, () => new Map());
        const byTransport = branch(byRole, event.role, () => new Map());
        let perMetric = byTransport.get(event.transport);
        if (perMetric === undefined || typeof perMetric === 'number') {
          // First event of this pool: is it one of ours? (One not listed is asked about again at most once a second: it may be listed later.)
          const now = performance.now();
          if (perMetric !== undefined && now - perMetric < 1000) return;
          if (!isListed(event.role, event.pool, now)) {
            byTransport.set(event.transport, now);
            return;
          }
          perMetric = fed.map(() => new Map<string, Series>());
          byTransport.set(event.transport, perMetric);
        }
        for (let i = 0; i < fed.length; i++) {
          const { metric, histogram } = fed[i]!;
          const value = metric.value(event as never);
          if (value === undefined) continue;
          const extra = metric.label ? metric.label(event as never) : '';
          let series = perMetric[i]!.get(extra);
          if (series === undefined) {
            const labels: Record<string, string> = { pool: event.pool, role: event.role, transport: event.transport };
            if (metric.extra) labels[metric.extra] = extra;
            series = histogram.add(labels);
            perMetric[i]!.set(extra, series);
          }
          histogram.observe(series, value);
        }
      };
      diagnosticsChannel.subscribe(channel, subscriber);
      unsubscribe.push(() => diagnosticsChannel.unsubscribe(channel, subscriber));
    }
  } catch (error) {
    undo();
    throw error;
  }
  return undo;
}
