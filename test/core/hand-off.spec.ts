/**
 * Issue 10, items 1 and 4, at the core: every hand-off path checks the
 * stream the way an idle stream is checked (dead ones are dropped and
 * counted, never handed out), an error between the hand-out and the
 * application's first 'error' listener is never uncaught, and on a
 * transport whose clients send nothing before the hand-out, bytes on an
 * idle stream drop it.
 */
import { afterAll, afterEach, describe, expect, it } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { ClientPool } from '../../lib/core/client-pool.js';
import { PoolTimeoutError } from '../../lib/core/errors.js';
import { ServerPool, type IncomingStream } from '../../lib/core/server-pool.js';
import type { ServerTransport } from '../../lib/core/transport.js';
import { ManualServer, ManualTransport } from '../support/manual-transport.js';
import { eventually, sleep } from '../support/net.js';
import { realProcess } from '../reliability/support.js';

const opened: Array<{ close(timeout?: number): Promise<void> }> = [];
const uncaught: unknown[] = [];
const onUncaught = (error: unknown): void => void uncaught.push(error);
realProcess.on('uncaughtException', onUncaught);
afterEach(async () => {
  for (const pool of opened.splice(0)) await pool.close(0);
  uncaught.length = 0;
});
afterAll(() => void realProcess.off('uncaughtException', onUncaught));


async function server(transport = new ManualServer(), options = {}): Promise<{ pool: ServerPool; transport: ManualServer }> {
  const pool = new ServerPool(transport, options);
  opened.push(pool);
  await pool.start();
  return { pool, transport };
}

function client(options = {}): { pool: ClientPool; transport: ManualTransport } {
  const transport = new ManualTransport();
  const pool = new ClientPool(transport, { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, ...options });
  opened.push(pool);
  pool.start();
  return { pool, transport };
}

/** A stream that a peer reset: destroyed with ECONNRESET. */
function resetStream(): PassThrough {
  const stream = new PassThrough();
  stream.on('error', () => undefined);
  stream.destroy(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }));
  return stream;
}

describe('server hand-off: dead streams are never handed out', () => {
  it('incomingGet: a stream already dead when it arrives is dropped (stale) and the get waits for the next', async () => {
    const { pool, transport } = await server();
    const waiting = pool.incomingGet(5000);
    transport.arrive(resetStream());
    const ended = new PassThrough();
    ended.end();
    ended.resume();
    await new Promise((resolve) => ended.once('end', resolve));
    transport.arrive(ended);
    const live = transport.arrive();
    const [id, stream] = await waiting;
    expect({ id, same: stream === live.stream, drops: pool.stats.drops, taken: pool.stats.totals.taken, inUse: pool.stats.inUse }).toEqual({
      id: live.id,
      same: true,
      drops: { stale: 2 },
      taken: 1,
      inUse: 1,
    });
  });

  it('onIncoming: a dead arrival never reaches the listener', async () => {
    const { pool, transport } = await server();
    const got: IncomingStream[] = [];
    pool.onIncoming((incoming) => got.push(incoming));
    transport.arrive(resetStream());
    const live = transport.arrive();
    expect(got.map(([id]) => id)).toEqual([live.id]);
    expect(pool.stats.drops).toEqual({ stale: 1 });
  });

  it('the transport veto (isUsable) counts at the hand-off too', async () => {
    const transport = new ManualServer();
    const vetoed = new PassThrough();
    (transport as ServerTransport & { isUsable?: (s: Duplex) => boolean }).isUsable = (s) => s !== vetoed;
    const { pool } = await server(transport);
    const waiting = pool.incomingGet(5000);
    transport.arrive(vetoed);
    const live = transport.arrive();
    expect((await waiting)[0]).toBe(live.id);
    expect(pool.stats.drops).toEqual({ stale: 1 });
  });

  it('firstStream: a dead first stream is not handed to a waiting firstStream()', async () => {
    const { pool, transport } = await server(new ManualServer({ firstIdZero: true }), { reserveFirstId: true });
    const waiting = pool.firstStream(5000);
    transport.arrive(resetStream());
    await expect(waiting).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_LOST' });
  });

  it('firstStream: nor one its transport vetoes; the waiting call learns it is lost', async () => {
    const transport = new ManualServer({ firstIdZero: true });
    (transport as ServerTransport & { isUsable?: (s: Duplex) => boolean }).isUsable = () => false;
    const { pool } = await server(transport, { reserveFirstId: true });
    const waiting = pool.firstStream(5000);
    const first = transport.arrive();
    await expect(waiting).rejects.toMatchObject({ code: 'POOL_ERR_FIRST_STREAM_LOST' });
    expect({ destroyed: first.stream.destroyed, drops: pool.stats.drops }).toEqual({ destroyed: true, drops: { stale: 1 } });
  });
});

describe('server hand-off: an error before the application listens is never uncaught', () => {
  it.each(['incomingGet (waiting)', 'incomingGet (idle)', 'onIncoming'] as const)(
    '%s: the stream fails on the next tick; the application finds it destroyed with that error',
    async (path) => {
      const { pool, transport } = await server();
      const error = Object.assign(new Error('write ECONNRESET'), { code: 'ECONNRESET' });
      let taken: Promise<IncomingStream>;
      if (path === 'onIncoming') {
        taken = new Promise((resolve) => pool.onIncoming((incoming, unsubscribe) => {
          unsubscribe();
          // A listener that hands the stream on without listening itself.
          setImmediate(() => resolve(incoming));
        }));
      } else if (path === 'incomingGet (waiting)') {
        taken = pool.incomingGet(5000);
      } else {
        taken = Promise.resolve(undefined as unknown as IncomingStream);
      }
      const { stream } = transport.arrive();
      if (path === 'incomingGet (idle)') taken = pool.incomingGet(5000);
      // As a failed write does: destroy now, 'error' on the next tick.
      stream.destroy(error);
      const [, got] = await taken;
      await sleep(10);
      expect({ uncaught: uncaught.map(String), destroyed: got.destroyed, errored: got.errored }).toEqual({ uncaught: [], destroyed: true, errored: error });
    },
  );

  it('the guard steps aside once the application listens: its own listener is the only one and sees later errors', async () => {
    const { pool, transport } = await server();
    const waiting = pool.incomingGet(5000);
    transport.arrive();
    const [, stream] = await waiting;
    const seen: unknown[] = [];
    stream.on('error', (error) => seen.push(error));
    expect(stream.listenerCount('error')).toBe(1);
    expect(stream.listenerCount('newListener')).toBe(0);
    const later = new Error('later');
    stream.destroy(later);
    await sleep(10);
    expect(seen).toEqual([later]);
  });
});

describe('client hand-off', () => {
  it('outgoingGet(id) waiting: a dead stream dialed under that ID is dropped (stale), not handed out', async () => {
    const { pool, transport } = client();
    await eventually(() => transport.pending.length === 1, 2000, 'a dial');
    const waiting = pool.outgoingGet('0000abcd', 300);
    transport.complete('0000abcd', resetStream());
    await expect(waiting).rejects.toBeInstanceOf(PoolTimeoutError);
    expect(pool.stats.drops).toEqual({ stale: 1 });
    expect(pool.stats.totals.taken).toBe(0);
  });

  it('outgoingGet(id) waiting: an error on the next tick after the hand-out is not uncaught', async () => {
    const { pool, transport } = client();
    await eventually(() => transport.pending.length === 1, 2000, 'a dial');
    const waiting = pool.outgoingGet('0000abcd', 5000);
    const stream = transport.complete('0000abcd');
    await sleep(0);
    const error = new Error('write EPIPE');
    stream.destroy(error);
    const got = await waiting;
    await sleep(10);
    expect({ uncaught: uncaught.map(String), same: got === stream, errored: got.errored }).toEqual({ uncaught: [], same: true, errored: error });
  });
});

describe('quiet transports: bytes on an idle server stream drop it', () => {
  it('bytes while idle, bytes already there on arrival, and bytes then an end: all dropped as unexpected-data', async () => {
    const { pool, transport } = await server(new ManualServer({ quietIdle: true }));
    const a = transport.arrive();
    (a.stream as PassThrough).write('0123456789');
    const b = new PassThrough();
    b.write('junk');
    transport.arrive(b);
    const c = transport.arrive();
    (c.stream as PassThrough).end('10 bytes!!');
    await eventually(() => pool.active === 0, 2000, 'the junk streams to leave');
    expect({ drops: pool.stats.drops, destroyed: [a.stream.destroyed, b.destroyed, c.stream.destroyed], errors: pool.stats.errorCount }).toEqual({
      drops: { 'unexpected-data': 3 },
      destroyed: [true, true, true],
      errors: 3,
    });
    // A waiting get is not served with such a stream either.
    const waiting = pool.incomingGet(300);
    const d = new PassThrough();
    d.write('junk');
    transport.arrive(d);
    await expect(waiting).rejects.toBeInstanceOf(PoolTimeoutError);
    expect(pool.stats.drops).toEqual({ 'unexpected-data': 4 });
  });

  it('bytes whose readable event has not fired yet are caught when the stream is taken', async () => {
    const { pool, transport } = await server(new ManualServer({ quietIdle: true }));
    const a = transport.arrive();
    await sleep(5);
    (a.stream as PassThrough).write('junk');
    // Same tick: 'readable' is still queued.
    const taken = pool.incomingGet(200);
    expect(pool.stats.drops).toEqual({ 'unexpected-data': 1 });
    await expect(taken).rejects.toBeInstanceOf(PoolTimeoutError);
  });

  it('the transport may recognise the bytes and name the reason', async () => {
    const { pool, transport } = await server(new ManualServer({ quietIdle: true, recognise: true }));
    const a = transport.arrive();
    (a.stream as PassThrough).write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05]));
    const b = transport.arrive();
    (b.stream as PassThrough).write('GET / HTTP/1.1\r\n');
    await eventually(() => pool.active === 0, 2000, 'both to leave');
    expect(pool.stats.drops).toEqual({ 'tls-on-plain': 1, 'unexpected-data': 1 });
    expect(transport.recognised.map((bytes) => bytes.length)).toEqual([5, 16]);
  });

  it('not on other transports, nor on the reserved first stream: there the bytes wait for the taker', async () => {
    const { pool, transport } = await server(new ManualServer({ quietIdle: false }));
    const a = transport.arrive();
    (a.stream as PassThrough).write('hello');
    await sleep(20);
    const [, stream] = await pool.incomingGet(1000);
    expect(String(stream.read())).toBe('hello');

    const quiet = await server(new ManualServer({ quietIdle: true, firstIdZero: true }), { reserveFirstId: true });
    const first = quiet.transport.arrive();
    (first.stream as PassThrough).write('control');
    await sleep(20);
    const taken = await quiet.pool.firstStream(1000);
    expect(String(taken.read())).toBe('control');
  });

  it('an unreserved 00000000 is held to the rule like any stream (reserve it to let its peer write first)', async () => {
    const { pool, transport } = await server(new ManualServer({ quietIdle: true, firstIdZero: true }));
    const first = transport.arrive();
    expect(first.id).toBe('00000000');
    (first.stream as PassThrough).write('control');
    await eventually(() => pool.active === 0, 2000, 'the first stream to leave');
    expect(pool.stats.drops).toEqual({ 'unexpected-data': 1 });
  });
});
