/**
 * The core hooks the tunnel finds its control stream with, over real tcp
 * pools on 127.0.0.1: `ServerPool.claimEarly` (a claim on idle streams by
 * their first bytes) and `ClientPool.takeAny` (the oldest ready stream and
 * its ID, for a stream the client names itself).
 */
import { describe, expect, it, jest } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { PoolTimeoutError } from '../../lib/core/errors.js';
import type { EarlyClaim, IncomingStream } from '../../lib/core/server-pool.js';
import type { ClientIdentity } from '../../lib/core/stream-identity.js';
import { createClientPool, type ClientPoolConfig } from '../../lib/pool-factory.js';
import { eventually, freePorts, readBytes } from '../support/net.js';
import { startPair, type PoolPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';

jest.setTimeout(30_000);
const scope = useTestScope();
const KEY = 'Zr8v1Qm3pXk7TnW2cJ9yLd4Hs6Bf0AeU';
const PREAMBLE = Buffer.from('NTPC');

function pair(count: number, auth = true): Promise<PoolPair> {
  const key = auth ? { auth: { key: [{ id: 'site-a', key: KEY }] } } : {};
  return scope.pair(startPair, { transport: 'tcp', maxCap: 16, ...key } as never, { transport: 'tcp', minCap: count, maxCap: count, refill: 'rounds', ...(auth ? { auth: { key: KEY } } : {}) } as never);
}

/** A claim for streams that start with PREAMBLE; resolves with the first one claimed. */
function preambleClaim(): { claim: EarlyClaim; seen: Buffer[]; claimed: Promise<{ incoming: IncomingStream; identity?: ClientIdentity }> } {
  const seen: Buffer[] = [];
  let resolve!: (value: { incoming: IncomingStream; identity?: ClientIdentity }) => void;
  const claimed = new Promise<{ incoming: IncomingStream; identity?: ClientIdentity }>((r) => (resolve = r));
  const claim: EarlyClaim = {
    match: (bytes) => {
      seen.push(bytes);
      const head = bytes.subarray(0, PREAMBLE.length);
      if (!PREAMBLE.subarray(0, head.length).equals(head)) return 'pass';
      return head.length < PREAMBLE.length ? 'wait' : 'claim';
    },
    claimed: (incoming, identity) => {
      scope.track(incoming[1]);
      resolve({ incoming, identity });
    },
  };
  return { claim, seen, claimed };
}

async function ready(p: PoolPair, count: number): Promise<void> {
  await p.client.waitForActive(count, 10_000);
  await eventually(() => p.server.active >= count, 10_000, `${count} idle server streams`);
}

describe('ServerPool.claimEarly over tcp with a key', () => {
  it('claims the stream whose first bytes match, with its bytes unread; incomingGet never gets it', async () => {
    const p = await pair(2);
    await ready(p, 2);
    const { claim, claimed } = preambleClaim();
    const unsubscribe = p.server.claimEarly(claim);
    scope.defer(unsubscribe);
    const [id, stream] = await p.client.takeAny();
    scope.track(stream);
    stream.write(Buffer.concat([PREAMBLE, Buffer.from('hello')]));
    const { incoming, identity } = await claimed;
    expect(incoming[0]).toBe(id);
    expect(identity).toMatchObject({ kind: 'key', id: 'site-a' });
    expect((await readBytes(incoming[1], 9)).toString()).toBe('NTPChello');
    // The claimed stream left the pool as a taken one; the other stream is still the getter's.
    expect(p.server.stats.totals.taken).toBe(1);
    const [other, otherStream] = await p.server.incomingGet({ client: 'key:site-a', timeout: 5000 });
    scope.track(otherStream);
    expect(other).not.toBe(id);
    // And the pair still carries bytes the other way.
    incoming[1].write('back');
    expect((await readBytes(stream, 4)).toString()).toBe('back');
  });

  it('waits for more bytes when the first ones are a prefix of the preamble', async () => {
    const p = await pair(1);
    await ready(p, 1);
    const { claim, seen, claimed } = preambleClaim();
    scope.defer(p.server.claimEarly(claim));
    const [, stream] = await p.client.takeAny();
    scope.track(stream);
    stream.write('NT');
    await eventually(() => seen.length >= 1, 5000, 'the claim saw the first bytes');
    expect(p.server.active).toBe(1); // still idle, waiting for more
    stream.write('PC!');
    const { incoming } = await claimed;
    expect((await readBytes(incoming[1], 5)).toString()).toBe('NTPC!');
  });

  it('a claim made after the bytes came still sees them', async () => {
    const p = await pair(1);
    await ready(p, 1);
    const [, stream] = await p.client.takeAny();
    scope.track(stream);
    stream.write(PREAMBLE);
    // Authenticated: the bytes wait in the idle stream for a taker.
    await eventually(() => p.server.stats.totals.taken === 0 && p.server.active === 1, 5000);
    await new Promise((r) => setTimeout(r, 100));
    const { claim, claimed } = preambleClaim();
    scope.defer(p.server.claimEarly(claim));
    const { incoming } = await claimed;
    expect((await readBytes(incoming[1], 4)).equals(PREAMBLE)).toBe(true);
  });

  it('bytes no claim wants keep today\'s rule: an authenticated stream keeps them for its taker', async () => {
    const p = await pair(1);
    await ready(p, 1);
    const { claim, seen } = preambleClaim();
    scope.defer(p.server.claimEarly(claim));
    const [id, stream] = await p.client.takeAny();
    scope.track(stream);
    stream.write('GET / HTTP/1.1\r\n');
    await eventually(() => seen.length >= 1, 5000, 'the claim saw the bytes');
    const [got, server] = await p.server.incomingGet({ client: 'key:site-a', timeout: 5000 });
    scope.track(server);
    expect(got).toBe(id);
    expect((await readBytes(server, 16)).toString()).toBe('GET / HTTP/1.1\r\n');
  });

  it('without authentication a stranger\'s junk is still dropped; the preamble is claimed', async () => {
    const p = await pair(2, false);
    await ready(p, 2);
    const { claim, claimed } = preambleClaim();
    scope.defer(p.server.claimEarly(claim));
    const [, junk] = await p.client.takeAny();
    scope.track(junk);
    junk.write('junk');
    await eventually(() => (p.server.stats.drops['unexpected-data'] ?? 0) === 1, 5000, 'the junk stream dropped');
    const [id, named] = await p.client.takeAny();
    scope.track(named);
    named.write(PREAMBLE);
    const { incoming, identity } = await claimed;
    expect(incoming[0]).toBe(id);
    expect(identity).toBeUndefined();
  });

  it('without authentication, bytes a claim says to keep wait for the taker by ID instead of being dropped', async () => {
    const p = await pair(1, false);
    await ready(p, 1);
    scope.defer(p.server.claimEarly({ match: (bytes) => (bytes.subarray(0, 4).toString() === 'KEEP' ? 'keep' : 'pass'), claimed: () => undefined }));
    const [id, stream] = await p.client.takeAny();
    scope.track(stream);
    stream.write('KEEP these bytes');
    // Once the server read them (and kept them), the taker by ID gets every one.
    await eventually(() => p.server.stats.totals.accepted >= 1 && (p.server.stats.drops['unexpected-data'] ?? 0) === 0, 5000, 'the stream still idle');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const [, server] = await p.server.incomingGet({ id, timeout: 5000 });
    scope.track(server);
    expect((await readBytes(server, 16)).toString()).toBe('KEEP these bytes');
    expect(p.server.stats.drops).toEqual({});
  });

  it('after unsubscribing, bytes on an idle stream are no one\'s claim', async () => {
    const p = await pair(1);
    await ready(p, 1);
    const { claim, seen } = preambleClaim();
    p.server.claimEarly(claim)();
    const [, stream] = await p.client.takeAny();
    scope.track(stream);
    stream.write(PREAMBLE);
    const [, server] = await p.server.incomingGet({ client: 'key:site-a', timeout: 5000 });
    scope.track(server);
    expect((await readBytes(server, 4)).equals(PREAMBLE)).toBe(true);
    expect(seen).toEqual([]);
  });
});

describe('ClientPool.takeAny', () => {
  it('hands out the oldest ready stream with the ID the server gave it, then waits for the next', async () => {
    const p = await pair(1);
    await ready(p, 1);
    const [id, stream] = await p.client.takeAny();
    scope.track(stream);
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    const [serverId, server] = await p.server.incomingGet({ id, timeout: 5000 });
    scope.track(server);
    expect(serverId).toBe(id);
    stream.write('x');
    expect((await readBytes(server, 1)).toString()).toBe('x');
    // The pool refills; the next takeAny waits for that stream.
    const [next, nextStream] = await p.client.takeAny({ timeout: 10_000 });
    scope.track(nextStream as Duplex);
    expect(next).not.toBe(id);
  });

  it('with newest, hands out the youngest ready stream (the far end from the server\'s oldest-first pick)', async () => {
    const p = await pair(3);
    await ready(p, 3);
    const order = [...(p.client as unknown as { idle: { ids(): Iterable<string> } }).idle.ids()];
    const [newest, stream] = await p.client.takeAny({ newest: true });
    scope.track(stream);
    expect(newest).toBe(order[order.length - 1]);
    const [oldest, other] = await p.client.takeAny();
    scope.track(other);
    expect(oldest).toBe(order[0]);
  });

  it('rejects with PoolTimeoutError when no stream comes in time (nothing listens where it dials)', async () => {
    const [port] = await freePorts(1);
    const client = createClientPool({ transport: 'tcp', address: `127.0.0.1:${port}`, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 } as ClientPoolConfig);
    client.start();
    scope.defer(() => client.close());
    await expect(client.takeAny({ timeout: 300 })).rejects.toBeInstanceOf(PoolTimeoutError);
  });
});
