import { describe, expect, it } from '@jest/globals';
import { Module } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { firstValueFrom } from 'rxjs';
import {
  CLIENT_POOL,
  ClientPoolService,
  getClientPoolToken,
  getServerPoolToken,
  PoolModule,
  SERVER_POOL,
  ServerPoolService,
} from '../../lib/index.js';
import {
  ConfigModule,
  DefaultPoolConsumer,
  FeatureModule,
  NamedPoolConsumer,
  optionsFrom,
  POOL_SETTINGS,
  PoolConfigModule,
  PoolConfigService,
  type PoolSettings,
} from './support/fixtures.js';
import { CapturingLogger, compile, errorOf, expectEcho, fastClient, loopback } from './support/nest.js';
import { useTestScope } from '../support/scope.js';

// Everything a test opens is closed after it, also when an assertion failed.
const scope = useTestScope();
function closes<T extends { close(): Promise<void> }>(closable: T): T {
  scope.defer(() => closable.close());
  return closable;
}
function destroys(...streams: Duplex[]): void {
  scope.defer(() => streams.forEach((stream) => stream.destroy()));
}

/** An initialised app with one default pool: a server on port 0 and a client dialing it. */
async function startDefaultPool(logger = new CapturingLogger()): Promise<TestingModule> {
  const loop = loopback();
  const moduleRef = closes(
    await compile(
      {
        imports: [PoolModule.forRoot({ server: { port: 0 }, client: fastClient(loop.addressResolver) })],
        providers: [DefaultPoolConsumer],
      },
      logger,
    ),
  );
  loop.bind(() => moduleRef.get(SERVER_POOL));
  await moduleRef.init();
  return moduleRef;
}

/** Takes one stream on each side, through `take`, and checks they are one connection. */
async function handOff(client: ClientPoolService, take: () => Promise<[string, Duplex]>): Promise<void> {
  const [id, serverSide] = await take();
  const clientSide = await client.outgoingGet(id, 2000);
  destroys(serverSide, clientSide);
  await expectEcho(clientSide, serverSide);
}

describe('tokens', () => {
  it('are readable strings, the default pool without a suffix', () => {
    expect(getClientPoolToken()).toBe('nestjs-tunnel-pool:CLIENT_POOL');
    expect(getClientPoolToken('default')).toBe('nestjs-tunnel-pool:CLIENT_POOL');
    expect(getClientPoolToken('billing')).toBe('nestjs-tunnel-pool:CLIENT_POOL:billing');
    expect(getServerPoolToken()).toBe('nestjs-tunnel-pool:SERVER_POOL');
    expect(getServerPoolToken('billing')).toBe('nestjs-tunnel-pool:SERVER_POOL:billing');
    expect(CLIENT_POOL).toBe(getClientPoolToken());
    expect(SERVER_POOL).toBe(getServerPoolToken());
  });
});

describe('PoolModule.forRoot', () => {
  it('provides the services by token and by class, started once, and hands a stream off through incoming$', async () => {
    const logger = new CapturingLogger();
    const moduleRef = await startDefaultPool(logger);
    const consumer = moduleRef.get(DefaultPoolConsumer);
    const client = moduleRef.get<ClientPoolService>(CLIENT_POOL);
    const server = moduleRef.get<ServerPoolService>(SERVER_POOL);
    expect(client).toBeInstanceOf(ClientPoolService);
    expect(server).toBeInstanceOf(ServerPoolService);
    expect(moduleRef.get(ClientPoolService)).toBe(client);
    expect(moduleRef.get(ServerPoolService)).toBe(server);
    expect(consumer.client).toBe(client);
    expect(consumer.clientByToken).toBe(client);
    expect(consumer.server).toBe(server);
    expect(consumer.serverByToken).toBe(server);
    expect([client.name, client.ready, server.ready]).toEqual(['default', true, true]);
    expect(client.pool.stats.name).toBe('default');
    // Provided under the token and the class, the pools still start once, server first.
    expect(logger.messages('log').filter((line) => line.includes('pool'))).toEqual([
      expect.stringMatching(/^server pool 'default' listening on 127\.0\.0\.1:\d+$/),
      "client pool 'default' started",
    ]);

    await handOff(client, () => firstValueFrom(server.incoming$));
  });

  it('hands a stream off through incomingGet and reports both sides in stats', async () => {
    const moduleRef = await startDefaultPool();
    const client = moduleRef.get(ClientPoolService);
    const server = moduleRef.get(ServerPoolService);
    await client.waitForActive(2, 2000);
    await handOff(client, () => server.incomingGet(2000));
    expect(server.stats).toMatchObject({ role: 'server', state: 'running', totals: { taken: 1 } });
    expect(client.stats).toMatchObject({ role: 'client', state: 'running', capacity: 2 });
    expect(client.capacity).toBe(2);
    expect(client.errorCount).toBe(0);
    expect(server.address()).toMatchObject({ address: '127.0.0.1' });
  });

  it('starts the server before the client, and a taken port fails the bootstrap with a clear error', async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const port = (blocker.address() as net.AddressInfo).port;
    const logger = new CapturingLogger();
    const moduleRef = closes(await compile({ imports: [PoolModule.forRoot({ server: { port }, client: { address: `127.0.0.1:${port}` } })] }, logger));

    const error = await errorOf(() => moduleRef.init());
    expect(error).toMatchObject({ code: 'POOL_ERR_LISTEN', option: 'server.port' });
    expect(error.message).toContain('EADDRINUSE');
    expect(logger.messages('error').join('\n')).toMatch(/server pool 'default' could not start/);
    // The client never started: nothing dialed the blocker.
    expect(moduleRef.get(ClientPoolService).stats).toMatchObject({ state: 'new', totals: { dials: 0 } });
  });

  it('gives streams the application took shutdownTimeout to finish, then cuts them with POOL_ERR_CLOSED', async () => {
    const logger = new CapturingLogger();
    const loop = loopback();
    const moduleRef = closes(await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, client: fastClient(loop.addressResolver), shutdownTimeout: 400 })] }, logger));
    loop.bind(() => moduleRef.get(SERVER_POOL));
    await moduleRef.init();
    const client = moduleRef.get(ClientPoolService);
    const [id, serverSide] = await moduleRef.get(ServerPoolService).incomingGet(2000);
    const clientSide = await client.outgoingGet(id, 2000);
    destroys(serverSide, clientSide);
    const errors: Array<string | undefined> = [];
    for (const stream of [serverSide, clientSide]) stream.on('error', (error: { code?: string }) => errors.push(error.code));

    let closedAt = 0;
    const shutdownStarted = Date.now();
    const shutdown = moduleRef.close().then(() => (closedAt = Date.now()));
    // While the application shuts down, its streams still carry data.
    await expectEcho(clientSide, serverSide);
    expect([serverSide.destroyed, clientSide.destroyed]).toEqual([false, false]);
    expect(client.stats.state).toBe('closing');

    await shutdown;
    expect(closedAt - shutdownStarted).toBeGreaterThanOrEqual(400);
    expect([serverSide.destroyed, clientSide.destroyed]).toEqual([true, true]);
    // Both pools cut at the same deadline, each with POOL_ERR_CLOSED. Their two timers may fire in two turns of
    // the event loop: then the first cut's reset reaches the other stream before its own pool cuts it, and that
    // stream fails with the peer's ECONNRESET (seen once on Node 26 in CI). Either way each stream ends in an
    // error, never a clean end, and at least one of them by its own pool's cut.
    expect(errors).toHaveLength(2);
    expect(errors).toContain('POOL_ERR_CLOSED');
    for (const code of errors) expect(['POOL_ERR_CLOSED', 'ECONNRESET']).toContain(code);
    expect(client.stats).toMatchObject({ state: 'closed', inUse: 0 });
    // The core's own bound ended the close, not the module's guard.
    expect(logger.messages('warn')).toEqual([]);
  });

  it('finishes shutting down as soon as the streams the application took have closed', async () => {
    const loop = loopback();
    const moduleRef = closes(await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, client: fastClient(loop.addressResolver), shutdownTimeout: 60_000 })] }));
    loop.bind(() => moduleRef.get(SERVER_POOL));
    await moduleRef.init();
    const [id, serverSide] = await moduleRef.get(ServerPoolService).incomingGet(2000);
    const clientSide = await moduleRef.get(ClientPoolService).outgoingGet(id, 2000);
    destroys(serverSide, clientSide);
    let closed = false;
    const shutdown = moduleRef.close().then(() => (closed = true));
    await expectEcho(clientSide, serverSide);
    expect(closed).toBe(false);
    serverSide.destroy();
    clientSide.destroy();
    await shutdown; // the test's own timeout (30 s) is half shutdownTimeout
    expect(moduleRef.get(ServerPoolService).stats).toMatchObject({ state: 'closed', inUse: 0 });
  });

  it('never throws on shutdown: a close that hangs is cut at shutdownTimeout and logged', async () => {
    const logger = new CapturingLogger();
    const moduleRef = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, shutdownTimeout: 50 })] }, logger);
    await moduleRef.init();
    const pool = moduleRef.get(ServerPoolService).pool;
    const realClose = pool.close.bind(pool);
    scope.defer(() => realClose());
    pool.close = () => new Promise<void>(() => undefined);

    const started = Date.now();
    await moduleRef.close();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(logger.messages('warn').join('\n')).toMatch(/pool 'default' did not close within shutdownTimeout \(50 ms\)/);
  });

  it('closes safely when the pools never started', async () => {
    const logger = new CapturingLogger();
    const moduleRef = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, client: { address: '127.0.0.1:9' }, autoStart: false })] }, logger);
    await moduleRef.init();
    await moduleRef.close();
    expect(moduleRef.get(ServerPoolService).stats.state).toBe('closed');
    expect(moduleRef.get(ClientPoolService).stats.state).toBe('closed');
    expect(logger.messages('error')).toEqual([]);
  });
});

describe('autoStart: false', () => {
  it('leaves the pools unstarted until started by hand', async () => {
    const loop = loopback();
    const moduleRef = closes(
      await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, client: fastClient(loop.addressResolver), autoStart: false })] }),
    );
    loop.bind(() => moduleRef.get(SERVER_POOL));
    await moduleRef.init();
    const client = moduleRef.get(ClientPoolService);
    const server = moduleRef.get(ServerPoolService);
    expect([client.ready, server.ready, server.address()]).toEqual([false, false, null]);
    await expect(server.incomingGet(10)).rejects.toMatchObject({ code: 'POOL_ERR_NOT_STARTED' });
    await expect(client.outgoingGet('0000abcd', 10)).rejects.toMatchObject({ code: 'POOL_ERR_NOT_STARTED' });

    await server.start();
    client.start();
    expect([client.ready, server.ready]).toEqual([true, true]);
    await handOff(client, () => server.incomingGet(2000));
  });
});

describe('a registration with one side only', () => {
  it('still provides the other service, which says it is not configured', async () => {
    const moduleRef = closes(await compile({ imports: [PoolModule.forRoot({ name: 'solo', server: { port: 0 } })] }));
    await moduleRef.init();
    const client = moduleRef.get<ClientPoolService>(getClientPoolToken('solo'));
    const message = "invalid option client: no client pool is configured for pool 'solo': add client to its PoolModule options";

    expect([client.configured, client.ready, client.active, client.capacity, client.errorCount]).toEqual([false, false, 0, 0, 0]);
    expect(client.stats).toEqual({ role: 'client', name: 'solo', configured: false, state: 'unconfigured', ready: false, active: 0, message: "no client pool is configured for pool 'solo'" });
    await expect(client.outgoingGet('0000abcd')).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', message });
    await expect(client.waitForActive()).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS' });
    expect(() => client.flush()).toThrow(message);
    expect(() => client.start()).toThrow(message);
    expect(() => client.pool).toThrow(message);
    expect(moduleRef.get<ServerPoolService>(getServerPoolToken('solo')).ready).toBe(true);
  });
});

describe('PoolModule.forRootAsync', () => {
  async function serverMaxCapOf(imports: Parameters<typeof compile>[0]['imports']): Promise<number> {
    const moduleRef = closes(await compile({ imports }));
    await moduleRef.init();
    const server = moduleRef.get<ServerPoolService>(SERVER_POOL);
    expect(server.ready).toBe(true);
    return server.pool.options.maxCap;
  }

  it('useFactory with inject and imports (a config module)', async () => {
    const module = PoolModule.forRootAsync({
      imports: [ConfigModule],
      inject: [POOL_SETTINGS],
      useFactory: async (settings: PoolSettings) => optionsFrom(settings),
    });
    expect(await serverMaxCapOf([module])).toBe(7);
  });

  it('useClass: the factory class is built inside the pool module', async () => {
    const before = PoolConfigService.created;
    expect(await serverMaxCapOf([PoolModule.forRootAsync({ imports: [ConfigModule], useClass: PoolConfigService })])).toBe(7);
    expect(PoolConfigService.created).toBe(before + 1);
  });

  it('useExisting: the factory comes from an imported module, not built again', async () => {
    const before = PoolConfigService.created;
    expect(await serverMaxCapOf([PoolModule.forRootAsync({ imports: [PoolConfigModule], useExisting: PoolConfigService })])).toBe(7);
    expect(PoolConfigService.created).toBe(before + 1); // the one of PoolConfigModule
  });

  it('extraProviders: providers only the factory needs', async () => {
    const module = PoolModule.forRootAsync({
      extraProviders: [{ provide: POOL_SETTINGS, useValue: { serverMaxCap: 9 } }],
      inject: [POOL_SETTINGS],
      useFactory: optionsFrom,
    });
    expect(await serverMaxCapOf([module])).toBe(9);
  });

  it('isGlobal: a feature module injects the pools without importing PoolModule', async () => {
    const global = closes(
      await compile({ imports: [PoolModule.forRootAsync({ isGlobal: true, useFactory: () => ({ server: { port: 0 } }) }), FeatureModule] }),
    );
    expect(global.get(DefaultPoolConsumer).server).toBe(global.get(SERVER_POOL));
    const alsoForRoot = closes(await compile({ imports: [PoolModule.forRoot({ isGlobal: true, server: { port: 0 } }), FeatureModule] }));
    expect(alsoForRoot.get(DefaultPoolConsumer).client).toBe(alsoForRoot.get(CLIENT_POOL));

    // Without isGlobal the feature module cannot see them.
    const error = await errorOf(() => compile({ imports: [PoolModule.forRootAsync({ useFactory: () => ({ server: { port: 0 } }) }), FeatureModule] }));
    expect(error.message).toMatch(/DefaultPoolConsumer/);
  });

  it.each([
    ['none', {}, 'got none'],
    ['imports only', { imports: [ConfigModule] }, 'got none'],
    ['two', { useFactory: () => ({}), useClass: PoolConfigService }, 'got useFactory and useClass'],
  ])('rejects a config with %s of useFactory/useClass/useExisting at once', (_label, options, got) => {
    expect(() => PoolModule.forRootAsync(options as never)).toThrow(
      expect.objectContaining({
        code: 'POOL_ERR_INVALID_OPTIONS',
        message: expect.stringMatching(new RegExp(`needs exactly one of useFactory, useClass or useExisting.*${got}`)),
      }),
    );
  });

  it('rejects a misspelt async key at once, with a suggestion', () => {
    expect(() => PoolModule.forRootAsync({ useFactroy: () => ({}) } as never)).toThrow(/invalid option useFactroy: unknown option \(did you mean "useFactory"\?\)/);
  });
});

describe('named pools', () => {
  it('resolve by name; the class token belongs to the default pool only', async () => {
    const loop = loopback();
    const moduleRef = closes(
      await compile({
        imports: [
          PoolModule.forRoot({ name: 'a', server: { port: 0 }, client: fastClient(loop.addressResolver) }),
          PoolModule.forRootAsync({ name: 'b', useFactory: () => ({ name: 'b', server: { port: 0 } }) }),
        ],
        providers: [NamedPoolConsumer],
      }),
    );
    loop.bind(() => moduleRef.get(getServerPoolToken('a')));
    await moduleRef.init();
    const consumer = moduleRef.get(NamedPoolConsumer);

    expect([consumer.clientA.name, consumer.serverA.name, consumer.serverB.name]).toEqual(['a', 'a', 'b']);
    expect(consumer.serverA.address()!.port).not.toBe(consumer.serverB.address()!.port);
    expect([consumer.clientA.configured, consumer.clientB.configured]).toEqual([true, false]);
    expect(() => moduleRef.get(ClientPoolService)).toThrow();
    await handOff(consumer.clientA, () => consumer.serverA.incomingGet(2000));
    expect(consumer.serverB.stats).toMatchObject({ totals: { accepted: 0 } });
  });

  it.each([
    ['two forRoot', () => [PoolModule.forRoot({ name: 'a', server: { port: 0 } }), PoolModule.forRoot({ name: 'a', client: { address: '127.0.0.1:9' } })]],
    ['forRoot and forRootAsync', () => [PoolModule.forRoot({ name: 'a', server: { port: 0 } }), PoolModule.forRootAsync({ name: 'a', useFactory: () => ({ server: { port: 0 } }) })]],
    ['unnamed and "default"', () => [PoolModule.forRoot({ server: { port: 0 } }), PoolModule.forRoot({ name: 'default', server: { port: 0 } })]],
  ])('two registrations with one name (%s) are a DuplicatePoolError', async (_label, imports) => {
    @Module({ imports: [imports()[1]!] })
    class OtherModule {}
    const error = await errorOf(() => compile({ imports: [imports()[0]!, OtherModule] }));
    expect(error).toMatchObject({ code: 'POOL_ERR_DUPLICATE_POOL', name: 'DuplicatePoolError' });
    expect(error.message).toMatch(/registrations use the pool name '(a|default)' in one application/);
  });

  it('is checked per application: two apps in one process may use the same name', async () => {
    const first = closes(await compile({ imports: [PoolModule.forRoot({ name: 'a', server: { port: 0 } })] }));
    const second = closes(await compile({ imports: [PoolModule.forRoot({ name: 'a', server: { port: 0 } })] }));
    await Promise.all([first.init(), second.init()]);
    const [one, two] = [first, second].map((app) => app.get<ServerPoolService>(getServerPoolToken('a')));
    expect([one!.ready, two!.ready]).toEqual([true, true]);
    expect(one!.address()!.port).not.toBe(two!.address()!.port);
  });
});
