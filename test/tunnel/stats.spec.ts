import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { PoolTimeoutError, RouteLimitError, StreamCutError, TargetConnectError } from '../../lib/core/errors.js';
import { cutStream, forward, type ForwardResult, type Forwarding } from '../../lib/tunnel/forward.js';
import { ConnectionLimit, connectTarget } from '../../lib/tunnel/target.js';
import { failureReason, TunnelStats, type ConnectionKey } from '../../lib/tunnel/tunnel-stats.js';
import { howItEnds } from './forward-harness.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listenOn(onSocket: (socket: net.Socket) => void): Promise<number> {
  const sockets: net.Socket[] = [];
  const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        listener.close(() => resolve());
      }),
  );
  return (listener.address() as net.AddressInfo).port;
}

/**
 * A one-route tunnel in miniature, as the tunnel server will wire it: the
 * route's limit, the target connect, forward(), the stats.
 */
async function route(key: ConnectionKey, targetPort: number, maxConnections = Infinity, idleTimeout?: number) {
  const stats = new TunnelStats();
  const limit = new ConnectionLimit(maxConnections);
  const forwardings: Forwarding[] = [];
  const targets: net.Socket[] = [];
  const publicPort = await listenOn((socket) => {
    const opened = performance.now();
    let release: () => void;
    try {
      release = limit.acquire();
    } catch (error) {
      stats.failed(key, error);
      cutStream(socket, error as Error);
      return;
    }
    connectTarget({ host: '127.0.0.1', port: targetPort }).then(
      (target) => {
        targets.push(target);
        const forwarding = forward(socket, target, idleTimeout === undefined ? {} : { idleTimeout });
        stats.track(key, forwarding, performance.now() - opened);
        forwardings.push(forwarding);
        void forwarding.done.then(release);
      },
      (error: Error) => {
        release();
        stats.failed(key, error);
        cutStream(socket, error);
      },
    );
  });
  cleanups.push(async () => {
    await Promise.all(forwardings.map((forwarding) => forwarding.done));
  });
  return { stats, limit, forwardings, targets, publicPort };
}

/** A client socket, and how its read side finishes (watched from the start: a reset may come at once). */
async function client(port: number): Promise<net.Socket & { ends: Promise<string> }> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  socket.on('error', () => undefined);
  cleanups.push(() => void socket.destroy());
  const ends = howItEnds(socket);
  socket.pause(); // howItEnds resumed it; the tests read when they want
  await new Promise((resolve) => socket.once('connect', resolve).once('close', resolve)); // a reset may beat the connect callback
  return Object.assign(socket, { ends });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`not reached within 5 s: ${what}`);
}

describe('TunnelStats over real forwarded connections', () => {
  it('connections open/total and bytes each way move while the connection is open, per route, per client and in total', async () => {
    const received: net.Socket[] = [];
    const targetPort = await listenOn((socket) => received.push(socket));
    const tunnel = await route({ route: 'web', client: 'alice' }, targetPort);
    const socket = await client(tunnel.publicPort);
    await until(() => received.length === 1 && tunnel.forwardings.length === 1, 'a forwarded connection');
    const target = received[0]!;
    let atTarget = 0;
    target.on('data', (chunk: Buffer) => (atTarget += chunk.length));
    socket.write(Buffer.alloc(1000));
    await until(() => atTarget === 1000, 'the bytes at the target');
    expect(tunnel.stats.snapshot().routes.web).toMatchObject({ open: 1, total: 1, bytesIn: 1000, bytesOut: 0, failures: {} });
    target.write(Buffer.alloc(300));
    let atClient = 0;
    socket.on('data', (chunk: Buffer) => (atClient += chunk.length)).resume();
    await until(() => atClient === 300, 'the reply at the client');
    const open = tunnel.stats.snapshot();
    expect(open.clients.alice).toMatchObject({ open: 1, total: 1, bytesIn: 1000, bytesOut: 300 });
    expect(open.total).toMatchObject({ open: 1, total: 1, bytesIn: 1000, bytesOut: 300 });
    expect(open.total.openLatency.count).toBe(1);

    socket.end();
    target.end();
    await tunnel.forwardings[0]!.done;
    expect(tunnel.stats.snapshot().routes.web).toMatchObject({ open: 0, total: 1, bytesIn: 1000, bytesOut: 300, failures: {} });
  });

  it('failures by reason: the route\'s limit (the extra client is reset), a refused target, a cut, an idle timeout', async () => {
    const received: net.Socket[] = [];
    const targetPort = await listenOn((socket) => received.push(socket));
    const limited = await route({ route: 'one-at-a-time', client: 'bob' }, targetPort, 1);
    const first = await client(limited.publicPort);
    await until(() => limited.forwardings.length === 1, 'the first connection forwarded');
    const second = await client(limited.publicPort);
    expect(await second.ends).toBe('ECONNRESET');
    expect([limited.limit.open, limited.limit.refused]).toEqual([1, 1]);
    expect(limited.stats.snapshot().routes['one-at-a-time']).toMatchObject({ open: 1, total: 1, failures: { limit: 1 } });
    expect(limited.stats.snapshot().clients.bob!.failures).toEqual({ limit: 1 });

    // The first one is cut by its target: counted as a cut when it closes.
    first.resume();
    received[0]!.resetAndDestroy();
    expect(await first.ends).toBe('ECONNRESET');
    await limited.forwardings[0]!.done;
    expect(limited.stats.snapshot().routes['one-at-a-time']).toMatchObject({ open: 0, failures: { limit: 1, cut: 1 } });

    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const refusing = await route({ route: 'down' }, closedPort);
    expect(await (await client(refusing.publicPort)).ends).toBe('ECONNRESET');
    await until(() => refusing.stats.snapshot().routes.down?.failures['target-refused'] === 1, 'the refusal counted');
    expect(refusing.stats.snapshot().total).toMatchObject({ open: 0, total: 0, failures: { 'target-refused': 1 } });

    const idle = await route({ route: 'idle' }, targetPort, Infinity, 200);
    await client(idle.publicPort);
    await until(() => idle.forwardings.length === 1, 'the idle connection forwarded');
    await idle.forwardings[0]!.done;
    expect(idle.stats.snapshot().routes.idle!.failures).toEqual({ 'idle-timeout': 1 });
  });
});

describe('TunnelStats: open latency and failure names', () => {
  /** A finished forwarding, for the histogram alone (no bytes). */
  function finished(): Forwarding {
    const result: ForwardResult = { aToB: { bytes: 0, ended: 'end' }, bToA: { bytes: 0, ended: 'end' }, error: undefined };
    return { aToB: 0, bToA: 0, running: false, done: Promise.resolve(result), cut: () => undefined };
  }

  it('a bounded histogram: count, mean, max exact; percentiles are bucket bounds, never above the max', async () => {
    const stats = new TunnelStats();
    for (let ms = 1; ms <= 100; ms++) stats.track({ route: 'r' }, finished(), ms);
    await new Promise((resolve) => setImmediate(resolve));
    const latency = stats.snapshot().routes.r!.openLatency;
    expect(latency).toMatchObject({ count: 100, mean: 50.5, max: 100 });
    expect(latency.p50).toBe(50); // 50 of 100 are <= 50 ms, the bound of that bucket
    expect(latency.p90).toBe(100);
    expect(latency.p99).toBe(100);
    expect(stats.snapshot().routes.r!.open).toBe(0);

    const one = new TunnelStats();
    one.track({ route: 'r' }, finished(), 0.3);
    expect(one.snapshot().routes.r!.openLatency).toMatchObject({ p50: 0.3, p99: 0.3, max: 0.3 }); // the 0.5 bucket, capped at the max
  });

  it('names failures by their error class', () => {
    expect(failureReason(new TargetConnectError('timeout', 'h', 1, 'm'))).toBe('target-timeout');
    expect(failureReason(new RouteLimitError(1))).toBe('limit');
    expect(failureReason(new PoolTimeoutError('idle'))).toBe('idle-timeout');
    expect(failureReason(new StreamCutError('reset', 'cut'))).toBe('cut');
    expect(failureReason(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe('cut');
  });
});
