/**
 * Issue 6, scenario 1: the server pool stops and a new one starts on the
 * same port while the client pool runs. The client empties, backs off
 * (bounded dials, no busy loop), refills after the restart, and nothing
 * rejects unhandled on the way.
 */
import { describe, expect, it } from '@jest/globals';
import { createServerPool } from '../../lib/pool-factory.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { eventually, readBytes, sleep } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { maxFailingRounds, serverConfig, startKind, watchUnhandledRejections, type Kind } from './support.js';

const scope = useTestScope();

const CAPACITY = 4;
const IVL = 50;
const MAX_BACKOFF = 400;
const OUTAGE_MS = 1200;

describe.each<Kind>(['tcp', 'tls', 'http2', 'ws'])('%s: server restarted on the same port while the client runs', (kind) => {
  it('empties, backs off within the bound, refills after the restart, no unhandled rejection', async () => {
    const unhandled = watchUnhandledRejections();
    scope.defer(() => unhandled.stop());
    const p = await scope.pair(startKind, kind, {}, { minCap: CAPACITY, maxCap: CAPACITY, minIvl: IVL, maxIvl: IVL, maxBackoff: MAX_BACKOFF });
    await p.client.waitForActive(CAPACITY, 10_000);
    await eventually(() => p.server.active === CAPACITY, 5000, `the server to hold ${CAPACITY}`);

    // Outage: the server pool closes; its idle streams and its listener go.
    const dialsBefore = p.client.stats.totals.dials;
    const outageStart = Date.now();
    await p.server.close();
    await eventually(() => p.client.active === 0, 5000, 'the client pool to empty');
    expect(p.client.stats.ready).toBe(true);
    await eventually(() => p.client.stats.failedRounds >= 2, 5000, 'two failed rounds');
    await sleep(Math.max(0, outageStart + OUTAGE_MS - Date.now()));
    const outageMs = Date.now() - outageStart;
    const stats = p.client.stats;
    const dials = stats.totals.dials - dialsBefore;
    // One burst of up to `capacity` (the round that found the streams gone),
    // plus possibly one more for a round already under way, then one probe
    // per round with waits of at least half the capped exponential ceiling.
    const bound = 2 * CAPACITY + maxFailingRounds(outageMs, IVL, MAX_BACKOFF) + 1;
    expect({ dials, outageMs, within: dials <= bound }).toEqual({ dials, outageMs, within: true });
    expect(dials).toBeGreaterThanOrEqual(2); // it keeps probing
    expect(stats.nextRoundInMs).toBeLessThanOrEqual(MAX_BACKOFF);
    expect(stats.dialing).toBeLessThanOrEqual(1);
    expect(Object.keys(stats.failures).length).toBeGreaterThan(0);

    // Restart on the same port.
    const restarted: ServerPool = createServerPool(serverConfig(kind, { port: p.port }));
    await restarted.start();
    scope.defer(() => restarted.close());
    expect(restarted.address()!.port).toBe(p.port);
    await p.client.waitForActive(CAPACITY, 10_000);
    await eventually(() => restarted.active === CAPACITY, 5000, `the restarted server to hold ${CAPACITY}`);
    await eventually(() => p.client.stats.failedRounds === 0, 5000, 'the back-off to reset');
    expect(p.client.stats.nextRoundInMs).toBe(IVL);

    // And a hand-off works through the new server.
    const [id, server] = await restarted.incomingGet(5000);
    scope.track(server);
    const client = scope.track(await p.client.outgoingGet(id, 5000));
    client.write('after restart');
    expect((await readBytes(server, 13)).toString()).toBe('after restart');
    server.write('ok');
    expect((await readBytes(client, 2)).toString()).toBe('ok');

    await sleep(50);
    expect(unhandled.seen).toEqual([]);
  }, 30_000);
});
