import { expect } from '@jest/globals';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { eventually, readBytes, sleep } from '../support/net.js';

/** How a scripted peer ends its turn after sending: FIN, RST, or silence. */
export type Ending = 'end' | 'reset' | 'hold';

/** What the client pool made of its single dial: a pooled stream, or the failure's code. */
export type DialOutcome = { created: true } | { code: string };

/**
 * Waits until the pool's one dial has settled, and returns what it gave: the
 * failure's code, or that it pooled a stream. The pool dials once per run:
 * `minIvl` is long and refill is round-paced, so no second dial starts.
 */
export async function settledDial(pool: ClientPool, timeout = 5000): Promise<DialOutcome> {
  await eventually(() => pool.stats.totals.dials >= 1 && pool.stats.dialing === 0, timeout, 'the dial to settle');
  const { failures, totals } = pool.stats;
  const codes = Object.keys(failures);
  if (codes.length > 0) {
    if (codes.length !== 1 || failures[codes[0]!] !== 1 || totals.created !== 0) {
      throw new Error(`one dial, one outcome expected; got failures ${JSON.stringify(failures)}, created ${totals.created}`);
    }
    return { code: codes[0]! };
  }
  if (totals.created !== 1) throw new Error(`one dial, one outcome expected; got no failure and created ${totals.created}`);
  return { created: true };
}

/**
 * Writes `chunks` one per turn of the event loop (separate segments on a
 * no-delay socket), then ends as told. What the other side sends is read
 * and ignored, so its close is seen.
 */
export async function sendScripted(socket: Duplex & { resetAndDestroy?: () => unknown }, chunks: readonly Buffer[], ending: Ending): Promise<void> {
  socket.resume();
  for (const piece of chunks) {
    if (socket.destroyed) return;
    socket.write(piece);
    await sleep(1);
  }
  if (socket.destroyed) return;
  if (ending === 'end') socket.end();
  else if (ending === 'reset') {
    if (socket.resetAndDestroy) socket.resetAndDestroy();
    else socket.destroy();
  }
}

/**
 * What one dial against a scripted peer must give: a pooled stream under
 * `id` whose first bytes are `rest` (the bytes the peer sent after the ID),
 * or one of `codes` ('created' among them when either is fine).
 */
export type DialWant = { id: string; rest: Buffer } | { codes: readonly string[] };

/**
 * The check every client property runs, whatever the transport: one client
 * pool (`options`: transport, address, timeouts), one dial; it pooled a
 * stream under the expected ID with no byte after it lost or added, or it
 * failed with an allowed code and pooled nothing. `whenCreated` checks a
 * stream pooled where a failure was allowed too. The pool is closed after.
 */
export async function checkOneDial(
  options: Record<string, unknown>,
  want: DialWant,
  track: <T extends Duplex>(stream: T) => T,
  whenCreated?: (pool: ClientPool) => void,
): Promise<string> {
  const pool = createClientPool({ minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, refill: 'rounds', ...options } as never);
  pool.start();
  try {
    const outcome = await settledDial(pool);
    const code = 'code' in outcome ? outcome.code : 'created';
    if ('id' in want) {
      expect(code).toBe('created');
      const stream = track(await pool.outgoingGet(want.id, 1000));
      if (want.rest.length > 0) expect((await readBytes(stream, want.rest.length, 2000)).equals(want.rest)).toBe(true);
      stream.destroy();
    } else {
      expect(want.codes).toContain(code);
      if (code === 'created') whenCreated?.(pool);
      else {
        expect(pool.active).toBe(0);
        expect(pool.stats.totals.created).toBe(0);
      }
    }
    return code;
  } finally {
    await pool.close();
  }
}
