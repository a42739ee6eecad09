import { describe, expect, it } from '@jest/globals';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import { Registry } from 'prom-client';
import { CHANNELS } from '../../lib/diagnostics/channels.js';
import { EVENT_METRICS, EVENT_METRIC_NAMES } from '../../lib/metrics/event-metrics.js';
import { registerPoolMetrics } from '../../lib/metrics/pool-metrics.js';
import { eventually, freePorts } from '../support/net.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { kindSpec } from '../support/kinds.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { labelSets, sample } from './scrape.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startPair>) => scope.pair(startPair, ...args);

/** The channels the event-fed metrics subscribe to. */
const FED = [...new Set(EVENT_METRICS.map((metric) => metric.channel))];

/** A connection that sends bytes no TLS server takes, closed by the server. */
function junk(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('not a ClientHello\r\n\r\n'));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe('event-fed metrics: histograms of dial, handshake and hand-off durations', () => {
  it('move with real traffic over TLS, with bounded labels, for the registered pools only; the disposer unsubscribes', async () => {
    for (const channel of FED) expect(diagnosticsChannel.hasSubscribers(channel)).toBe(false);
    const tls = kindSpec('tls');
    const p = await pair({ ...tls.server, name: 'edge' }, { ...tls.client, name: 'edge', minCap: 2, maxCap: 2 });
    const other = await pair({ name: 'other' }, { name: 'other', minCap: 1, maxCap: 1 });
    // A client whose every dial fails (nothing listens at its address).
    const [closedPort] = await freePorts(1);
    const failing = createClientPool({ name: 'nowhere', address: `127.0.0.1:${closedPort}`, minIvl: 50, maxIvl: 50, maxBackoff: 100 });
    scope.defer(() => failing.close());
    await Promise.all([p.client.waitForActive(2, 10_000), other.client.waitForActive(1, 10_000)]);
    const registry = new Registry();
    const dispose = registerPoolMetrics(registry, [p.client, p.server, failing]);
    scope.defer(dispose);
    for (const channel of FED) expect(diagnosticsChannel.hasSubscribers(channel)).toBe(true);

    // Streams the client holds from before the registration are flushed: the refill is observed.
    p.client.flush();
    other.client.flush();
    failing.start();
    await p.client.waitForActive(2, 10_000);
    await eventually(() => (failing.stats.failures['POOL_ERR_DIAL'] ?? 0) >= 1, 10_000, 'a failed dial');
    await other.client.waitForActive(1, 10_000);
    await junk(p.port);
    await eventually(() => (p.server.stats.refusals['tls'] ?? 0) >= 1, 10_000, 'the junk counted');

    const [id, serverStream] = await p.server.incomingGet(10_000);
    scope.track(serverStream);
    scope.track(await p.client.outgoingGet(id, 10_000));
    scope.track((await other.server.incomingGet(10_000))[1]);

    const text = await registry.metrics();
    const client = { pool: 'edge', role: 'client', transport: 'tls' };
    const server = { pool: 'edge', role: 'server', transport: 'tls' };
    expect(sample(text, 'tunnel_pool_dial_duration_seconds_count', { ...client, outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'tunnel_pool_dial_duration_seconds_count', { ...client, outcome: 'error' })).toBeUndefined();
    expect(sample(text, 'tunnel_pool_dial_duration_seconds_count', { pool: 'nowhere', role: 'client', transport: 'tcp', outcome: 'error' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'tunnel_pool_dial_duration_seconds_sum', { ...client, outcome: 'ok' })).toBeGreaterThan(0);
    expect(sample(text, 'tunnel_pool_handshake_duration_seconds_count', { ...server, outcome: 'ok' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'tunnel_pool_handshake_duration_seconds_count', { ...server, outcome: 'failed' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'tunnel_pool_hand_off_wait_seconds_count', client)).toBe(1);
    expect(sample(text, 'tunnel_pool_hand_off_wait_seconds_count', server)).toBe(1);
    expect(sample(text, 'tunnel_pool_hand_off_wait_seconds_bucket', { ...client, le: '+Inf' })).toBe(1);
    // The failed handshake is a refusal too, counted once, by the stats-fed counter.
    expect(sample(text, 'tunnel_pool_refusals_total', { ...server, reason: 'tls' })).toBe(1);

    // Only the documented labels; no pool that was not registered.
    for (const name of EVENT_METRIC_NAMES) {
      const metric = EVENT_METRICS.find((m) => m.name === name)!;
      for (const labels of labelSets(text, `tunnel_pool_${name}_count`)) {
        expect(Object.keys(labels).sort()).toEqual(['pool', 'role', 'transport', ...(metric.extra ? [metric.extra] : [])].sort());
        expect(['edge', 'nowhere']).toContain(labels['pool']);
      }
    }

    dispose();
    for (const channel of FED) expect(diagnosticsChannel.hasSubscribers(channel)).toBe(false);
    expect(registry.getSingleMetric('tunnel_pool_hand_off_wait_seconds')).toBeUndefined();
    expect((await registry.metrics()).trim()).toBe('');
  });

  it('counts the streams of each http2 session at its close, for pools listed by a function', async () => {
    const h2 = kindSpec('http2');
    const registry = new Registry();
    const live: Array<{ readonly stats: import('../../lib/core/stats.js').PoolStats }> = [];
    scope.defer(registerPoolMetrics(registry, () => live));
    const closed = new Promise<void>((resolve, reject) => {
      const seen = new Set<string>();
      const subscriber = (message: unknown): void => {
        const { pool, role } = message as { pool: string; role: string };
        if (pool !== 'mux') return;
        seen.add(role);
        if (seen.size === 2) resolve();
      };
      diagnosticsChannel.subscribe(CHANNELS.sessionClose, subscriber);
      const timer = setTimeout(() => reject(new Error(`sessions closed on ${[...seen].join(', ') || 'no side'} only`)), 15_000);
      scope.defer(() => {
        clearTimeout(timer);
        diagnosticsChannel.unsubscribe(CHANNELS.sessionClose, subscriber);
      });
    });
    closed.catch(() => undefined);
    const p = await pair({ ...h2.server, name: 'mux' }, { ...h2.client, name: 'mux', minCap: 2, maxCap: 2 });
    live.push(p.client, p.server);
    await p.client.waitForActive(2, 10_000);
    let text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_transport_streams_per_session', { pool: 'mux', role: 'client', transport: 'http2' })).toBe(2);
    await p.close();
    await closed;
    text = await registry.metrics();
    for (const role of ['client', 'server']) {
      expect(sample(text, 'tunnel_pool_session_streams_count', { pool: 'mux', role, transport: 'http2' })).toBe(1);
      expect(sample(text, 'tunnel_pool_session_streams_sum', { pool: 'mux', role, transport: 'http2' })).toBe(2);
    }
  });
});
