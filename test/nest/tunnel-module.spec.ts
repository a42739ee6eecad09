import { afterEach, describe, expect, it } from '@jest/globals';
import { Controller, Get, Injectable, Module } from '@nestjs/common';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { firstValueFrom, filter, toArray, type Observable } from 'rxjs';
import {
  InjectTunnelClient,
  InvalidOptionsError,
  PoolModule,
  SERVER_POOL,
  ServerPoolService,
  TUNNEL_CLIENT,
  TUNNEL_SERVER,
  TunnelClientService,
  TunnelModule,
  TunnelServerService,
  getServerPoolToken,
  getTunnelServerToken,
  type TunnelClientEvent,
  type TunnelModuleOptions,
  type TunnelServerEvent,
} from '../../lib/index.js';
import { freePorts } from '../support/net.js';
import { compile, errorOf, loopback } from './support/nest.js';

const KEY = 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** The first event of `type` on `events$`. */
function next<E extends { type: string }, T extends E['type']>(events$: Observable<E>, type: T): Promise<Extract<E, { type: T }>> {
  return firstValueFrom(events$.pipe(filter((event): event is Extract<E, { type: T }> => event.type === type)));
}

/** The client app's own HTTP API, which the tunnel exposes on the server app's public port. */
@Controller()
class HelloController {
  constructor(@InjectTunnelClient() private readonly tunnel: TunnelClientService) {}

  @Get('hello')
  hello(): string {
    return `hello from the client app (control channel up: ${this.tunnel.connected})`;
  }
}

/** For useClass (built inside the tunnel module) and useExisting (taken from TunnelConfigModule). */
@Injectable()
class TunnelConfigService {
  createTunnelOptions(): TunnelModuleOptions {
    return { name: 'edge', pool: 'edge-pool', server: { allow: { rules: [{ names: 'web', ports: ['20000-60000'] }] } } };
  }
}
@Module({ providers: [TunnelConfigService], exports: [TunnelConfigService] })
class TunnelConfigModule {}

const TUNNEL_SETTINGS = 'TEST_TUNNEL_SETTINGS';
@Module({ providers: [{ provide: TUNNEL_SETTINGS, useValue: { route: 'web' } }], exports: [TUNNEL_SETTINGS] })
class SettingsModule {}

describe('TunnelModule', () => {
  it('a reverse route carries an HTTP request from one Nest app to another; events$ reports up, opened and closed with the figures', async () => {
    const [publicPort, httpPort] = (await freePorts(2)) as [number, number];

    // The server app: a server pool, and the tunnel server over it (forRoot).
    const serverRef = await compile({
      imports: [
        PoolModule.forRoot({ server: { host: '127.0.0.1', port: 0, auth: { key: [{ id: 'site-a', key: KEY }] } } }),
        TunnelModule.forRoot({ server: { allow: { rules: [{ clients: 'key:site-a', names: 'web', ports: [publicPort] }] }, closeTimeout: 2000 } }),
      ],
    });
    const serverApp = serverRef.createNestApplication({ logger: false });
    cleanups.push(() => serverApp.close());
    const server = serverApp.get<TunnelServerService>(TUNNEL_SERVER);
    expect(serverApp.get(TunnelServerService)).toBe(server);
    const serverEvents: TunnelServerEvent[] = [];
    const serverDone = firstValueFrom(server.events$.pipe(toArray()));
    server.events$.subscribe((event) => serverEvents.push(event));
    const clientUp = next(server.events$, 'client-up');
    await serverApp.init();
    const poolPort = serverApp.get<ServerPoolService>(SERVER_POOL).address()!.port;

    // The client app: its HTTP API on httpPort, a client pool (forRootAsync) and the tunnel client (forRootAsync with a factory).
    const clientRef = await compile({
      imports: [
        PoolModule.forRootAsync({ useFactory: () => ({ client: { address: `127.0.0.1:${poolPort}`, auth: { key: KEY }, minCap: 2, maxCap: 4, minIvl: 20, maxIvl: 100 } }) }),
        TunnelModule.forRootAsync({
          imports: [SettingsModule],
          inject: [TUNNEL_SETTINGS],
          useFactory: async (settings: { route: string }): Promise<TunnelModuleOptions> => ({
            client: { routes: [{ name: settings.route, serverPort: publicPort, target: `127.0.0.1:${httpPort}` }], closeTimeout: 2000 },
          }),
        }),
      ],
      controllers: [HelloController],
    });
    const clientApp = clientRef.createNestApplication({ logger: false });
    cleanups.push(() => clientApp.close());
    const client = clientApp.get<TunnelClientService>(TUNNEL_CLIENT);
    const clientDone = firstValueFrom(client.events$.pipe(toArray()));
    await clientApp.listen(httpPort, '127.0.0.1');

    const routes = await client.whenUp(15_000);
    expect(routes).toEqual([expect.objectContaining({ name: 'web', accepted: true, port: publicPort })]);
    expect((await clientUp).client).toBe('key:site-a');
    expect(server.clients).toEqual(['key:site-a']);
    expect(server.routesOf('key:site-a')).toEqual([{ name: 'web', direction: 'reverse', port: publicPort }]);

    const closed = next(server.events$, 'connection-closed');
    const reply = await get(publicPort, '/hello');
    expect(reply).toEqual({ status: 200, body: 'hello from the client app (control channel up: true)' });
    const event = await closed;
    expect(event).toMatchObject({ tunnel: 'default', client: 'key:site-a', route: 'web' });
    expect(event.id).toMatch(/^[0-9a-f]{8}$/);
    expect(event.result.aToB.bytes).toBeGreaterThan(0); // the request
    expect(event.result.bToA.bytes).toBeGreaterThan(reply.body.length); // the response, headers and body
    expect(serverEvents.map((e) => e.type)).toEqual(expect.arrayContaining(['client-up', 'connection-opened', 'connection-closed']));
    expect(server.stats.routes['web']).toMatchObject({ total: 1, open: 0 });
    expect(client.stats.routes['web']).toMatchObject({ total: 1 });

    // Shutdown completes both streams; nothing is left open (Jest runs without --forceExit).
    await clientApp.close();
    await serverApp.close();
    const clientEvents = await clientDone;
    expect(clientEvents.map((e) => e.type)).toEqual(expect.arrayContaining(['up', 'connection-opened', 'connection-closed']));
    expect((await serverDone).map((e) => e.type)).toContain('client-down');
  }, 30_000);

  it('shutdown drains the tunnel before the pools close: a connection in flight finishes though the pools cut theirs after 50 ms', async () => {
    const target = http.createServer((req, res) => {
      // Answers late: the application closes meanwhile.
      setTimeout(() => {
        res.setHeader('connection', 'close');
        res.end('late but whole');
      }, 600);
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const targetPort = (target.address() as AddressInfo).port;
    const loop = loopback();
    const moduleRef = await compile({
      imports: [
        PoolModule.forRoot({
          shutdownTimeout: 50,
          server: { host: '127.0.0.1', port: 0 },
          client: { addressResolver: loop.addressResolver, minCap: 2, maxCap: 4, minIvl: 20, maxIvl: 100 },
        }),
        TunnelModule.forRoot({
          server: { allow: { rules: [{ ports: ['20000-60000'] }] }, closeTimeout: 5000 },
          client: { routes: [{ name: 'slow', target: `127.0.0.1:${targetPort}` }], closeTimeout: 5000 },
        }),
      ],
    });
    const app = moduleRef.createNestApplication({ logger: false });
    let closing: Promise<void> | undefined;
    cleanups.push(async () => {
      await (closing ?? app.close());
    });
    loop.bind(() => app.get<ServerPoolService>(SERVER_POOL));
    await app.init();
    const client = app.get(TunnelClientService);
    const [route] = await client.whenUp(15_000);
    const server = app.get<TunnelServerService>(getTunnelServerToken());
    // In flight: both ends forward it (the client end has joined the target to its pooled stream).
    const opened = Promise.all([next(server.events$, 'connection-opened'), next(client.events$, 'connection-opened')]);
    const reply = get(route!.port!, '/');
    await opened;
    closing = app.close();
    expect(await reply).toEqual({ status: 200, body: 'late but whole' });
    await closing;
  }, 30_000);

  it('the client end keeps trying until the server end is there (bootstrap does not wait for it)', async () => {
    const [poolPort] = (await freePorts(1)) as [number];
    const clientRef = await compile({
      imports: [
        PoolModule.forRoot({ client: { address: `127.0.0.1:${poolPort}`, minCap: 1, maxCap: 2, minIvl: 20, maxIvl: 50 } }),
        TunnelModule.forRoot({ client: { routes: [{ name: 'web', target: '127.0.0.1:9' }], helloTimeout: 300, reconnect: { minDelay: 50, maxDelay: 200 } } }),
      ],
    });
    const clientApp = clientRef.createNestApplication({ logger: false });
    cleanups.push(() => clientApp.close());
    const client = clientApp.get(TunnelClientService);
    const failed = next(client.events$, 'connect-failed');
    await clientApp.init(); // returns at once, with no server anywhere
    expect(client.connected).toBe(false);
    expect((await failed).error).toMatchObject({ code: 'POOL_ERR_TIMEOUT' });

    const serverRef = await compile({
      imports: [
        PoolModule.forRoot({ server: { host: '127.0.0.1', port: poolPort } }),
        TunnelModule.forRoot({ server: { allow: { rules: [{ ports: ['20000-60000'] }] } } }),
      ],
    });
    const serverApp = serverRef.createNestApplication({ logger: false });
    cleanups.push(() => serverApp.close());
    await serverApp.init();
    const routes = await client.whenUp(15_000);
    expect(routes[0]).toMatchObject({ name: 'web', accepted: true });
  }, 30_000);

  it.each([
    ['useClass', () => TunnelModule.forRootAsync({ name: 'edge', useClass: TunnelConfigService })],
    ['useExisting', () => TunnelModule.forRootAsync({ name: 'edge', imports: [TunnelConfigModule], useExisting: TunnelConfigService })],
  ])('forRootAsync with %s: a named tunnel over a named pool, injected by its token', async (_style, module) => {
    const moduleRef = await compile({ imports: [PoolModule.forRoot({ name: 'edge-pool', server: { host: '127.0.0.1', port: 0 } }), module()] });
    cleanups.push(() => moduleRef.close());
    await moduleRef.init();
    const server = moduleRef.get<TunnelServerService>(getTunnelServerToken('edge'));
    expect(server.name).toBe('edge');
    expect(server.configured).toBe(true);
    expect(server.tunnel.pool).toBe(moduleRef.get<ServerPoolService>(getServerPoolToken('edge-pool')).pool);
    expect(server.clients).toEqual([]);
  });

  describe('options are validated with typed errors naming the option', () => {
    const cases: Array<[string, unknown, string]> = [
      ['neither end', {}, 'server'],
      ['a server without an allowlist', { server: {} }, 'server.allow'],
      ['a bad allowlist rule', { server: { allow: { rules: [{ ports: ['nope'] }] } } }, 'server.allow.rules[0].ports[0]'],
      ['a client route without a target', { client: { routes: [{ name: 'web' }] } }, 'client.routes[0].target'],
      ['an unknown key', { server: { allow: { rules: [] } }, sever: 1 }, 'sever'],
      ['an unknown server key', { server: { allow: { rules: [] }, closeTimeut: 5 } }, 'server.closeTimeut'],
      ['earlyData that is not a boolean', { server: { allow: { rules: [] }, earlyData: 'yes' } }, 'server.earlyData'],
      ['a bad back-off', { client: { routes: [], reconnect: { minDelay: 500, maxDelay: 100 } } }, 'client.reconnect.maxDelay'],
    ];
    for (const [what, options, option] of cases) {
      it(`${what}: forRoot and forRootAsync fail the same way (${option})`, async () => {
        for (const module of [TunnelModule.forRoot(options as TunnelModuleOptions), TunnelModule.forRootAsync({ useFactory: () => options as TunnelModuleOptions })]) {
          const error = await errorOf(() => compile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), module] }));
          expect(error).toBeInstanceOf(InvalidOptionsError);
          expect(error.option).toBe(option);
        }
      });
    }

    it('two tunnels with one name in an application fail at start-up (POOL_ERR_DUPLICATE_POOL)', async () => {
      const twice = () => TunnelModule.forRoot({ name: 'edge', pool: 'default', server: { allow: { rules: [] } } });
      const error = await errorOf(() => compile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), twice(), twice()] }));
      expect(error.code).toBe('POOL_ERR_DUPLICATE_POOL');
      expect(error.message).toMatch(/2 TunnelModule registrations use the tunnel name 'edge'/);
    });

    it('forRootAsync without exactly one of useFactory, useClass, useExisting is refused at once', () => {
      expect(() => TunnelModule.forRootAsync({} as never)).toThrow(InvalidOptionsError);
      expect(() => TunnelModule.forRootAsync({} as never)).toThrow(/useFactory, useClass or useExisting/);
    });

    it('a tunnel over a pool that is not registered, or has not that side, fails the start-up naming the fix', async () => {
      const missing = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), TunnelModule.forRoot({ pool: 'edge', server: { allow: { rules: [] } } })] });
      const error = await errorOf(() => missing.init());
      expect(error).toBeInstanceOf(InvalidOptionsError);
      expect(error.option).toBe('pool');
      expect(error.message).toMatch(/PoolModule registration 'edge', which is not registered: register it with PoolModule.forRoot\(\{ name: 'edge', server/);
      await missing.close();

      const sideless = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), TunnelModule.forRoot({ client: { routes: [] } })] });
      const other = await errorOf(() => sideless.init());
      expect(other.message).toMatch(/needs a client pool, and PoolModule registration 'default' has none/);
      await sideless.close();
    });
  });
});
