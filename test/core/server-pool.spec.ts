import { afterEach, describe, expect, it } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { ServerPool, type ServerPoolOptions, type IncomingStream } from '../../lib/core/server-pool.js';
import type { Admission, ServerAcceptor, ServerTransport } from '../../lib/core/transport.js';
import { eventually } from '../support/net.js';

/** A server transport for core specs: the test plays the network. */
class ManualServer implements ServerTransport {
  readonly kind = 'manual';
  acceptor?: ServerAcceptor;
  closed = false;
  constructor(readonly firstIdZero = false) {}
  async listen(acceptor: ServerAcceptor): Promise<void> {
    this.acceptor = acceptor;
  }
  address() {
    return { address: '127.0.0.1', port: 1, family: 'IPv4' };
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  /** A peer connects and completes its handshake. */
  connect(address = '127.0.0.1'): { id: string; stream: PassThrough } | string {
    const admission = this.acceptor!.admit(address);
    if (typeof admission === 'string') return admission;
    const stream = new PassThrough();
    admission.accept(stream);
    return { id: admission.id, stream };
  }
  begin(address = '127.0.0.1'): Admission | string {
    return this.acceptor!.admit(address);
  }
}

let pool: ServerPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

async function started(options: ServerPoolOptions = {}, firstIdZero = false) {
  const transport = new ManualServer(firstIdZero);
  pool = new ServerPool(transport, options);
  await pool.start();
  return { pool, transport };
}

function connected(transport: ManualServer, address?: string): { id: string; stream: PassThrough } {
  const result = transport.connect(address);
  if (typeof result === 'string') throw new Error(`refused: ${result}`);
  return result;
}

describe('ServerPool (core, scripted transport)', () => {
  it('hands out streams in arrival order with the IDs it drew', async () => {
    const { pool, transport } = await started();
    const a = connected(transport);
    const b = connected(transport);
    expect(a.id).toMatch(/^[0-9a-f]{8}$/);
    expect(a.id).not.toBe(b.id);
    expect(pool.active).toBe(2);
    expect(await pool.incomingGet(10)).toEqual([a.id, a.stream]);
    expect(await pool.incomingGet(10)).toEqual([b.id, b.stream]);
  });

  it('issues 00000000 first on transports that do', async () => {
    const { transport } = await started({}, true);
    expect(connected(transport).id).toBe('00000000');
    expect(connected(transport).id).not.toBe('00000000');
  });

  it('delivers a stream arriving while incomingGet waits to that waiter (never orphaned)', async () => {
    const { pool, transport } = await started();
    const waiting = pool.incomingGet(5000);
    const a = connected(transport);
    expect(await waiting).toEqual([a.id, a.stream]);
    expect(pool.active).toBe(0);
    expect(pool.stats.totals).toEqual({ accepted: 1, taken: 1 });
  });

  it('refuses beyond maxCap, counting streams still handshaking', async () => {
    const { pool, transport } = await started({ maxCap: 2 });
    connected(transport);
    const handshaking = transport.begin();
    expect(typeof handshaking).toBe('object');
    expect(transport.begin()).toBe('full');
    expect(pool.stats.refusals).toEqual({ full: 1 });
    (handshaking as Admission).fail('tls');
    expect(pool.stats.refusals).toEqual({ full: 1, tls: 1 });
    expect(typeof transport.begin()).toBe('object');
  });

  it('refuses beyond maxHandshakes while idle streams still fit', async () => {
    const { pool, transport } = await started({ maxCap: 10, maxHandshakes: 2 });
    const first = transport.begin() as Admission;
    transport.begin();
    expect(transport.begin()).toBe('busy');
    first.accept(new PassThrough());
    expect(typeof transport.begin()).toBe('object');
    expect(pool.stats.refusals).toEqual({ busy: 1 });
    expect(pool.stats.handshaking).toBe(2);
  });

  it('holds connection-level handshake slots (TLS before admission) against maxHandshakes', async () => {
    const { pool, transport } = await started({ maxCap: 10, maxHandshakes: 2 });
    const acceptor = transport.acceptor!;
    const first = acceptor.connecting();
    expect(typeof first).toBe('function');
    expect(typeof transport.begin()).toBe('object'); // one admission in its handshake
    expect(acceptor.connecting()).toBe('busy');
    expect(transport.begin()).toBe('busy');
    expect(pool.stats.handshaking).toBe(2);
    (first as () => void)();
    (first as () => void)(); // releasing twice frees one slot only
    expect(pool.stats.handshaking).toBe(1);
    expect(typeof acceptor.connecting()).toBe('function');
    expect(acceptor.connecting()).toBe('busy');
    expect(pool.stats.refusals).toEqual({ busy: 3 });
  });

  it('refuses peers outside allowedIps, comparing IPv4-mapped addresses', async () => {
    const { pool, transport } = await started({ allowedIps: ['127.0.0.1'] });
    expect(transport.connect('10.1.1.1')).toBe('ip');
    expect(typeof transport.connect('::ffff:127.0.0.1')).toBe('object');
    expect(pool.stats.refusals).toEqual({ ip: 1 });
  });

  it('times out incomingGet with POOL_ERR_TIMEOUT', async () => {
    const { pool } = await started();
    await expect(pool.incomingGet(20)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
  });

  it('keeps streams while nobody listens and gives each to exactly one subscriber', async () => {
    const { pool, transport } = await started();
    const early = [connected(transport), connected(transport)];
    expect(pool.active).toBe(2);
    const a: IncomingStream[] = [];
    const b: IncomingStream[] = [];
    const offA = pool.onIncoming((item) => a.push(item));
    expect(a.map(([id]) => id)).toEqual(early.map(({ id }) => id));
    const offB = pool.onIncoming((item) => b.push(item));
    const later = [connected(transport), connected(transport)];
    expect([...a, ...b].map(([id]) => id).sort()).toEqual([...early, ...later].map(({ id }) => id).sort());
    expect(b).toHaveLength(1);
    offA();
    offB();
    const kept = connected(transport);
    expect(pool.active).toBe(1);
    expect((await pool.incomingGet(10))[0]).toBe(kept.id);
  });

  it('drops an idle stream that dies and never hands it out', async () => {
    const { pool, transport } = await started();
    const dead = connected(transport);
    const alive = connected(transport);
    dead.stream.destroy(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    await eventually(() => pool.active === 1, 1000);
    expect(pool.stats.drops).toEqual({ error: 1 });
    expect((await pool.incomingGet(10))[0]).toBe(alive.id);
  });

  it('reserves the first stream when asked', async () => {
    const { pool, transport } = await started({ reserveFirstId: true }, true);
    const first = connected(transport);
    const second = connected(transport);
    expect(first.id).toBe('00000000');
    expect(await pool.firstStream(10)).toBe(first.stream);
    expect((await pool.incomingGet(10))[0]).toBe(second.id);
  });

  it('close(): rejects pending gets, completes subscribers, destroys idle and late streams', async () => {
    const { pool, transport } = await started();
    const idle = connected(transport);
    const taken: Duplex = (await pool.incomingGet(10))[1];
    const again = connected(transport);
    const pendingAdmission = transport.begin() as Admission;
    let closedWith: string | undefined;
    const waiting = pool.incomingGet(10_000);
    // `again` was given to the waiter; subscribe after to see the close.
    await expect(waiting).resolves.toEqual([again.id, again.stream]);
    const next = pool.incomingGet(10_000);
    pool.onIncoming(() => undefined, (error) => (closedWith = error.code));
    await pool.close();
    await expect(next).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED' });
    expect(closedWith).toBe('POOL_ERR_CLOSED');
    expect(transport.closed).toBe(true);
    expect(taken.destroyed).toBe(false);
    expect(idle.stream).toBe(taken);
    const late = new PassThrough();
    pendingAdmission.accept(late);
    expect(late.destroyed).toBe(true);
    expect(transport.begin()).toBe('closed');
    taken.destroy();
    again.stream.destroy();
  });
});
