/**
 * Issue 6, scenario 4: integrity under churn. Many pooled streams move
 * random data both ways at once while other streams are taken and closed
 * around them; the SHA-256 of what each end wrote matches what the other
 * end read, stream by stream.
 */
import { describe, expect, it } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { finishStream, readHashed, recordDialErrors, startKind, takePair, writeRandom, type Kind, type Progress } from './support.js';

const scope = useTestScope();
recordDialErrors();
const MiB = 1 << 20;

/**
 * Streams and bytes per direction. tcp and TLS carry the 64 x 8 MiB
 * (1 GiB moved in all). http2 and ws carry 64 x 4 MiB: both ends of every
 * stream live in this one process, and their framing (and ws masking) costs
 * about twice the CPU per byte, which on two busy cores would push the
 * folder past its time budget with no more coverage.
 */
const SIZES: Array<[Kind, number, number]> = [
  ['tcp', 64, 8 * MiB],
  ['tls', 64, 8 * MiB],
  ['http2', 64, 4 * MiB],
  ['ws', 64, 4 * MiB],
];

describe.each(SIZES)('%s: integrity under churn', (kind, streams, bytes) => {
  it(`${streams} streams x ${bytes / MiB} MiB both ways while other streams are taken and closed: SHA-256 matches on every stream`, async () => {
    const p = await scope.pair(startKind, kind, { maxCap: 1024 }, { minCap: streams + 8, maxCap: streams + 8, minIvl: 20, maxIvl: 20 });
    await p.client.waitForActive(streams, 20_000);
    const pairs: Array<{ id: string; server: Duplex; client: Duplex }> = [];
    for (let i = 0; i < streams; i++) pairs.push(await takePair(scope, p));

    const moved: Progress = { bytes: 0 };
    const transfers = Promise.all(
      pairs.map(async ({ id, server, client }, i) => {
        const [upWritten, downWritten, upRead, downRead] = await Promise.all([
          writeRandom(client, bytes, 2 * i + 1, moved),
          writeRandom(server, bytes, 2 * i + 2, moved),
          readHashed(server, bytes),
          readHashed(client, bytes),
        ]);
        return { id, up: upWritten === upRead, down: downWritten === downRead };
      }),
    );

    // Churn: take, use briefly and close other streams until the transfers are done.
    let done = false;
    let churned = 0;
    const churn = (async () => {
      while (!done) {
        const { server, client } = await takePair(scope, p);
        client.write('churn-ping');
        expect((await readBytes(server, 10, 20_000)).toString()).toBe('churn-ping');
        if (churned % 2 === 0) {
          server.destroy();
          client.destroy();
        } else {
          server.end();
          client.end();
        }
        churned++;
      }
    })();
    const results = await transfers.finally(() => (done = true));
    await churn;

    const mismatched = results.filter((r) => !r.up || !r.down);
    expect(mismatched).toEqual([]);
    expect(results).toHaveLength(streams);
    expect(churned).toBeGreaterThan(0);
    expect(p.client.stats.drops.error ?? 0).toBe(0);
    await Promise.all(pairs.flatMap(({ server, client }) => [finishStream(server, 10_000), finishStream(client, 10_000)]));
  }, 120_000);
});
