/**
 * The reserved first stream (`reserveFirstId`, ID 00000000) before the
 * application takes it is an idle pooled stream like any other: "an idle
 * pooled socket that dies never crashes the process and never reaches the
 * application". Its peer resets or ends it: the server pool drops it and
 * counts it, and `firstStream()` rejects with POOL_ERR_FIRST_STREAM_LOST
 * instead of handing out a dead stream (or waiting for one that never
 * comes: the ID is issued once).
 */
import { describe, expect, it } from '@jest/globals';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { eventually } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { startKind, watchUnhandledRejections, type Kind } from './support.js';

const scope = useTestScope();

type Death = 'reset' | 'end';

/** The peer's side of the first stream dies: an RST (or an error close), or a clean end. */
function kill(stream: Duplex, death: Death): void {
  stream.on('error', () => undefined);
  if (death === 'end') {
    stream.end();
    stream.resume();
  } else if (stream instanceof net.Socket) {
    stream.resetAndDestroy();
  } else {
    stream.destroy(new Error('the peer gives up on its control channel'));
  }
}

const KINDS: Array<[Kind, Record<string, unknown>]> = [
  ['tcp', { idFormat: 'raw4' }],
  ['http2', {}],
  ['ws', {}],
];

describe.each(KINDS)('%s: the reserved first stream dies before it is taken', (kind, wire) => {
  it.each<Death>(['reset', 'end'])('by a peer %s: dropped and counted, no crash, firstStream() rejects with POOL_ERR_FIRST_STREAM_LOST', async (death) => {
    const unhandled = watchUnhandledRejections();
    scope.defer(() => unhandled.stop());
    const p = await scope.pair(
      startKind,
      kind,
      { ...wire, reserveFirstId: true, closeTimeout: 1000 },
      { ...wire, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 },
    );
    // The client's first stream is the server's 00000000, held for firstStream().
    await p.client.waitForActive(1, 10_000);
    await eventually(() => p.server.stats.totals.accepted === 1, 5000, 'the server to hold the first stream');
    expect(p.server.active).toBe(0);
    const peer = scope.track(await p.client.outgoingGet('00000000', 5000));

    kill(peer, death);
    await eventually(() => Object.values(p.server.stats.drops).reduce((a, b) => a + b, 0) === 1, 5000, 'the first stream to be dropped');
    expect(Object.keys(p.server.stats.drops)).toEqual([expect.stringMatching(/^(error|end|close)$/)]);
    expect(p.server.errorCount).toBe(1);

    const error = await p.server.firstStream(5000).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'FirstStreamLostError', code: 'POOL_ERR_FIRST_STREAM_LOST' });
    expect(p.server.stats.state).toBe('running');
    expect(unhandled.seen).toEqual([]);
  }, 30_000);
});
