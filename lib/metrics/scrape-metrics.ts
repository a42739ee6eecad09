import { Counter, Gauge, type Metric, type Registry } from 'prom-client';
import { InvalidOptionsError } from '../core/errors.js';

/**
 * The metrics read from a snapshot at scrape time (pool-metrics.ts,
 * tunnel-metrics.ts): each is a definition over one reading of a source,
 * and one scrape reads every source once.
 */

/** One source's snapshot at this scrape, with the labels that name it. */
export interface Reading<T> {
  readonly labels: Readonly<Record<string, string>>;
  readonly data: T;
}

/** A value to expose, with the values of the definition's extra labels (in `extra`'s order). */
export type Sample = readonly [value: number, ...extra: string[]];

export interface ScrapeDefinition<T> {
  /** The name without the prefix. */
  readonly name: string;
  readonly help: string;
  readonly kind: 'gauge' | 'counter';
  /** Labels beyond the reading's own, whose values come with each sample (a reason, a route). */
  readonly extra?: readonly string[];
  /** The samples of one reading; none when the figure does not apply to it. */
  read(data: T): Iterable<Sample>;
}

/** A scrape-time histogram: cumulative counts per bound, read from a snapshot. */
export interface HistogramSample {
  readonly extra: readonly string[];
  /** Observations per bound, not cumulative: counts[i] for values in (bounds[i-1], bounds[i]]; one more for beyond the last. */
  readonly counts: readonly number[];
  readonly sum: number;
}

export interface ScrapeHistogramDefinition<T> {
  readonly name: string;
  readonly help: string;
  readonly bounds: readonly number[];
  readonly extra?: readonly string[];
  read(data: T): Iterable<HistogramSample>;
}

/** Throws unless `prefix` is a valid start of a Prometheus metric name. */
export function checkPrefix(prefix: unknown): asserts prefix is string {
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new InvalidOptionsError('prefix', `expected a Prometheus name prefix (letters, digits, _ or :, not starting with a digit), got ${JSON.stringify(prefix)}`);
  }
}

/** Throws when `registry` already has one of `names` (a second registration of the same metrics). */
export function checkFree(registry: Registry, names: readonly string[], what: string): void {
  const taken = names.filter((name) => registry.getSingleMetric(name) !== undefined);
  if (taken.length > 0) {
    throw new InvalidOptionsError('prefix', `the registry already has ${taken.join(', ')}: ${what} are registered once per registry (call the disposer first, or pass another prefix)`);
  }
}

/**
 * Caches `read()` for the rest of this turn: prom-client calls every
 * collect() of one scrape in the same turn, so all the metrics of a scrape
 * share one snapshot of every source (cleared in a microtask).
 */
export function perScrape<T>(read: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (cached) return cached.value;
    cached = { value: read() };
    queueMicrotask(() => (cached = undefined));
    return cached.value;
  };
}

/**
 * Registers gauges and counters set from `readings()` at every scrape, and
 * histograms exposed from snapshot counts; returns their full names (for
 * removal). Counters are the sources' own running totals: each scrape sets
 * them as they are (reset, then add), so scraping twice adds nothing.
 */
export function registerScrapeMetrics<T>(
  registry: Registry,
  prefix: string,
  baseLabels: readonly string[],
  definitions: readonly ScrapeDefinition<T>[],
  histograms: readonly ScrapeHistogramDefinition<T>[],
  readings: () => readonly Reading<T>[],
): string[] {
  const names: string[] = [];
  try {
    for (const definition of definitions) {
      const extra = definition.extra ?? [];
      const name = prefix + definition.name;
      const collect = function (this: Gauge<string> | Counter<string>): void {
        this.reset();
        for (const { labels, data } of readings()) {
          for (const [value, ...values] of definition.read(data)) {
            const all: Record<string, string> = { ...labels };
            extra.forEach((label, i) => (all[label] = values[i]!));
            if (this instanceof Gauge) this.set(all, value);
            else this.inc(all, value);
          }
        }
      };
      const config = { name, help: definition.help, labelNames: [...baseLabels, ...extra], registers: [registry], collect };
      if (definition.kind === 'gauge') new Gauge(config);
      else new Counter(config);
      names.push(name);
    }
    for (const definition of histograms) {
      const name = prefix + definition.name;
      registry.registerMetric(new SnapshotHistogram(name, definition, readings) as unknown as Metric);
      names.push(name);
    }
  } catch (error) {
    for (const name of names) registry.removeSingleMetric(name);
    throw error;
  }
  return names;
}

type Value = { labels: Record<string, string | number>; value: number; metricName: string };

/** A histogram whose counts live in the source's snapshot: exposed as prom-client's Histogram exposes its series. */
class SnapshotHistogram<T> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly help: string;

  constructor(
    readonly name: string,
    private readonly definition: ScrapeHistogramDefinition<T>,
    private readonly readings: () => readonly Reading<T>[],
  ) {
    this.help = definition.help;
  }

  /** Nothing to zero: the counts are the source's (prom-client's `resetMetrics()` calls this). */
  reset(): void {}

  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Value[] } {
    const { bounds, extra = [] } = this.definition;
    const values: Value[] = [];
    for (const { labels: base, data } of this.readings()) {
      for (const { extra: extraValues, counts, sum } of this.definition.read(data)) {
        const labels: Record<string, string> = { ...base };
        extra.forEach((label, i) => (labels[label] = extraValues[i]!));
        let cumulative = 0;
        bounds.forEach((bound, i) => {
          cumulative += counts[i] ?? 0;
          values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
        });
        const count = cumulative + (counts[bounds.length] ?? 0);
        values.push({ labels: { le: '+Inf', ...labels }, value: count, metricName: `${this.name}_bucket` });
        values.push({ labels, value: sum, metricName: `${this.name}_sum` });
        values.push({ labels, value: count, metricName: `${this.name}_count` });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
