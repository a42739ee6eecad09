/**
 * Issue 6: dead idle connections never reach the application. A middlebox
 * that terminates TCP (its own kernel answers) and silently stops
 * forwarding leaves both pools holding connections that look alive: no
 * FIN, no reset, keep-alive probes answered. Plain tcp/TLS may put no byte
 * of its own on a pooled stream, so only age can tell: with `maxIdle` on
 * both sides (the server's below the client's) the server never hands out
 * a stream older than its bound, and the client never recycles a stream the
 * server may still hand out. Each scenario has a control without `maxIdle`
 * in which the dead streams are handed out, so the proxy's silence is real.
 */
import { describe, expect, it } from '@jest/globals';
import { eventually, readBytes, sleep } from '../support/net.js';
import { startPair, type PoolPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { startSilentProxy, type SilentProxy, type SilentProxyOptions } from '../support/silent-proxy.js';
import { clientConfig, serverConfig, takePair, type Kind } from './support.js';

const scope = useTestScope();

const CAPACITY = 4;
const IVL = 50;
const SERVER_MAX_IDLE = 400;
const CLIENT_MAX_IDLE = 600;
const HAND_OFFS = 6;

interface Setup {
  proxy: SilentProxy;
  p: PoolPair;
}

/** Client → silent proxy → server, with `maxIdle` on both sides or on neither. */
async function start(kind: Kind, maxIdle: boolean, proxyOptions: SilentProxyOptions = {}): Promise<Setup> {
  const proxy = await startSilentProxy(proxyOptions);
  scope.defer(() => proxy.close());
  const p = await scope.pair(
    startPair,
    serverConfig(kind, maxIdle ? { maxIdle: SERVER_MAX_IDLE } : {}),
    clientConfig(kind, {
      minCap: CAPACITY,
      maxCap: CAPACITY,
      minIvl: IVL,
      maxIvl: IVL,
      // A dial caught by the silence would hold its round until this.
      handshakeTimeout: 2000,
      ...(maxIdle ? { maxIdle: CLIENT_MAX_IDLE } : {}),
    }),
    proxy.to,
  );
  return { proxy, p };
}

/**
 * One hand-off as a tunnel does it: the server takes `[id, stream]`, the
 * client takes `outgoingGet(id)`, then bytes go both ways. Rejects when
 * the bytes do not arrive within `readTimeout`.
 */
async function roundTrip(p: PoolPair, n: number, readTimeout = 5000): Promise<void> {
  const { id, server, client } = await takePair(scope, p, 5000);
  const request = Buffer.from(`request ${n} on ${id}`);
  const reply = Buffer.from(`reply ${n} on ${id}`);
  try {
    client.write(request);
    expect((await readBytes(server, request.length, readTimeout)).toString()).toBe(request.toString());
    server.write(reply);
    expect((await readBytes(client, reply.length, readTimeout)).toString()).toBe(reply.toString());
  } finally {
    server.destroy();
    client.destroy();
  }
}

/** Both pools full and nothing dialing or handshaking, so the silence catches no connection half-made. */
async function settled(p: PoolPair): Promise<void> {
  await eventually(
    () => p.client.active === CAPACITY && p.server.active === CAPACITY && p.client.stats.dialing === 0 && p.server.stats.handshaking === 0,
    10_000,
    `both pools to hold ${CAPACITY} idle streams with nothing in progress`,
  );
}

const expired = (p: PoolPair): { server: number; client: number } => ({
  server: p.server.stats.drops.expired ?? 0,
  client: p.client.stats.drops.expired ?? 0,
});

describe.each<Kind>(['tcp', 'tls'])('%s through a proxy that goes silent', (kind) => {
  it('with maxIdle on both sides: once the server bound has passed, every hand-off gets a live stream; the dead ones are dropped as expired', async () => {
    const { proxy, p } = await start(kind, true);
    await roundTrip(p, 0); // the proxy forwards
    await settled(p);
    const before = expired(p);
    const idleAtSilence = { server: p.server.active, client: p.client.active };
    proxy.goSilent();
    expect(proxy.silenced).toBeGreaterThanOrEqual(CAPACITY);

    // The bound: every stream open at the silence is now older than the
    // server's maxIdle, so the server can no longer hand one out. (Within
    // it, a stream that died younger than maxIdle looks like any other:
    // the middlebox's idle timeout above maxIdle is what keeps that window
    // empty in practice, as the next test shows.)
    await sleep(SERVER_MAX_IDLE);
    for (let n = 1; n <= HAND_OFFS; n++) await roundTrip(p, n);

    await eventually(() => expired(p).server - before.server >= idleAtSilence.server, 5000, 'the server to drop its dead streams as expired');
    await eventually(() => expired(p).client - before.client >= idleAtSilence.client, 5000, 'the client to drop its dead streams as expired');
    expect(proxy.connections).toBeGreaterThan(CAPACITY + 1); // replacements came through the proxy
  });

  it('control, without maxIdle: a dead stream is handed out and the round trip never completes', async () => {
    const { proxy, p } = await start(kind, false);
    await roundTrip(p, 0);
    await settled(p);
    proxy.goSilent();
    await sleep(SERVER_MAX_IDLE);
    // Nothing was recycled, so the oldest idle stream, the one handed out
    // next, is one the proxy silenced: its bytes can never arrive.
    await expect(roundTrip(p, 1, 300)).rejects.toThrow(/readBytes: only 0 of/);
    expect(expired(p)).toEqual({ server: 0, client: 0 });
  });
});

describe.each<Kind>(['tcp', 'tls'])('%s through a middlebox that silently forgets idle connections', (kind) => {
  // Both maxIdle values below the middlebox's idle timeout, the server's lowest.
  const IDLE_TIMEOUT = 1500;

  it('with maxIdle below its idle timeout on both sides, hand-offs at any time get live streams', async () => {
    const { p } = await start(kind, true, { idleTimeout: IDLE_TIMEOUT });
    for (let n = 1; n <= 8; n++) {
      await sleep(200);
      await roundTrip(p, n);
    }
    // Streams waited longer than the server's maxIdle and were recycled.
    expect(expired(p).server).toBeGreaterThan(0);
  });

  it('control, without maxIdle: connections idle past the timeout go silent and are handed out dead', async () => {
    const { proxy, p } = await start(kind, false, { idleTimeout: 300 });
    await settled(p);
    await eventually(() => proxy.silenced >= CAPACITY, 5000, 'the middlebox to forget the idle connections');
    await expect(roundTrip(p, 1, 300)).rejects.toThrow(/readBytes: only 0 of/);
  });
});
