/**
 * Issue 6, scenario 2 (and the Go failure mode "one silent peer in the
 * middle of a TLS handshake blocks other clients' accepts"): 500
 * connections that open and never speak, against a TLS server.
 *
 * - handshakeTimeout frees them while real clients keep getting streams
 *   (and a client that starts during the flood gets its own);
 * - with maxHandshakes below 500 the surplus is refused 'busy' at once, with
 *   a bare close, and a real client gets streams once the flood is gone.
 *
 * On http2 and wss the TLS handshake (and the upgrade request) comes before
 * any stream is admitted; the pool counts it in `stats.handshaking` and
 * bounds it by `maxHandshakes` through the acceptor's connection-level slot.
 */
import { describe, expect, it } from '@jest/globals';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import type { ClientPoolConfig } from '../../lib/pool-factory.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { eventually, readBytes, sleep } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { clientConfig, inBatches, rawConnect, serverConfig, startKind, type Kind, type RawOutcome } from './support.js';

const scope = useTestScope();

const FLOOD = 500;
const BATCH = 50;

async function flood(port: number, into: RawOutcome[]): Promise<void> {
  await inBatches(FLOOD, BATCH, async () => {
    const outcome = await rawConnect(port);
    into.push(outcome);
    return outcome;
  });
}

/**
 * The flood and the real clients all come from 127.0.0.1: these tests are
 * about the global bound, so one address may take every slot (and, on
 * http2, open that many connections). The per-peer share has its own spec
 * (slowloris-fairness).
 */
function onePeerMayTakeAll(kind: Kind, maxHandshakes: number): Record<string, number> {
  return { maxHandshakesPerPeer: maxHandshakes, ...(kind === 'http2' ? { maxSessionsPerPeer: 1024 } : {}) };
}

function trackAll(sockets: RawOutcome[]): void {
  scope.defer(() => {
    for (const { socket } of sockets) socket.destroy();
  });
}

describe.each<Kind>(['tls', 'http2', 'wss'])('%s: 500 silent connections in the TLS handshake', (kind) => {
  it('handshakeTimeout frees them all while real clients keep getting streams; none is pooled', async () => {
    const HANDSHAKE_TIMEOUT = 1500;
    const p = await scope.pair(
      startKind,
      kind,
      { handshakeTimeout: HANDSHAKE_TIMEOUT, maxHandshakes: 1024, ...onePeerMayTakeAll(kind, 1024) },
      { minCap: 4, maxCap: 4, minIvl: 20, maxIvl: 20, maxBackoff: 200 },
    );
    await p.client.waitForActive(4, 10_000);
    const before = { ...p.server.stats.refusals };
    const acceptedBefore = p.server.stats.totals.accepted;

    const silent: RawOutcome[] = [];
    trackAll(silent);
    let flooding = true;
    let late: ClientPool | undefined;
    // A real application keeps taking streams while the flood goes on. The
    // server side cannot tell whose stream it took (the first client's or
    // the late one's), so the client side asks both pools for the ID.
    let handOffs = 0;
    /** Hand-offs completed while at least half the flood sat in its handshake. */
    let handOffsDuringFlood = 0;
    const loop = (async () => {
      while (flooding) {
        const [id, server] = await p.server.incomingGet(10_000);
        const abort = new AbortController();
        const wait = { timeout: 10_000, signal: abort.signal };
        const client = await Promise.any([p.client.outgoingGet(id, wait), ...(late ? [late.outgoingGet(id, wait)] : [])]).finally(() => abort.abort());
        client.write('x');
        await readBytes(server, 1, 10_000);
        server.destroy();
        client.destroy();
        handOffs++;
        if (silent.filter((s) => s.closedAt === undefined).length >= FLOOD / 2) handOffsDuringFlood++;
      }
    })();
    const flooded = flood(p.port, silent);
    // A client that starts in the middle of the flood needs a handshake of its own.
    await eventually(() => silent.length >= FLOOD / 2, 20_000, 'half the flood to connect');
    const latePool = createClientPool({
      ...clientConfig(kind, { minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20 }),
      address: `127.0.0.1:${p.port}`,
    } as ClientPoolConfig);
    late = latePool;
    scope.defer(() => latePool.close());
    latePool.start();
    await eventually(() => latePool.stats.totals.created >= 2, 10_000, 'the late client to get 2 streams');
    const stillSilentWhenLateWasServed = silent.filter((s) => s.closedAt === undefined).length;
    await flooded;
    // Every silent connection is cut by the server, none sent a byte, none pooled.
    await eventually(() => silent.every((s) => s.closedAt !== undefined), HANDSHAKE_TIMEOUT + 10_000, 'the server to cut every silent connection');
    flooding = false;
    await loop;
    // The real client refills; then nothing is left in a handshake.
    await p.client.waitForActive(4, 10_000);
    await eventually(() => p.server.stats.handshaking === 0, 5000, 'no handshake in progress');
    const after = p.server.stats;
    expect({
      stillSilentWhenLateWasServed: stillSilentWhenLateWasServed > 0,
      handOffsDuringFlood: handOffsDuringFlood > 4,
      bytesSentToSilentPeers: silent.reduce((sum, s) => sum + s.received.length, 0),
      handshakeTimeouts: (after.refusals['handshake-timeout'] ?? 0) - (before['handshake-timeout'] ?? 0),
      handshaking: after.handshaking,
    }).toEqual({
      stillSilentWhenLateWasServed: true,
      handOffsDuringFlood: true,
      bytesSentToSilentPeers: 0,
      handshakeTimeouts: FLOOD,
      handshaking: 0,
    });
    // What the server accepted was the real clients' connections only.
    expect(after.totals.accepted - acceptedBefore).toBeLessThanOrEqual(handOffs + 4 + 2 + 8);
  }, 60_000);

  it('maxHandshakes 100: the surplus is refused "busy" at once with a bare close; a real client is served once the flood is gone', async () => {
    const MAX_HANDSHAKES = 100;
    const HANDSHAKE_TIMEOUT = 2500;
    const server = createServerPool(serverConfig(kind, { handshakeTimeout: HANDSHAKE_TIMEOUT, maxHandshakes: MAX_HANDSHAKES, ...onePeerMayTakeAll(kind, MAX_HANDSHAKES) }));
    await server.start();
    scope.defer(() => server.close());
    const port = server.address()!.port;

    const silent: RawOutcome[] = [];
    trackAll(silent);
    let peakHandshaking = 0;
    const sampler = setInterval(() => (peakHandshaking = Math.max(peakHandshaking, server.stats.handshaking)), 5);
    scope.defer(() => clearInterval(sampler));
    await flood(port, silent);
    // Refused ones close within a second of connecting; admitted ones sit until handshakeTimeout.
    await sleep(1000);
    const closedAtOnce = silent.filter((s) => s.closedAt !== undefined && s.closedAt - s.connectedAt < 1000);
    const busyNow = server.stats.refusals.busy ?? 0;
    const handshakingNow = server.stats.handshaking;
    await eventually(() => silent.every((s) => s.closedAt !== undefined), HANDSHAKE_TIMEOUT + 10_000, 'every silent connection to be cut');
    clearInterval(sampler);
    const stats = server.stats;
    expect({
      refusedBusy: busyNow,
      closedAtOnce: closedAtOnce.length,
      bytesSentToRefused: closedAtOnce.reduce((sum, s) => sum + s.received.length, 0),
      inHandshakeDuringFlood: handshakingNow,
      peakHandshaking: peakHandshaking <= MAX_HANDSHAKES,
      handshakeTimeouts: stats.refusals['handshake-timeout'] ?? 0,
      handshakingAfter: stats.handshaking,
    }).toEqual({
      refusedBusy: FLOOD - MAX_HANDSHAKES,
      closedAtOnce: FLOOD - MAX_HANDSHAKES,
      bytesSentToRefused: 0,
      inHandshakeDuringFlood: MAX_HANDSHAKES,
      peakHandshaking: true,
      handshakeTimeouts: MAX_HANDSHAKES,
      handshakingAfter: 0,
    });

    // The flood is gone: a real client gets streams.
    const client = createClientPool({ ...clientConfig(kind, { minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20 }), address: `127.0.0.1:${port}` } as ClientPoolConfig);
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 10_000);
    const [id, serverSide] = await server.incomingGet(5000);
    scope.track(serverSide);
    const clientSide = scope.track(await client.outgoingGet(id, 5000));
    clientSide.write('served');
    expect((await readBytes(serverSide, 6)).toString()).toBe('served');
  }, 60_000);
});
