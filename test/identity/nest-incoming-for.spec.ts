/**
 * The Nest service's per-client stream: `incomingFor$(client)` gets only
 * that client's streams (the waiting ones first), takes turns with
 * `incoming$` on them, attaches when the pool starts if subscribed before,
 * errors on a filter that names no client, and completes on close. Driven
 * by a scripted transport; the module wiring is the same as `incoming$`'s
 * (test/nest/incoming.spec.ts).
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import 'reflect-metadata';
import { PassThrough } from 'node:stream';
import { firstValueFrom, type Subscription } from 'rxjs';
import { ServerPool, type IncomingStream } from '../../lib/core/server-pool.js';
import { setStreamIdentity, type ClientIdentity } from '../../lib/core/stream-identity.js';
import { ServerPoolService } from '../../lib/nest/server-pool.service.js';
import { ManualServer } from '../support/manual-transport.js';

const alice: ClientIdentity = { kind: 'key', id: 'alice' };
const bob: ClientIdentity = { kind: 'key', id: 'bob' };

let service: ServerPoolService | undefined;
const subscriptions: Subscription[] = [];
afterEach(async () => {
  subscriptions.splice(0).forEach((subscription) => subscription.unsubscribe());
  await service?.close(0);
  service = undefined;
});

function setUp(): { service: ServerPoolService; transport: ManualServer } {
  const transport = new ManualServer();
  service = new ServerPoolService('default', new ServerPool(transport));
  return { service, transport };
}

function from(transport: ManualServer, identity: ClientIdentity): string {
  const stream = new PassThrough();
  setStreamIdentity(stream, identity);
  return transport.arrive(stream).id;
}

describe('ServerPoolService.incomingFor$(client)', () => {
  it('emits only that client\'s streams, subscribed before the start, and takes turns with incoming$', async () => {
    const { service, transport } = setUp();
    const forBob: IncomingStream[] = [];
    const any: IncomingStream[] = [];
    let completed = false;
    subscriptions.push(service.incomingFor$('key:bob').subscribe({ next: (item) => forBob.push(item), complete: () => (completed = true) }));
    await service.start();
    const a1 = from(transport, alice);
    const b1 = from(transport, bob);
    expect(forBob.map(([id]) => id)).toEqual([b1]);
    expect(service.active).toBe(1); // alice's waits: nobody listens for her
    subscriptions.push(service.incoming$.subscribe((item) => any.push(item)));
    expect(any.map(([id]) => id)).toEqual([a1]);
    // The two subscribers take turns on bob's streams: incomingFor$ has waited longer since its last one.
    const b2 = from(transport, bob);
    const b3 = from(transport, bob);
    expect([...forBob, ...any].map(([id]) => id).sort()).toEqual([a1, b1, b2, b3].sort());
    expect(forBob.map(([id]) => id)).toEqual([b1, b2]);
    expect(any.map(([id]) => id)).toEqual([a1, b3]);
    await service.close(0);
    expect(completed).toBe(true);
  });

  it('hands the waiting stream of that client to firstValueFrom, leaving the others', async () => {
    const { service, transport } = setUp();
    await service.start();
    from(transport, alice);
    const b = from(transport, bob);
    from(transport, bob);
    const [id] = await firstValueFrom(service.incomingFor$(bob));
    expect(id).toBe(b);
    expect(service.active).toBe(2);
  });

  it('errors with InvalidOptionsError on a filter that names no client', async () => {
    const { service } = setUp();
    await service.start();
    await expect(firstValueFrom(service.incomingFor$('' as string))).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'client' });
  });

  it('incomingGet passes client and id through', async () => {
    const { service, transport } = setUp();
    await service.start();
    from(transport, alice);
    const b = from(transport, bob);
    expect((await service.incomingGet({ client: bob, timeout: 10 }))[0]).toBe(b);
    const a = from(transport, alice);
    expect((await service.incomingGet({ id: a }))[0]).toBe(a);
  });
});
