import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { Registry, register } from 'prom-client';
import net from 'node:net';
import { ClientPoolService, getServerPoolToken, PoolModule, SERVER_POOL, ServerPoolService, TUNNEL_SERVER, TunnelModule, type TunnelServerService } from '../../lib/index.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { TunnelClient } from '../../lib/tunnel/tunnel-client.js';
import { PoolMetricsModule, PoolMetricsService, type PoolMetricsModuleOptions } from '../../lib/metrics/index.js';
import { eventually, freePorts, readBytes } from '../support/net.js';
import { compile, fastClient, loopback } from '../nest/support/nest.js';
import { sample } from './scrape.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface MetricsApp {
  app: INestApplication;
  get(path: string): Promise<{ status: number; type: string | null; text: string }>;
}

/** An HTTP app on 127.0.0.1:0: the default pool (both sides, the client dialing the server), a named server-only pool 'edge', and the metrics module. */
async function metricsApp(options: PoolMetricsModuleOptions, extra: Array<NonNullable<Parameters<typeof compile>[0]['imports']>[number]> = []): Promise<MetricsApp> {
  const loop = loopback();
  const moduleRef = await compile({
    imports: [
      PoolModule.forRoot({ server: { host: '127.0.0.1', port: 0 }, client: fastClient(loop.addressResolver, 2) }),
      PoolModule.forRoot({ name: 'edge', server: { host: '127.0.0.1', port: 0 } }),
      PoolMetricsModule.forRoot(options),
      ...extra,
    ],
  });
  const app = moduleRef.createNestApplication({ logger: false });
  cleanups.push(() => app.close());
  loop.bind(() => app.get(SERVER_POOL));
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return {
    app,
    get: async (path) => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`);
      return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
    },
  };
}

describe('PoolMetricsModule in a Nest app', () => {
  it('serves GET /metrics with every registered pool, values moving with a live tunnel', async () => {
    const registry = new Registry();
    const { app, get } = await metricsApp({ registry });
    const client = app.get(ClientPoolService);
    const server = app.get(ServerPoolService);
    await client.waitForActive(2, 5000);
    await eventually(() => server.active === 2, 5000, 'two idle server streams');

    let scrape = await get('/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.type).toContain('text/plain');
    const defaultClient = { pool: 'default', role: 'client', transport: 'tcp' };
    const defaultServer = { pool: 'default', role: 'server', transport: 'tcp' };
    expect(sample(scrape.text, 'tunnel_pool_idle_streams', defaultClient)).toBe(2);
    expect(sample(scrape.text, 'tunnel_pool_idle_streams', defaultServer)).toBe(2);
    expect(sample(scrape.text, 'tunnel_pool_up', { pool: 'edge', role: 'server' })).toBe(1);
    // 'edge' configures no client: no client figures for it (not zeros).
    expect(sample(scrape.text, 'tunnel_pool_up', { pool: 'edge', role: 'client' })).toBeUndefined();

    // A hand-off through the tunnel: taken counters and in-use gauges move.
    const [id, serverStream] = await server.pool.incomingGet(5000);
    const clientStream = await client.pool.outgoingGet(id, 5000);
    cleanups.push(() => [serverStream, clientStream].forEach((stream: Duplex) => stream.destroy()));
    scrape = await get('/metrics');
    expect(sample(scrape.text, 'tunnel_pool_streams_taken_total', defaultClient)).toBe(1);
    expect(sample(scrape.text, 'tunnel_pool_streams_taken_total', defaultServer)).toBe(1);
    expect(sample(scrape.text, 'tunnel_pool_in_use_streams', defaultClient)).toBe(1);
    // The same text from the service, for a controller of one's own.
    expect((await app.get(PoolMetricsService).scrape()).body).toContain('tunnel_pool_in_use_streams{pool="default",role="server",transport="tcp"} 1');
    expect(app.get(getServerPoolToken('edge'))).toBeInstanceOf(ServerPoolService);

    // The event-fed histograms: each side's take, then a refill's dials and handshakes.
    expect(sample(scrape.text, 'tunnel_pool_hand_off_wait_seconds_count', defaultClient)).toBe(1);
    expect(sample(scrape.text, 'tunnel_pool_hand_off_wait_seconds_count', defaultServer)).toBe(1);
    const dialsBefore = sample(scrape.text, 'tunnel_pool_dial_duration_seconds_count', { ...defaultClient, outcome: 'ok' }) ?? 0;
    const handshakesBefore = sample(scrape.text, 'tunnel_pool_handshake_duration_seconds_count', { ...defaultServer, outcome: 'ok' }) ?? 0;
    const flushed = client.pool.flush();
    expect(flushed).toBeGreaterThan(0);
    await client.waitForActive(2, 5000);
    scrape = await get('/metrics');
    expect(sample(scrape.text, 'tunnel_pool_dial_duration_seconds_count', { ...defaultClient, outcome: 'ok' })).toBeGreaterThanOrEqual(dialsBefore + flushed);
    expect(sample(scrape.text, 'tunnel_pool_dial_duration_seconds_bucket', { ...defaultClient, outcome: 'ok', le: '+Inf' })).toBeGreaterThanOrEqual(dialsBefore + flushed);
    expect(sample(scrape.text, 'tunnel_pool_handshake_duration_seconds_count', { ...defaultServer, outcome: 'ok' })).toBeGreaterThanOrEqual(handshakesBefore + flushed);
    expect(sample(scrape.text, 'tunnel_pool_drops_total', { ...defaultClient, reason: 'flush' })).toBe(flushed);

    // Closing the app removes the metrics from the registry it was given.
    await app.close();
    expect(registry.getSingleMetric('tunnel_pool_idle_streams')).toBeUndefined();
    expect(registry.getSingleMetric('tunnel_pool_dial_duration_seconds')).toBeUndefined();
  });

  it('serves the tunnel metrics of a TunnelModule with a live tunnel: a connection still open moves its bytes at each scrape', async () => {
    const KEY = 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU';
    const [publicPort] = (await freePorts(1)) as [number];
    const echo = net.createServer((socket) => socket.on('error', () => undefined).pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => echo.close(() => resolve())));
    const registry = new Registry();
    const moduleRef = await compile({
      imports: [
        PoolModule.forRoot({ name: 'edge', server: { host: '127.0.0.1', port: 0, auth: { key: [{ id: 'site-a', key: KEY }] } } }),
        TunnelModule.forRoot({ pool: 'edge', server: { allow: { rules: [{ clients: 'key:site-a', names: 'echo', ports: [publicPort] }] }, closeTimeout: 1000 } }),
        PoolMetricsModule.forRoot({ registry }),
      ],
    });
    const app = moduleRef.createNestApplication({ logger: false });
    cleanups.push(() => app.close());
    await app.listen(0, '127.0.0.1');
    const { port } = app.getHttpServer().address() as AddressInfo;
    const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

    // The tunnel client, outside the app: a client pool and a TunnelClient with one reverse route to the echo server.
    const pool = createClientPool({ address: `127.0.0.1:${app.get(getServerPoolToken('edge')).address()!.port}`, auth: { key: KEY }, minCap: 2, maxCap: 2 });
    const tunnelClient = new TunnelClient({ pool, routes: [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${(echo.address() as AddressInfo).port}` }], closeTimeout: 1000 });
    cleanups.push(async () => {
      await tunnelClient.close();
      await pool.close();
    });
    await tunnelClient.start();
    const server = app.get<TunnelServerService>(TUNNEL_SERVER);
    await eventually(() => server.clients.includes('key:site-a'), 5000, 'the client up on the server');

    const labels = { pool: 'edge', role: 'server', transport: 'tcp' };
    let text = await scrape();
    expect(sample(text, 'tunnel_pool_tunnel_control_up', { ...labels, client: 'key:site-a' })).toBe(1);
    expect(sample(text, 'tunnel_pool_up', labels)).toBe(1);

    const socket = net.connect(publicPort, '127.0.0.1');
    socket.on('error', () => undefined); // the close below resets it
    cleanups.push(() => void socket.destroy());
    socket.write(Buffer.alloc(3000, 1));
    await readBytes(socket, 3000, 10_000);
    text = await scrape();
    expect(sample(text, 'tunnel_pool_tunnel_connections_open', { ...labels, route: 'echo' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_received_bytes_total', { ...labels, route: 'echo' })).toBe(3000);
    socket.write(Buffer.alloc(2000, 2));
    await readBytes(socket, 2000, 10_000);
    text = await scrape();
    expect(sample(text, 'tunnel_pool_tunnel_received_bytes_total', { ...labels, route: 'echo' })).toBe(5000);
    expect(sample(text, 'tunnel_pool_tunnel_sent_bytes_total', { ...labels, route: 'echo' })).toBe(5000);
    expect(sample(text, 'tunnel_pool_tunnel_client_connections_open', { ...labels, client: 'key:site-a' })).toBe(1);
    expect(sample(text, 'tunnel_pool_tunnel_open_latency_seconds_count', { ...labels, route: 'echo' })).toBe(1);

    await app.close();
    expect(registry.getSingleMetric('tunnel_pool_tunnel_connections_open')).toBeUndefined();
  });

  it('with path: false serves no route and plugs into the default registry beside the application metrics', async () => {
    @Controller('ops')
    class OpsController {
      constructor(private readonly metrics: PoolMetricsService) {}
      @Get('prom')
      async prom(): Promise<string> {
        return (await this.metrics.scrape()).body;
      }
    }
    @Module({ controllers: [OpsController] })
    class OpsModule {}

    const { app, get } = await metricsApp({ path: false, isGlobal: true }, [OpsModule]);
    expect((await get('/metrics')).status).toBe(404);
    await app.get(ClientPoolService).waitForActive(1, 5000);
    const { text } = await get('/ops/prom');
    expect(sample(text, 'tunnel_pool_up', { pool: 'default', role: 'client' })).toBe(1);
    expect(register.getSingleMetric('tunnel_pool_up')).toBeDefined();
  });

  it('rejects a bad option at once, naming it', () => {
    expect(() => PoolMetricsModule.forRoot({ path: 3 as unknown as string })).toThrow(expect.objectContaining({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'PoolMetricsModule.forRoot.path' }));
    expect(() => PoolMetricsModule.forRoot({ registy: new Registry() } as PoolMetricsModuleOptions)).toThrow(expect.objectContaining({ code: 'POOL_ERR_INVALID_OPTIONS' }));
  });
});
