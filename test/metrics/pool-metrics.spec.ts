import { describe, expect, it } from '@jest/globals';
import { Registry, register } from 'prom-client';
import { registerPoolMetrics, POOL_METRICS } from '../../lib/metrics/pool-metrics.js';
import { createServerPool } from '../../lib/pool-factory.js';
import { connect, eventually } from '../support/net.js';
import { kindSpec } from '../support/kinds.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { labelSets, sample } from './scrape.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startPair>) => scope.pair(startPair, ...args);

describe('registerPoolMetrics: pool stats read at scrape time', () => {
  it('exposes fixed names and bounded labels, and the values move with real traffic over tcp', async () => {
    const p = await pair({ name: 'edge', maxCap: 4 }, { name: 'edge', minCap: 2, maxCap: 2 });
    const registry = new Registry();
    scope.defer(registerPoolMetrics(registry, [p.client, p.server]));
    await p.client.waitForActive(2, 5000);
    await eventually(() => p.server.active === 2, 5000, 'two idle server streams');

    const client = { pool: 'edge', role: 'client', transport: 'tcp' };
    const server = { pool: 'edge', role: 'server', transport: 'tcp' };
    let text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_up', client)).toBe(1);
    expect(sample(text, 'tunnel_pool_idle_streams', client)).toBe(2);
    expect(sample(text, 'tunnel_pool_idle_streams', server)).toBe(2);
    expect(sample(text, 'tunnel_pool_capacity', client)).toBe(2);
    expect(sample(text, 'tunnel_pool_in_use_streams', server)).toBe(0);
    expect(sample(text, 'tunnel_pool_streams_taken_total', client)).toBe(0);
    expect(sample(text, 'tunnel_pool_dials_total', client)).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'tunnel_pool_streams_created_total', client)).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'tunnel_pool_streams_accepted_total', server)).toBeGreaterThanOrEqual(2);
    // A role's figures only on that role.
    expect(sample(text, 'tunnel_pool_dials_total', server)).toBeUndefined();
    expect(sample(text, 'tunnel_pool_handshaking', client)).toBeUndefined();
    expect(sample(text, 'tunnel_pool_transport_sessions', client)).toBeUndefined();
    // Every name carries the prefix and only the documented labels.
    for (const definition of POOL_METRICS) {
      for (const labels of labelSets(text, `tunnel_pool_${definition.name}`)) {
        expect(Object.keys(labels).sort()).toEqual(['pool', 'role', 'transport', ...(definition.extra ?? [])].sort());
      }
    }

    // One hand-off: the server takes, then the client takes the same ID.
    const [id, serverStream] = await p.server.incomingGet(5000);
    scope.track(serverStream);
    scope.track(await p.client.outgoingGet(id, 5000));
    text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_streams_taken_total', client)).toBe(1);
    expect(sample(text, 'tunnel_pool_streams_taken_total', server)).toBe(1);
    expect(sample(text, 'tunnel_pool_in_use_streams', client)).toBe(1);
    expect(sample(text, 'tunnel_pool_in_use_streams', server)).toBe(1);

    // Drops by reason: flushing the idle client streams.
    const flushed = p.client.flush();
    expect(flushed).toBeGreaterThan(0);
    text = await registry.metrics();
    const drops = labelSets(text, 'tunnel_pool_drops_total').filter((labels) => labels['role'] === 'client');
    expect(drops.length).toBeGreaterThan(0);
    for (const labels of drops) {
      expect(sample(text, 'tunnel_pool_drops_total', labels)).toBe(p.client.stats.drops[labels['reason']!]);
    }
  });

  it('adds the generic transport figures of a multiplexing transport (http2 sessions and streams), none for tcp', async () => {
    const h2 = kindSpec('http2');
    const p = await pair({ ...h2.server, name: 'mux' }, { ...h2.client, name: 'mux', minCap: 2, maxCap: 2 });
    const registry = new Registry();
    scope.defer(registerPoolMetrics(registry, [p.client, p.server]));
    await p.client.waitForActive(2, 10_000);
    const text = await registry.metrics();
    const client = { pool: 'mux', role: 'client', transport: 'http2' };
    expect(sample(text, 'tunnel_pool_idle_streams', client)).toBe(2);
    expect(sample(text, 'tunnel_pool_transport_sessions', client)).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'tunnel_pool_transport_active_streams', client)).toBe(2);
    expect(sample(text, 'tunnel_pool_transport_streams_opened_total', client)).toBeGreaterThanOrEqual(2);
    expect(sample(text, 'tunnel_pool_transport_sessions', { pool: 'mux', role: 'server', transport: 'http2' })).toBeGreaterThanOrEqual(1);
  });

  it('counts refusals by reason on the server', async () => {
    const server = createServerPool({ name: 'gate', host: '127.0.0.1', port: 0, allowedIps: '127.0.0.2' });
    await server.start();
    scope.defer(() => server.close());
    const registry = new Registry();
    scope.defer(registerPoolMetrics(registry, [server]));
    expect(labelSets(await registry.metrics(), 'tunnel_pool_refusals_total')).toEqual([]);
    const socket = scope.track(await connect(server.address()!.port));
    await new Promise((resolve) => socket.once('close', resolve));
    await eventually(() => Object.keys(server.stats.refusals).length > 0, 5000, 'a refusal');
    const text = await registry.metrics();
    const [reason] = Object.keys(server.stats.refusals);
    expect(sample(text, 'tunnel_pool_refusals_total', { pool: 'gate', role: 'server', reason: reason! })).toBe(1);
  });

  it('reads the pools only when scraped, and a function source at every scrape', async () => {
    let calls = 0;
    const registry = new Registry();
    const dispose = registerPoolMetrics(registry, () => {
      calls++;
      return [];
    });
    scope.defer(dispose);
    expect(calls).toBe(0);
    await registry.metrics();
    expect(calls).toBe(1); // one read shared by every metric of the scrape
    await registry.metrics();
    expect(calls).toBe(2);
  });

  it('reports each scrape the totals as they are: a scrape again adds nothing, a pool gone leaves no series', async () => {
    const p = await pair({ name: 'once' }, { name: 'once', minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    await eventually(() => p.server.active === 1, 5000, 'an idle server stream');
    let pools = [p.server];
    const registry = new Registry();
    scope.defer(registerPoolMetrics(registry, () => pools));
    const labels = { pool: 'once', role: 'server' };
    const accepted = p.server.stats.totals.accepted;
    expect(accepted).toBeGreaterThan(0);
    expect(sample(await registry.metrics(), 'tunnel_pool_streams_accepted_total', labels)).toBe(accepted);
    expect(sample(await registry.metrics(), 'tunnel_pool_streams_accepted_total', labels)).toBe(p.server.stats.totals.accepted);
    pools = [];
    expect(sample(await registry.metrics(), 'tunnel_pool_streams_accepted_total', labels)).toBeUndefined();
  });

  it('registers once per registry, disposes idempotently, and defaults to the global registry', async () => {
    const registry = new Registry();
    const dispose = registerPoolMetrics(registry, []);
    expect(() => registerPoolMetrics(registry, [])).toThrow(expect.objectContaining({ code: 'POOL_ERR_INVALID_OPTIONS' }));
    // Another prefix does not clash.
    const other = registerPoolMetrics(registry, [], { prefix: 'edge_' });
    expect(registry.getSingleMetric('edge_idle_streams')).toBeDefined();
    other();
    dispose();
    dispose();
    expect(registry.getMetricsAsArray()).toEqual([]);
    expect(() => registerPoolMetrics(registry, [], { prefix: '9bad' })).toThrow(expect.objectContaining({ option: 'prefix' }));

    const global = registerPoolMetrics(undefined, []);
    expect(register.getSingleMetric('tunnel_pool_idle_streams')).toBeDefined();
    global();
    expect(register.getSingleMetric('tunnel_pool_idle_streams')).toBeUndefined();
  });
});
