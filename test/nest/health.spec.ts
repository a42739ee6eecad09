import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, Query, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import type { AddressInfo } from 'node:net';
import {
  ClientPoolService,
  getServerPoolToken,
  PoolModule,
  SERVER_POOL,
  ServerPoolService,
  type PoolModuleOptions,
} from '../../lib/index.js';
import { PoolHealthIndicator, PoolHealthModule, type PoolHealthCheckOptions } from '../../lib/nest/health/index.js';
import { eventually } from '../support/net.js';
import { compile, fastClient, loopback } from './support/nest.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** GET /health?pool=client|server&minActive=n&name=x: one Terminus check of the pool. */
@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly pools: PoolHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(@Query('pool') pool?: 'client' | 'server', @Query('minActive') minActive?: string, @Query('name') name?: string) {
    const options: PoolHealthCheckOptions = {
      ...(pool ? { pool } : {}),
      ...(name ? { name } : {}),
      ...(minActive ? { minActive: Number(minActive) } : {}),
    };
    return this.health.check([() => this.pools.isHealthy('tunnel', options)]);
  }
}

@Module({ imports: [TerminusModule, PoolHealthModule], controllers: [HealthController] })
class HealthModule {}

interface HealthApp {
  app: INestApplication;
  get(query?: string): Promise<{ status: number; body: any }>;
}

/** An HTTP app on 127.0.0.1:0 with the pool registrations given and GET /health. */
async function healthApp(pools: (bindTo: (loop: ReturnType<typeof loopback>, token: string) => void) => PoolModuleOptions[]): Promise<HealthApp> {
  const bindings: Array<[ReturnType<typeof loopback>, string]> = [];
  const registrations = pools((loop, token) => bindings.push([loop, token]));
  const moduleRef = await compile({ imports: [...registrations.map((options) => PoolModule.forRoot(options)), HealthModule] });
  const app = moduleRef.createNestApplication({ logger: false });
  cleanups.push(() => app.close());
  for (const [loop, token] of bindings) loop.bind(() => app.get(token));
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return {
    app,
    get: async (query = '') => {
      const response = await fetch(`http://127.0.0.1:${port}/health${query}`);
      return { status: response.status, body: await response.json() };
    },
  };
}

/** Both sides of the default pool in one app, the client dialing the server. */
function bothSides(bind: (loop: ReturnType<typeof loopback>, token: string) => void): PoolModuleOptions[] {
  const loop = loopback();
  bind(loop, SERVER_POOL);
  return [{ server: { port: 0 }, client: fastClient(loop.addressResolver, 2) }];
}

describe('GET /health with PoolHealthIndicator', () => {
  it('is up (200) with idle streams on both sides, with both snapshots as details', async () => {
    const { app, get } = await healthApp(bothSides);
    await app.get(ClientPoolService).waitForActive(2, 5000);
    await eventually(() => app.get(ServerPoolService).active === 2);

    const { status, body } = await get();
    expect(status).toBe(200);
    expect(body.status).toBe('ok');
    expect(body.details.tunnel).toMatchObject({
      status: 'up',
      client: { role: 'client', state: 'running', active: 2 },
      server: { role: 'server', state: 'running', active: 2 },
    });

    const one = await get('?pool=server&minActive=2');
    expect([one.status, one.body.details.tunnel.status, one.body.details.tunnel.role]).toEqual([200, 'up', 'server']);
  });

  it('is degraded (still 200) when a pool is ready but has no idle stream', async () => {
    const { get } = await healthApp(() => [{ server: { port: 0 } }]);
    const { status, body } = await get();
    expect(status).toBe(200);
    expect(body.status).toBe('degraded');
    expect(body.details.tunnel).toMatchObject({ status: 'degraded', server: { active: 0 }, message: 'server pool is ready but has no idle stream' });
    expect(body.details.tunnel.client).toBeUndefined(); // not configured: not checked
  });

  it('is down (503) when the pool is closed', async () => {
    const { app, get } = await healthApp(bothSides);
    await app.get(ClientPoolService).waitForActive(1, 5000);
    expect((await get()).status).toBe(200);

    await app.get(ServerPoolService).close();
    const { status, body } = await get();
    expect(status).toBe(503);
    expect(body.status).toBe('error');
    expect(body.error.tunnel).toMatchObject({ status: 'down', server: { state: 'closed' }, message: expect.stringContaining('server pool is not ready (state closed)') });
  });

  it('is down (503) when every dial fails: a tcp client against a ws server, with the failures in the message', async () => {
    const serverApp = await healthApp(() => [{ name: 'far', server: { transport: 'ws', port: 0, handshakeTimeout: 300 } }]);
    const { port } = serverApp.app.get<ServerPoolService>(getServerPoolToken('far')).address()!;
    const { app, get } = await healthApp(() => [{ client: { address: `127.0.0.1:${port}`, minCap: 2, minIvl: 20, maxIvl: 20, handshakeTimeout: 300 } }]);
    await eventually(() => app.get(ClientPoolService).pool.stats.failedRounds > 0, 10_000, 'a failed creation round');
    const { status, body } = await get('?pool=client');
    expect(status).toBe(503);
    expect(body.error.tunnel).toMatchObject({ status: 'down', role: 'client', active: 0 });
    expect(body.error.tunnel.message).toMatch(/^client pool has no idle stream and its last \d+ creation rounds? failed \(POOL_ERR_[A-Z_]+ ×\d+/);
    await serverApp.app.close();
  });

  it('is down (503) with minActive 1 once the client pool\'s server is gone', async () => {
    const serverApp = await healthApp(() => [{ name: 'far', server: { port: 0 } }]);
    const { port } = serverApp.app.get<ServerPoolService>(getServerPoolToken('far')).address()!;
    const { app, get } = await healthApp(() => [{ client: { address: `127.0.0.1:${port}`, minCap: 2, minIvl: 20, maxIvl: 20 } }]);
    await app.get(ClientPoolService).waitForActive(2, 5000);
    expect((await get('?pool=client&minActive=1')).status).toBe(200);

    await serverApp.app.close();
    await eventually(() => app.get(ClientPoolService).active === 0, 5000, 'the client pool to drop its streams');
    const { status, body } = await get('?pool=client&minActive=1');
    expect(status).toBe(503);
    expect(body.error.tunnel).toMatchObject({ status: 'down', role: 'client', active: 0, message: 'client pool has 0 idle streams, fewer than minActive 1' });
  });
});

describe('PoolHealthIndicator.isHealthy', () => {
  it('never throws: an unknown pool, an unconfigured side and bad options are down', async () => {
    const moduleRef = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, autoStart: false }), PoolHealthModule] });
    cleanups.push(() => moduleRef.close());
    await moduleRef.init();
    const indicator = moduleRef.get(PoolHealthIndicator);

    expect(await indicator.isHealthy('x', { name: 'nope' })).toEqual({
      x: { status: 'down', message: "no pool 'nope' is registered: import PoolModule.forRoot({ name: 'nope', ... }) in the application" },
    });
    expect(await indicator.isHealthy('x', { pool: 'client' })).toMatchObject({
      x: { status: 'down', state: 'unconfigured', message: "no client pool is configured for pool 'default'" },
    });
    expect(await indicator.isHealthy('x', { pool: 'server' })).toMatchObject({ x: { status: 'down', state: 'new', message: 'server pool is not ready (state new)' } });
    expect(await indicator.isHealthy('x', { minActive: -1 })).toMatchObject({ x: { status: 'down', message: expect.stringContaining('isHealthy.minActive') } });
    expect(await indicator.isHealthy('x', { pool: 'both' as never })).toMatchObject({ x: { status: 'down', message: expect.stringContaining('isHealthy.pool') } });

    await moduleRef.get(ServerPoolService).start();
    expect(await indicator.isHealthy('x')).toMatchObject({ x: { status: 'degraded' } });
  });
});
