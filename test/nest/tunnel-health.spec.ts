import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, Query, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PoolModule, SERVER_POOL, TunnelClientService, TunnelModule, TunnelServerService, type PoolModuleOptions, type ServerPoolService } from '../../lib/index.js';
import { PoolHealthModule, TunnelHealthIndicator, type TunnelSide } from '../../lib/nest/health/index.js';
import { freePorts } from '../support/net.js';
import { compile, loopback } from './support/nest.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** GET /health?side=client|server: one Terminus check of the default tunnel. */
@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly tunnel: TunnelHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(@Query('side') side?: TunnelSide) {
    return this.health.check([() => this.tunnel.isHealthy('tunnel', side ? { side } : {})]);
  }
}

@Module({ imports: [PoolHealthModule], controllers: [HealthController] })
class HealthModule {}

function getJson(port: number, path: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString() || 'null') }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** An HTTP app on 127.0.0.1:0 with the pool, the tunnel and GET /health. */
async function app(pool: PoolModuleOptions, tunnel: Parameters<typeof TunnelModule.forRoot>[0], bind?: (app: INestApplication) => void): Promise<{ app: INestApplication; health(path?: string): Promise<{ status: number; body: any }> }> {
  const moduleRef = await compile({ imports: [PoolModule.forRoot(pool), TunnelModule.forRoot(tunnel), HealthModule] });
  const nest = moduleRef.createNestApplication({ logger: false });
  cleanups.push(() => nest.close());
  bind?.(nest);
  await nest.listen(0, '127.0.0.1');
  const { port } = nest.getHttpServer().address() as AddressInfo;
  return { app: nest, health: (path = '/health') => getJson(port, path) };
}

/** Polls GET /health until `accept` holds (bounded). */
async function healthUntil(check: (path?: string) => Promise<{ status: number; body: any }>, accept: (r: { status: number; body: any }) => boolean, path?: string): Promise<{ status: number; body: any }> {
  let last: { status: number; body: any } | undefined;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    last = await check(path);
    if (accept(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`health never reached the expected state; last: ${JSON.stringify(last)}`);
}

describe('TunnelHealthIndicator', () => {
  it('up while both ends can carry a connection; the server end down once its client lost the control channel', async () => {
    const [publicPort] = (await freePorts(1)) as [number];
    const server = await app(
      { server: { host: '127.0.0.1', port: 0 } },
      { server: { allow: { rules: [{ ports: [publicPort] }] }, closeTimeout: 1000 } },
    );
    const poolPort = server.app.get<ServerPoolService>(SERVER_POOL).address()!.port;
    const client = await app(
      { client: { address: `127.0.0.1:${poolPort}`, minCap: 3, maxCap: 4, minIvl: 20, maxIvl: 100 } },
      { client: { routes: [{ name: 'web', serverPort: publicPort, target: '127.0.0.1:9' }], closeTimeout: 1000 } },
    );
    await client.app.get(TunnelClientService).whenUp(15_000);

    const clientUp = await healthUntil(client.health, (r) => r.status === 200);
    expect(clientUp.body.info.tunnel).toMatchObject({ status: 'up', client: { control: 'up', routes: [{ name: 'web', status: 'accepted', port: publicPort }] } });
    expect(clientUp.body.info.tunnel.client.ready).toBeGreaterThan(0);
    const serverUp = await healthUntil(server.health, (r) => r.status === 200);
    expect(serverUp.body.info.tunnel.server.clients).toEqual({ anonymous: { control: 'up', ready: expect.any(Number), routes: [{ name: 'web', port: publicPort }] } });
    // No key, no stream ID in the payload.
    expect(JSON.stringify(serverUp.body) + JSON.stringify(clientUp.body)).not.toMatch(/"[0-9a-f]{8}"/);

    const gone = new Promise<void>((resolve) => server.app.get(TunnelServerService).events$.subscribe((e) => e.type === 'client-down' && resolve()));
    await client.app.close();
    await gone;
    const serverDown = await server.health();
    expect(serverDown.status).toBe(503);
    expect(serverDown.body.error.tunnel).toMatchObject({ status: 'down', message: 'client anonymous has no control channel', server: { clients: { anonymous: { control: 'down' } } } });
  }, 40_000);

  it('down (503) on both ends when the server speaks ws and the client tcp: every dial fails, no control channel', async () => {
    const server = await app(
      { server: { transport: 'ws', host: '127.0.0.1', port: 0 } },
      { server: { allow: { rules: [{ ports: ['20000-60000'] }] } } },
    );
    const poolPort = server.app.get<ServerPoolService>(SERVER_POOL).address()!.port;
    const client = await app(
      { client: { transport: 'tcp', address: `127.0.0.1:${poolPort}`, handshakeTimeout: 300, minCap: 1, maxCap: 2, minIvl: 50, maxIvl: 200 } },
      { client: { routes: [{ name: 'web', target: '127.0.0.1:9' }], helloTimeout: 500, reconnect: { minDelay: 100, maxDelay: 500 } } },
    );

    const clientDown = await healthUntil(client.health, (r) => r.status === 503 && /dial round/.test(r.body?.error?.tunnel?.message ?? ''));
    expect(clientDown.body.error.tunnel).toMatchObject({ status: 'down', client: { control: 'down', ready: 0 } });
    expect(clientDown.body.error.tunnel.message).toMatch(/the tunnel client's pool has no ready stream and its last \d+ dial rounds? failed \(POOL_ERR_/);
    expect(clientDown.body.error.tunnel.message).toMatch(/the tunnel client has no control channel/);
    expect(client.app.get(TunnelClientService).connected).toBe(false);

    const serverDown = await server.health();
    expect(serverDown.status).toBe(503);
    expect(serverDown.body.error.tunnel).toMatchObject({ status: 'down', message: 'no tunnel client has a control channel' });
  }, 40_000);

  it('down for an end the registration does not configure, saying so', async () => {
    const loop = loopback();
    const only = await app(
      { server: { host: '127.0.0.1', port: 0 }, client: { addressResolver: loop.addressResolver, minCap: 1, maxCap: 1 } },
      { server: { allow: { rules: [] } } },
      (nest) => loop.bind(() => nest.get<ServerPoolService>(SERVER_POOL)),
    );
    const client = await only.health('/health?side=client');
    expect(client.status).toBe(503);
    expect(client.body.error.tunnel.message).toBe("no tunnel client is configured for tunnel 'default'");
  }, 20_000);
});
