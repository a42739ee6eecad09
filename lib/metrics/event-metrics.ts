import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { Histogram, type Registry } from 'prom-client';
import { CHANNELS, type ChannelMessages, type ChannelName, type PoolRef } from '../diagnostics/channels.js';

/*
 * The metrics fed by the pools' diagnostics_channel events: durations a
 * stats snapshot cannot hold. Counts the snapshot already has (dials,
 * drops and refusals by reason, sessions open) stay scrape-time collectors
 * in pool-metrics.ts, so nothing is counted twice; a histogram's `_count`
 * gives the counts by outcome the snapshot lacks.
 */

type Labels = 'pool' | 'role' | 'transport';
const LABELS: Labels[] = ['pool', 'role', 'transport'];

/** One event-fed histogram: its name without the prefix, the channel that feeds it and how. */
export interface EventMetric<N extends ChannelName = ChannelName> {
  name: string;
  help: string;
  channel: N;
  /** A label besides pool, role and transport, from a fixed set. */
  extra?: 'outcome';
  buckets: number[];
  /** The value to observe (and the extra label's), or nothing for an event this metric skips. */
  read(message: ChannelMessages[N]): [value: number, extra?: string] | undefined;
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
    read: (m) => [seconds(m.durationMs), 'ok'],
  }),
  define({
    name: 'dial_duration_seconds',
    help: '',
    channel: CHANNELS.dialError,
    extra: 'outcome',
    buckets: DURATION_BUCKETS,
    read: (m) => [seconds(m.durationMs), 'error'],
  }),
  define({
    name: 'handshake_duration_seconds',
    help: 'Server only: connections from accept to the end of their handshake in the front door, by outcome (ok, failed).',
    channel: CHANNELS.handshake,
    extra: 'outcome',
    buckets: DURATION_BUCKETS,
    read: (m) => [seconds(m.durationMs), m.outcome],
  }),
  define({
    name: 'hand_off_wait_seconds',
    help: 'Each side: how long a take waited for its stream (about 0 when one was idle).',
    channel: CHANNELS.handOff,
    buckets: [0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    read: (m) => [seconds(m.waitedMs)],
  }),
  define({
    name: 'hand_off_idle_seconds',
    help: 'Each side: how long a stream was ready before it was taken.',
    channel: CHANNELS.handOff,
    buckets: [0.0001, 0.001, 0.01, 0.1, 1, 10, 60, 300, 1800],
    read: (m) => (m.idleMs === undefined ? undefined : [seconds(m.idleMs)]),
  }),
  define({
    name: 'session_streams',
    help: 'Multiplexing transports (http2): streams a session carried in its life, observed at its close.',
    channel: CHANNELS.sessionClose,
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10000],
    read: (m) => [m.streams],
  }),
];

/** The metric names `registerEventMetrics` adds, without the prefix. */
export const EVENT_METRIC_NAMES: readonly string[] = [...new Set(EVENT_METRICS.map((metric) => metric.name))];

/** Which pools' events count: the registration's own (by name and role), looked up again when a name is new, at most once a second. */
export type PoolKeys = () => Iterable<{ readonly name: string; readonly role: string }>;

/**
 * Registers the event-fed histograms in `registry` and subscribes to the
 * channels that feed them; returns what undoes both. Only events of the
 * pools `keys` lists are observed, so two registrations for different pools
 * never count each other's.
 */
export function registerEventMetrics(registry: Registry, prefix: string, keys: PoolKeys): () => void {
  const known = new Set<string>();
  let readAt = -Infinity;
  const ours = (ref: PoolRef): boolean => {
    const key = `${ref.role}\u0000${ref.pool}`;
    if (known.has(key)) return true;
    const now = performance.now();
    if (now - readAt < 1000) return false;
    readAt = now;
    known.clear();
    for (const pool of keys()) known.add(`${pool.role}\u0000${pool.name}`);
    return known.has(key);
  };

  const histograms = new Map<string, Histogram<string>>();
  const unsubscribe: Array<() => void> = [];
  try {
    for (const metric of EVENT_METRICS) {
      const name = prefix + metric.name;
      let histogram = histograms.get(name);
      if (!histogram) {
        histogram = new Histogram({ name, help: metric.help, labelNames: metric.extra ? [...LABELS, metric.extra] : LABELS, buckets: metric.buckets, registers: [registry] });
        histograms.set(name, histogram);
      }
      const target = histogram;
      const subscriber = (message: unknown): void => {
        const event = message as ChannelMessages[ChannelName] & PoolRef;
        if (!ours(event)) return;
        const reading = metric.read(event);
        if (!reading) return;
        const labels: Record<string, string> = { pool: event.pool, role: event.role, transport: event.transport };
        if (metric.extra) labels[metric.extra] = reading[1]!;
        target.observe(labels, reading[0]);
      };
      diagnosticsChannel.subscribe(metric.channel, subscriber);
      unsubscribe.push(() => diagnosticsChannel.unsubscribe(metric.channel, subscriber));
    }
  } catch (error) {
    for (const undo of unsubscribe) undo();
    for (const name of histograms.keys()) registry.removeSingleMetric(name);
    throw error;
  }
  return () => {
    for (const undo of unsubscribe) undo();
    for (const name of histograms.keys()) registry.removeSingleMetric(name);
  };
}
