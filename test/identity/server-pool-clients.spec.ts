/**
 * "Who is this?" in the core server pool, driven by a scripted transport:
 * streams carry a client identity (as an authenticating transport attaches
 * it), and the pool hands out the streams of one client, the stream of one
 * ID, and counts per client. The end-to-end specs next to this one do the
 * same over real sockets with mutual TLS.
 */
import { afterEach, describe, expect, it } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { ClientCounters } from '../../lib/core/client-stats.js';
import { PoolAbortedError, PoolClosedError, PoolTimeoutError, InvalidIdError, InvalidOptionsError } from '../../lib/core/errors.js';
import { ServerPool, type IncomingStream, type ServerPoolOptions } from '../../lib/core/server-pool.js';
import { setStreamIdentity, type ClientIdentity } from '../../lib/core/stream-identity.js';
import type { Admission } from '../../lib/core/transport.js';
import { ManualServer } from '../support/manual-transport.js';

let pool: ServerPool | undefined;
afterEach(async () => {
  await pool?.close(0);
  pool = undefined;
});

async function started(options: ServerPoolOptions = {}, firstIdZero = false) {
  const transport = new ManualServer({ firstIdZero });
  pool = new ServerPool(transport, options);
  await pool.start();
  return { pool, transport };
}

const alice: ClientIdentity = { kind: 'key', id: 'alice' };
const bob: ClientIdentity = { kind: 'key', id: 'bob' };
const carol: ClientIdentity = { kind: 'certificate', subject: 'CN=carol', commonName: 'carol', fingerprint: 'AB:CD' };

/** A stream whose handshake proved `identity` (none: an unauthenticated peer) arrives. */
function from(transport: ManualServer, identity?: ClientIdentity): { id: string; stream: Duplex } {
  const stream = new PassThrough();
  if (identity) setStreamIdentity(stream, identity);
  return transport.arrive(stream);
}

/** A stream of `identity` admitted and still in its handshake: `done()` completes it. */
function handshaking(transport: ManualServer, identity?: ClientIdentity): { id: string; stream: Duplex; admission: Admission; done(): void } {
  const admission = transport.begin();
  if (typeof admission === 'string') throw new Error(`refused: ${admission}`);
  const stream = new PassThrough();
  if (identity) setStreamIdentity(stream, identity);
  return { id: admission.id, stream, admission, done: () => admission.accept(stream) };
}

/** Whether a promise has settled by now (after pending microtasks). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(() => (done = true), () => (done = true));
  await new Promise((resolve) => setImmediate(resolve));
  return done;
}

describe('incomingGet({ client })', () => {
  it('takes the oldest stream of that client, leaving the others in arrival order', async () => {
    const { pool, transport } = await started();
    const a1 = from(transport, alice);
    const b1 = from(transport, bob);
    const a2 = from(transport, alice);
    const b2 = from(transport, bob);
    expect(await pool.incomingGet({ client: bob, timeout: 10 })).toEqual([b1.id, b1.stream]);
    expect(await pool.incomingGet({ client: 'key:alice', timeout: 10 })).toEqual([a1.id, a1.stream]);
    // Unfiltered gets go on in arrival order among what is left.
    expect(await pool.incomingGet(10)).toEqual([a2.id, a2.stream]);
    expect(await pool.incomingGet(10)).toEqual([b2.id, b2.stream]);
  });

  it('matches a certificate identity by its label, given as the identity or as the string', async () => {
    const { pool, transport } = await started();
    from(transport, bob);
    const c1 = from(transport, carol);
    const c2 = from(transport, { ...carol, fingerprint: 'EF:01' }); // a renewed certificate, same common name
    expect(await pool.incomingGet({ client: 'cert:carol', timeout: 10 })).toEqual([c1.id, c1.stream]);
    expect(await pool.incomingGet({ client: carol, timeout: 10 })).toEqual([c2.id, c2.stream]);
  });

  it('never gives a stream without an identity to a filtered get', async () => {
    const { pool, transport } = await started();
    const anonymous = from(transport);
    await expect(pool.incomingGet({ client: alice, timeout: 20 })).rejects.toBeInstanceOf(PoolTimeoutError);
    expect(pool.active).toBe(1);
    expect(await pool.incomingGet(10)).toEqual([anonymous.id, anonymous.stream]);
  });

  it('waits for the next stream of that client; another client\'s stays idle meanwhile', async () => {
    const { pool, transport } = await started();
    const waiting = pool.incomingGet({ client: alice, timeout: 5000 });
    const b = from(transport, bob);
    expect(await settled(waiting)).toBe(false);
    expect(pool.active).toBe(1);
    const a = from(transport, alice);
    expect(await waiting).toEqual([a.id, a.stream]);
    expect(await pool.incomingGet(10)).toEqual([b.id, b.stream]);
  });

  it('serves first come, first served among the gets that can take a stream', async () => {
    const { pool, transport } = await started();
    const order: string[] = [];
    const any1 = pool.incomingGet(5000).then((got) => (order.push('any1'), got));
    const forAlice = pool.incomingGet({ client: alice, timeout: 5000 }).then((got) => (order.push('alice'), got));
    const any2 = pool.incomingGet(5000).then((got) => (order.push('any2'), got));
    // Alice's first stream: the unfiltered get came first and can take it.
    const a1 = from(transport, alice);
    // Bob's stream: the alice get cannot take it, so the next get that can does.
    const b = from(transport, bob);
    // Alice's second stream goes to the get waiting for her.
    const a2 = from(transport, alice);
    expect(await any1).toEqual([a1.id, a1.stream]);
    expect(await any2).toEqual([b.id, b.stream]);
    expect(await forAlice).toEqual([a2.id, a2.stream]);
    expect(order).toEqual(['any1', 'any2', 'alice']);
  });

  it('a filtered get waiting longer is served before a younger unfiltered one, and never blocks it', async () => {
    const { pool, transport } = await started();
    const forAlice = pool.incomingGet({ client: alice, timeout: 5000 });
    const any = pool.incomingGet(5000);
    const b = from(transport, bob);
    expect(await any).toEqual([b.id, b.stream]); // not held back behind the alice get
    const a = from(transport, alice);
    expect(await forAlice).toEqual([a.id, a.stream]);
  });

  it('times out, aborts and closes with the usual typed errors, and leaves no waiter behind', async () => {
    const { pool, transport } = await started();
    await expect(pool.incomingGet({ client: alice, timeout: 20 })).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT', message: expect.stringContaining('of client key:alice') });
    const controller = new AbortController();
    const aborted = pool.incomingGet({ client: alice, signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(PoolAbortedError);
    expect(pool.stats.waiting).toBe(0);
    const a = from(transport, alice);
    expect(pool.active).toBe(1); // nobody waits for it any more
    const closing = expect(pool.incomingGet({ client: bob })).rejects.toBeInstanceOf(PoolClosedError);
    await pool.close(0);
    await closing;
    expect(a.stream.destroyed).toBe(true);
  });

  it('rejects a client filter that is neither an identity nor a label', async () => {
    const { pool } = await started();
    await expect(pool.incomingGet({ client: '' })).rejects.toBeInstanceOf(InvalidOptionsError);
    await expect(pool.incomingGet({ client: { kind: 'password' } as unknown as ClientIdentity })).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'client' });
    expect(() => pool.onIncoming(() => undefined, undefined, { client: 42 as unknown as string })).toThrow(InvalidOptionsError);
  });

  it('skips a dead stream of that client and drops it as stale', async () => {
    const { pool, transport } = await started();
    from(transport, bob);
    const a1 = from(transport, alice);
    const a2 = from(transport, alice);
    // Dead without its 'close' having been seen yet.
    Object.defineProperty(a1.stream, 'destroyed', { value: true });
    expect(await pool.incomingGet({ client: alice, timeout: 10 })).toEqual([a2.id, a2.stream]);
    expect(pool.stats.drops).toMatchObject({ stale: 1 });
  });
});

describe('onIncoming(listener, onClose, { client })', () => {
  it('hands a subscriber only its client\'s streams, the waiting ones first, and leaves the rest', async () => {
    const { pool, transport } = await started();
    const a1 = from(transport, alice);
    const b1 = from(transport, bob);
    const forAlice: IncomingStream[] = [];
    const unsubscribe = pool.onIncoming((incoming) => forAlice.push(incoming), undefined, { client: alice });
    expect(forAlice).toEqual([[a1.id, a1.stream]]);
    const a2 = from(transport, alice);
    from(transport, bob);
    expect(forAlice).toEqual([[a1.id, a1.stream], [a2.id, a2.stream]]);
    expect(pool.active).toBe(2);
    // An unfiltered subscriber takes what is left, and then takes turns with the alice one on her streams.
    const any: IncomingStream[] = [];
    pool.onIncoming((incoming) => any.push(incoming));
    expect(any.map(([id]) => id)).toContain(b1.id);
    expect(any).toHaveLength(2);
    const a3 = from(transport, alice);
    const a4 = from(transport, alice);
    expect(forAlice.map(([id]) => id)).toEqual([a1.id, a2.id, a3.id]);
    expect(any.map(([id]) => id).at(-1)).toBe(a4.id);
    unsubscribe();
  });

  it('a filtered get takes turns with a subscriber that takes everything, never starved by it', async () => {
    const { pool, transport } = await started();
    const all: string[] = [];
    pool.onIncoming(([id]) => all.push(id));
    const forAlice = pool.incomingGet({ client: alice, timeout: 5000 });
    const a1 = from(transport, alice); // the subscriber came first
    const a2 = from(transport, alice); // now the get has waited longer
    expect(all).toEqual([a1.id]);
    expect((await forAlice)[0]).toBe(a2.id);
  });

  it('a subscriber that unsubscribes while its client\'s waiting streams are handed out leaves the rest idle', async () => {
    const { pool, transport } = await started();
    from(transport, bob);
    const a1 = from(transport, alice);
    from(transport, alice);
    const seen: string[] = [];
    pool.onIncoming(([id], stop) => {
      seen.push(id);
      stop();
    }, undefined, { client: alice });
    expect(seen).toEqual([a1.id]);
    expect(pool.active).toBe(2);
    expect(pool.stats.totals.taken).toBe(1);
  });
});

describe('incomingGet({ id }): take by ID', () => {
  it('takes exactly the idle stream named, out of arrival order', async () => {
    const { pool, transport } = await started();
    const first = from(transport, alice);
    const second = from(transport, alice);
    expect(await pool.incomingGet({ id: second.id })).toEqual([second.id, second.stream]);
    expect(await pool.incomingGet(10)).toEqual([first.id, first.stream]);
  });

  it('waits for a stream still in its handshake, which no other get takes meanwhile', async () => {
    const { pool, transport } = await started();
    const older = pool.incomingGet(5000); // an unfiltered get that waits longer
    const pending = handshaking(transport, alice);
    const named = pool.incomingGet({ id: pending.id, timeout: 5000 });
    expect(pool.stats.waiting).toBe(2);
    pending.done();
    expect(await named).toEqual([pending.id, pending.stream]);
    expect(await settled(older)).toBe(false);
    const next = from(transport, bob);
    expect(await older).toEqual([next.id, next.stream]);
  });

  it('rejects a malformed ID, an ID the pool does not hold, and the reserved first stream with InvalidIdError', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const zero = from(transport, alice);
    expect(zero.id).toBe('00000000');
    await expect(pool.incomingGet({ id: 'XYZ' })).rejects.toBeInstanceOf(InvalidIdError);
    await expect(pool.incomingGet({ id: '0123456' })).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID' });
    await expect(pool.incomingGet({ id: 'deadbeef', timeout: 5000 })).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID', message: expect.stringContaining('holds no pooled stream deadbeef') });
    await expect(pool.incomingGet({ id: '00000000' })).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID', message: expect.stringContaining('firstStream()') });
    // A stream already taken is no longer there to be named.
    const taken = from(transport, alice);
    await pool.incomingGet(10);
    await expect(pool.incomingGet({ id: taken.id })).rejects.toBeInstanceOf(InvalidIdError);
    expect(pool.stats.waiting).toBe(0);
  });

  it('with client: only that client\'s stream; another client naming it gets InvalidIdError and the stream stays', async () => {
    const { pool, transport } = await started();
    const a = from(transport, alice);
    await expect(pool.incomingGet({ id: a.id, client: bob })).rejects.toBeInstanceOf(InvalidIdError);
    expect(pool.active).toBe(1);
    expect(await pool.incomingGet({ id: a.id, client: alice })).toEqual([a.id, a.stream]);
    // The same check for a stream still in its handshake: it goes the usual way.
    const pending = handshaking(transport, alice);
    const wrong = pool.incomingGet({ id: pending.id, client: bob, timeout: 5000 });
    pending.done();
    await expect(wrong).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID' });
    expect(await pool.incomingGet({ client: alice, timeout: 10 })).toEqual([pending.id, pending.stream]);
  });

  it('fails at once when the named stream\'s handshake fails', async () => {
    const { pool, transport } = await started();
    const pending = handshaking(transport, alice);
    const named = pool.incomingGet({ id: pending.id, timeout: 5000 });
    pending.admission.fail('tls');
    await expect(named).rejects.toMatchObject({ code: 'POOL_ERR_INVALID_ID', message: expect.stringContaining('handshake') });
    expect(pool.stats.waiting).toBe(0);
  });

  it('times out, aborts and closes like any get; a second get for the same ID fails once the first has it', async () => {
    const { pool, transport } = await started();
    const pending = handshaking(transport, alice);
    await expect(pool.incomingGet({ id: pending.id, timeout: 20 })).rejects.toBeInstanceOf(PoolTimeoutError);
    const controller = new AbortController();
    const aborted = pool.incomingGet({ id: pending.id, signal: controller.signal });
    controller.abort();
    await expect(aborted).rejects.toBeInstanceOf(PoolAbortedError);
    const one = pool.incomingGet({ id: pending.id, timeout: 5000 });
    const two = pool.incomingGet({ id: pending.id, timeout: 5000 });
    pending.done();
    expect(await one).toEqual([pending.id, pending.stream]);
    await expect(two).rejects.toBeInstanceOf(InvalidIdError);
    const other = handshaking(transport, alice);
    const closing = expect(pool.incomingGet({ id: other.id })).rejects.toBeInstanceOf(PoolClosedError);
    await pool.close(0);
    await closing;
  });
});

describe('stats.clients', () => {
  it('is absent on a pool whose streams carry no identity (the stats keep their shape)', async () => {
    const { pool, transport } = await started();
    from(transport);
    await pool.incomingGet(10);
    expect('clients' in pool.stats).toBe(false);
  });

  it('counts idle, accepted and taken streams per client label', async () => {
    const { pool, transport } = await started();
    from(transport, alice);
    from(transport, alice);
    from(transport, carol);
    from(transport); // anonymous: in the totals, in no client's figures
    await pool.incomingGet({ client: alice, timeout: 10 });
    const named = handshaking(transport, carol);
    const byId = pool.incomingGet({ id: named.id });
    named.done();
    await byId;
    expect(pool.stats.clients).toEqual({
      'key:alice': { idle: 1, accepted: 2, taken: 1 },
      'cert:carol': { idle: 1, accepted: 2, taken: 1 },
    });
    expect(pool.stats.totals).toEqual({ accepted: 5, taken: 2 });
  });

  it('is capped: a new client evicts the least recently active one without idle streams', () => {
    const idle = new Map<string, number>([['a', 1]]);
    const counters = new ClientCounters((label) => idle.get(label) ?? 0, 3);
    counters.accepted('a');
    counters.accepted('b');
    counters.accepted('c');
    counters.taken('b'); // b is now more recent than c
    counters.accepted('d'); // a has idle streams: c goes
    expect(Object.keys(counters.snapshot() ?? {})).toEqual(['a', 'b', 'd']);
    idle.clear();
    for (let i = 0; i < 100; i++) counters.accepted(`x${i}`);
    expect(counters.size).toBe(3);
    expect(Object.keys(counters.snapshot() ?? {})).toEqual(['x97', 'x98', 'x99']);
  });
});

describe('bytes on an idle stream of a transport whose clients stay quiet (tcp, http2)', () => {
  async function quiet() {
    const transport = new ManualServer({ quietIdle: true });
    pool = new ServerPool(transport);
    await pool.start();
    return { pool, transport };
  }

  it('a stream whose client proved its identity keeps them for the get that names it (the forward tunnel)', async () => {
    const { pool, transport } = await quiet();
    const older = from(transport, alice);
    const named = from(transport, alice);
    (named.stream as PassThrough).write('early bytes');
    await new Promise((resolve) => setImmediate(resolve)); // 'readable' has been emitted
    expect(pool.stats.drops).toEqual({});
    const [id, stream] = await pool.incomingGet({ id: named.id, client: alice });
    expect(id).toBe(named.id);
    expect(String(stream.read())).toBe('early bytes');
    expect(await pool.incomingGet({ client: alice, timeout: 10 })).toEqual([older.id, older.stream]);
  });

  it('a stream that arrives with bytes goes to a waiting get as usual when its client proved its identity', async () => {
    const { pool, transport } = await quiet();
    const waiting = pool.incomingGet({ client: alice, timeout: 5000 });
    const stream = new PassThrough();
    setStreamIdentity(stream, alice);
    stream.write('first');
    const arrived = transport.arrive(stream);
    expect(await waiting).toEqual([arrived.id, stream]);
  });

  it('a stream without an identity is still dropped, as before', async () => {
    const { pool, transport } = await quiet();
    const anonymous = from(transport);
    (anonymous.stream as PassThrough).write('junk');
    await new Promise((resolve) => setImmediate(resolve));
    expect(pool.stats.drops).toEqual({ 'unexpected-data': 1 });
    await expect(pool.incomingGet({ id: anonymous.id })).rejects.toBeInstanceOf(InvalidIdError);
  });
});
