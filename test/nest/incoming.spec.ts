import { describe, expect, it } from '@jest/globals';
import { Injectable, type OnModuleInit, type Provider } from '@nestjs/common';
import type { TestingModule } from '@nestjs/testing';
import type { Duplex } from 'node:stream';
import { firstValueFrom, take, toArray } from 'rxjs';
import {
  ClientPoolService,
  InjectServerPool,
  PoolModule,
  SERVER_POOL,
  ServerPoolService,
  type IncomingStream,
  type PoolModuleOptions,
} from '../../lib/index.js';
import { eventually, sleep } from '../support/net.js';
import { compile, errorOf, expectEcho, fastClient, loopback } from './support/nest.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
/** Streams handed to the test are the test's to destroy. */
function destroys(streams: Array<IncomingStream | Duplex>): void {
  scope.defer(() => streams.forEach((item) => (Array.isArray(item) ? item[1] : item).destroy()));
}
const ids = (items: IncomingStream[]): string[] => items.map(([id]) => id);

/**
 * A subscriber that, like a tunnel, takes the client's end of every stream it
 * gets; the client pool then dials a replacement, so more streams arrive.
 */
function pairing(client: ClientPoolService, into: IncomingStream[]): (item: IncomingStream) => void {
  destroys(into);
  return (item) => {
    into.push(item);
    client.outgoingGet(item[0], 2000).then((stream) => destroys([stream]), () => undefined);
  };
}

/** Subscribes in its constructor and in onModuleInit, before the pool has started (as a controller might). */
@Injectable()
class EarlySubscriber implements OnModuleInit {
  readonly received: IncomingStream[] = [];
  readonly fromInit: IncomingStream[] = [];
  completed = false;
  constructor(@InjectServerPool() private readonly server: ServerPoolService) {
    server.incoming$.subscribe({ next: (item) => this.received.push(item), complete: () => (this.completed = true) });
  }
  onModuleInit(): void {
    this.server.incoming$.pipe(take(1)).subscribe((item) => this.fromInit.push(item));
  }
}

interface Started {
  app: TestingModule;
  server: ServerPoolService;
  client: ClientPoolService;
}

async function start(options: Partial<PoolModuleOptions> = {}, providers: Provider[] = [], minCap = 3): Promise<Started> {
  const loop = loopback();
  const app = await compile({
    imports: [PoolModule.forRoot({ server: { port: 0 }, client: fastClient(loop.addressResolver, minCap), ...options })],
    providers,
  });
  scope.defer(() => app.close());
  loop.bind(() => app.get(SERVER_POOL));
  await app.init();
  return { app, server: app.get(ServerPoolService), client: app.get(ClientPoolService) };
}

/** Started, with `count` idle streams waiting on the server side. */
async function startWithIdle(count: number): Promise<Started> {
  const started = await start({}, [], count);
  await eventually(() => started.server.active === count, 5000, `${count} idle server streams`);
  return started;
}

describe('ServerPoolService.incoming$', () => {
  it('keeps streams pooled while nobody subscribes, then hands out what waited and what comes', async () => {
    const { server, client } = await startWithIdle(3);
    await sleep(100); // several manager rounds: still nothing taken
    expect([server.active, server.pool.stats.totals.taken]).toEqual([3, 0]);

    const received: IncomingStream[] = [];
    const subscription = server.incoming$.subscribe(pairing(client, received));
    expect(received).toHaveLength(3); // what waited, at once
    expect(server.active).toBe(0);
    await eventually(() => received.length >= 5, 5000, 'streams that arrived after subscribing');
    subscription.unsubscribe();
    const count = received.length;
    await eventually(() => server.active === 3, 5000, 'the pool to fill again after unsubscribing');
    expect(received).toHaveLength(count);
    expect(new Set(ids(received)).size).toBe(count);

    // What comes while nobody subscribes is a real pair too.
    const [id, serverSide] = await server.incomingGet(2000);
    const clientSide = await client.outgoingGet(id, 2000);
    destroys([serverSide, clientSide]);
    await expectEcho(clientSide, serverSide);
  });

  it('delivers each stream to exactly one of two subscribers, taking turns', async () => {
    const { server, client } = await startWithIdle(2);
    const a: IncomingStream[] = [];
    const b: IncomingStream[] = [];
    const subA = server.incoming$.subscribe(pairing(client, a));
    const subB = server.incoming$.subscribe(pairing(client, b));
    await eventually(() => a.length + b.length >= 8, 5000, '8 streams');
    subA.unsubscribe();
    subB.unsubscribe();

    const all = [...ids(a), ...ids(b)];
    expect(new Set(all).size).toBe(all.length);
    expect(server.pool.stats.totals.taken).toBe(all.length);
    // Both got a share of what arrived after both subscribed (the first two waited for A alone).
    expect(a.length).toBeGreaterThan(2);
    expect(b.length).toBeGreaterThan(0);
  });

  it('firstValueFrom and take(n) take only what they need: the rest stays in the pool', async () => {
    const { server } = await startWithIdle(3);
    const first = await firstValueFrom(server.incoming$);
    destroys([first]);
    expect([server.active, server.pool.stats.totals.taken]).toEqual([2, 1]);

    const two = await firstValueFrom(server.incoming$.pipe(take(2), toArray()));
    destroys(two);
    expect(server.pool.stats.totals.taken).toBe(3);
    expect(new Set([first[0], ...ids(two)]).size).toBe(3);
  });

  it('accepts subscriptions made before the pool started (constructor, onModuleInit)', async () => {
    const { app, server } = await start({}, [EarlySubscriber], 2);
    const early = app.get(EarlySubscriber);
    await eventually(() => early.fromInit.length === 1 && early.received.length > 0, 5000, 'streams for the early subscribers');
    destroys(early.received);
    destroys(early.fromInit);
    expect(ids(early.received)).not.toContain(early.fromInit[0]![0]);

    const closing = server.close();
    expect(early.completed).toBe(true); // at once, while the close waits for the taken streams
    for (const [, stream] of [...early.received, ...early.fromInit]) stream.destroy();
    await closing;
  });

  it('completes on app.close(), and pending gets reject with POOL_ERR_CLOSED', async () => {
    const { app, server, client } = await start({ client: undefined, server: { port: 0 } });
    let completed = false;
    server.incoming$.subscribe({ complete: () => (completed = true), error: () => undefined });
    const pendingIncoming = errorOf(() => server.incomingGet(60_000));

    await app.close();
    expect(completed).toBe(true);
    expect(await pendingIncoming).toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(client.configured).toBe(false);
  });

  it('a pending outgoingGet rejects with POOL_ERR_CLOSED on close', async () => {
    const { app, client } = await start();
    const pending = errorOf(() => client.outgoingGet('0badc0de', 60_000));
    await app.close();
    expect(await pending).toMatchObject({ code: 'POOL_ERR_CLOSED' });
  });

  it('attaches a subscription made while the server pool is starting (listening, not yet ready)', async () => {
    const { server, client } = await start({ autoStart: false });
    const starting = server.start();
    expect(server.stats.state).toBe('starting');
    const first = firstValueFrom(server.incoming$);
    await starting;
    client.start();
    const [, stream] = await first;
    destroys([stream]);
  });

  it('completes a subscription waiting for a start that never came, and one made after close', async () => {
    const { app, server } = await start({ autoStart: false });
    const events: string[] = [];
    server.incoming$.subscribe({ next: () => events.push('next'), complete: () => events.push('complete before start') });
    await sleep(10);
    expect(events).toEqual([]);
    await app.close();
    server.incoming$.subscribe({ complete: () => events.push('complete after close') });
    expect(events).toEqual(['complete before start', 'complete after close']);
  });

  it('errors when the registration has no server', async () => {
    const app = await compile({ imports: [PoolModule.forRoot({ client: { address: '127.0.0.1:9' }, autoStart: false })] });
    scope.defer(() => app.close());
    const error = await errorOf(() => firstValueFrom(app.get(ServerPoolService).incoming$));
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', message: expect.stringContaining("no server pool is configured for pool 'default'") });
  });
});
