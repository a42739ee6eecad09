import type { Duplex } from 'node:stream';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { eventually, sleep } from '../support/net.js';

/** How a scripted peer ends its turn after sending: FIN, RST, or silence. */
export type Ending = 'end' | 'reset' | 'hold';

/** What the client pool made of its single dial: a pooled stream, or the failure's code. */
export type DialOutcome = { created: true } | { code: string };

/**
 * Waits until the pool's one dial has settled, and returns what it gave: the
 * failure's code, or that it pooled a stream. The pool dials once per run:
 * `minIvl` is long, so no second round starts.
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
