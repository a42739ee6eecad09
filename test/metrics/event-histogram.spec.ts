import { describe, expect, it } from '@jest/globals';
import { Histogram, Registry, type Metric } from 'prom-client';
import { EventHistogram } from '../../lib/metrics/event-metrics.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];
const VALUES = [0, 0.0005, 0.001, 0.002, 0.05, 0.1, 0.5, 1, 3, 42];

describe('EventHistogram: the event-fed histogram as a prom-client registry metric', () => {
  it("exposes exactly what prom-client's own Histogram exposes for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const histogram = new EventHistogram('h_seconds', 'help text', BOUNDS);
    ours.registerMetric(histogram as unknown as Metric);
    const reference = new Histogram({ name: 'h_seconds', help: 'help text', labelNames: ['pool', 'role', 'transport', 'outcome'], buckets: BOUNDS, registers: [theirs] });
    const labelSets = [
      { pool: 'edge', role: 'client', transport: 'tcp', outcome: 'ok' },
      { pool: 'edge', role: 'client', transport: 'tcp', outcome: 'error' },
      { pool: 'a "quoted" \\ name', role: 'server', transport: 'http2', outcome: 'ok' },
    ];
    for (const [i, labels] of labelSets.entries()) {
      const series = histogram.add(labels);
      for (const value of VALUES.slice(i)) {
        histogram.observe(series, value);
        reference.observe(labels, value);
      }
    }
    expect(await ours.metrics()).toBe(await theirs.metrics());
    // The same JSON, but for prom-client's exemplar slots (none are recorded here).
    const withoutExemplars = (json: unknown): unknown => JSON.parse(JSON.stringify(json, (key, value: unknown) => (key === 'exemplar' ? undefined : value)));
    expect(withoutExemplars(await ours.getMetricsAsJSON())).toEqual(withoutExemplars(await theirs.getMetricsAsJSON()));
  });

  it('is zeroed by the registry\'s resetMetrics(), shows no series without observations, and is removed by name', async () => {
    const registry = new Registry();
    const histogram = new EventHistogram('h_seconds', 'help', BOUNDS);
    registry.registerMetric(histogram as unknown as Metric);
    const series = histogram.add({ pool: 'p', role: 'client', transport: 'tcp' });
    expect(await registry.metrics()).not.toContain('h_seconds_count');
    histogram.observe(series, 0.5);
    expect(await registry.metrics()).toContain('h_seconds_count{pool="p",role="client",transport="tcp"} 1');
    registry.resetMetrics();
    expect(await registry.metrics()).not.toContain('h_seconds_count');
    histogram.observe(series, 2);
    expect(await registry.metrics()).toContain('h_seconds_bucket{le="+Inf",pool="p",role="client",transport="tcp"} 1');
    registry.removeSingleMetric('h_seconds');
    expect(registry.getSingleMetric('h_seconds')).toBeUndefined();
  });
});
