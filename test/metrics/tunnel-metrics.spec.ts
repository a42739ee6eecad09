/**
 * The tunnel metrics over a real tunnel (tcp pools with keys on 127.0.0.1):
 * per-route figures move while a connection is still open, failures count
 * by reason, the control channels report up and their RTT, and the labels
 * stay bounded (never an ID or an address).
 */
import { describe, expect, it, jest } from '@jest/globals';
import net from 'node:net';
import { Registry } from 'prom-client';
import { registerTunnelMetrics, TUNNEL_HISTOGRAMS, TUNNEL_METRICS } from '../../lib/metrics/tunnel-metrics.js';
import { eventually, freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { startTunnelClient, startTunnelServer } from '../tunnel/tunnel-harness.js';
import { labelSets, sample } from './scrape.js';

jest.setTimeout(60_000);
const scope = useTestScope();

/** An echo server: what a tunnelled connection sends comes back. */
async function echoTarget(): Promise<number> {
  const server = net.createServer((socket) => socket.pipe(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

describe('registerTunnelMetrics over a live tunnel', () => {
  it('bytes of a connection still open move at each scrape; open, total, failures, latency and control channels are there', async () => {
    const [publicPort, refusingPort, closedPort] = await freePorts(3);
    const server = await startTunnelServer(
      scope,
      [{ clients: 'key:site-a', names: ['echo', 'down'], directions: ['reverse'], ports: [publicPort!, refusingPort!] }],
      'tcp',
      { control: { pingInterval: 100 } },
    );
    const echo = await echoTarget();
    const client = startTunnelClient(
      scope,
      server,
      'site-a',
      [
        { name: 'echo', serverPort: publicPort, target: `127.0.0.1:${echo}` },
        { name: 'down', serverPort: refusingPort, target: `127.0.0.1:${closedPort}` },
      ],
      { control: { pingInterval: 100 } },
    );
    await client.start();
    const registry = new Registry();
    scope.defer(registerTunnelMetrics(registry, [server, client]));

    const srv = { pool: server.pool.stats.name, role: 'server', transport: 'tcp' };
    const cli = { pool: client.pool.stats.name, role: 'client', transport: 'tcp' };

    // One public connection, kept open across scrapes.
    const socket = scope.track(net.connect(publicPort!, '127.0.0.1'));
    socket.write(Buffer.alloc(1000, 1));
    await readBytes(socket, 1000, 10_000);
    let text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_tunnel_connections_open', { ...srv, route: 'echo' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_received_bytes_total', { ...srv, route: 'echo' })).toBe(1000);
    expect(sample(text, 'tunnel_pool_tunnel_sent_bytes_total', { ...srv, route: 'echo' })).toBe(1000);
    expect(sample(text, 'tunnel_pool_tunnel_client_connections_open', { ...srv, client: 'key:site-a' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_open_latency_seconds_count', { ...srv, route: 'echo' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_open_latency_seconds_bucket', { ...srv, route: 'echo', le: '+Inf' })).toBe(1);
    // The client side serves the same connection towards the target.
    await eventually(() => client.stats.routes['echo']?.bytesIn === 1000, 5000, 'the client counted the bytes');
    expect(sample(await registry.metrics(), 'tunnel_pool_tunnel_received_bytes_total', { ...cli, route: 'echo' })).toBe(1000);

    socket.write(Buffer.alloc(500, 2));
    await readBytes(socket, 500, 10_000);
    text = await registry.metrics();
    // Still open, and the counters moved: nothing waits for the close.
    expect(sample(text, 'tunnel_pool_tunnel_connections_open', { ...srv, route: 'echo' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_received_bytes_total', { ...srv, route: 'echo' })).toBe(1500);
    expect(sample(text, 'tunnel_pool_tunnel_client_received_bytes_total', { ...srv, client: 'key:site-a' })).toBe(1500);

    socket.end();
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await eventually(() => server.stats.routes['echo']?.open === 0, 5000, 'the connection counted closed');
    text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_tunnel_connections_total', { ...srv, route: 'echo' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_received_bytes_total', { ...srv, route: 'echo' })).toBe(1500);

    // A target that refuses: a failure by reason on the client (which connects it).
    const refused = scope.track(net.connect(refusingPort!, '127.0.0.1'));
    refused.on('error', () => undefined);
    await new Promise<void>((resolve) => refused.once('close', () => resolve()));
    await eventually(() => (client.stats.routes['down']?.failures['target-refused'] ?? 0) >= 1, 5000, 'the refusal counted');
    expect(sample(await registry.metrics(), 'tunnel_pool_tunnel_connection_failures_total', { ...cli, route: 'down', reason: 'target-refused' })).toBe(1);
    // The server, which reset the public side on the client's FAIL, counts it by the FAIL's reason too (not as a bare cut).
    await eventually(() => Object.keys(server.stats.routes['down']?.failures ?? {}).length > 0, 5000, 'the server counted the failure');
    expect(server.stats.routes['down']!.failures).toEqual({ 'target-refused': 1 });

    // Control channels: up on both ends, with a round trip once a ping came back.
    await eventually(() => client.controlRtt !== undefined && server.controlRttOf('key:site-a') !== undefined, 5000, 'an RTT on both ends');
    text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_tunnel_control_rtt_seconds', { ...cli })).toBeCloseTo(client.controlRtt! / 1000, 6);
    expect(sample(text, 'tunnel_pool_tunnel_control_rtt_seconds', { ...srv, client: 'key:site-a' })).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'tunnel_pool_tunnel_control_up', { ...cli })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_control_up', { ...srv, client: 'key:site-a' })).toBe(1);

    // Bounded labels only, on every series.
    for (const metric of [...TUNNEL_METRICS, ...TUNNEL_HISTOGRAMS]) {
      const names = 'bounds' in metric ? ['_bucket', '_sum', '_count'].map((s) => metric.name + s) : [metric.name];
      for (const name of names) {
        for (const labels of labelSets(text, `tunnel_pool_${name}`)) {
          const allowed = ['pool', 'role', 'transport', ...(metric.extra ?? []), ...(name.endsWith('_bucket') ? ['le'] : [])];
          expect(Object.keys(labels).filter((key) => !allowed.includes(key))).toEqual([]);
          for (const value of Object.values(labels)) expect(value).not.toMatch(/^[0-9a-f]{8}$|127\.0\.0\.1/);
        }
      }
    }

    // Once the client is closed its control channel is down, and it says so.
    await client.close();
    text = await registry.metrics();
    expect(sample(text, 'tunnel_pool_tunnel_control_up', { ...cli })).toBe(0);
  });

  it('registers once per registry and the disposer removes every tunnel metric', () => {
    const registry = new Registry();
    const dispose = registerTunnelMetrics(registry, []);
    expect(() => registerTunnelMetrics(registry, [])).toThrow(/once per registry/);
    dispose();
    dispose();
    expect(registry.getMetricsAsArray()).toHaveLength(0);
    expect(() => registerTunnelMetrics(registry, [], { prefix: '9bad' })).toThrow(/prefix/);
  });
});
