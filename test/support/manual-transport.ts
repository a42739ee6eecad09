import { PassThrough, type Duplex } from 'node:stream';
import type { ClientTransport, DialContext, DialResult } from '../../lib/core/transport.js';
import { poolClosed, whenClosed } from '../../lib/transports/shared/pool-signal.js';

/**
 * A client transport for core unit specs: every dial waits until the test
 * settles it, so the order of events is the test's to choose. End-to-end
 * specs use the real transports instead.
 */
export class ManualTransport implements ClientTransport {
  readonly kind = 'manual';
  readonly pending: Array<{ resolve: (result: DialResult) => void; reject: (error: unknown) => void; context: DialContext }> = [];
  dials = 0;
  closed = false;

  dial(context: DialContext): Promise<DialResult> {
    this.dials++;
    return new Promise((resolve, reject) => {
      // As a real transport does: the pool's signal is shared by every dial, so a dial registers
      // in its one shared listener and forgets it when settled (an 'abort' listener per dial, never
      // removed, was the suite's "49 abort listeners added to [AbortSignal]" warning).
      const forget = whenClosed(context.signal, () => reject(poolClosed()));
      const settle = <T>(fn: (value: T) => void) => (value: T): void => {
        forget();
        fn(value);
      };
      this.pending.push({ resolve: settle(resolve), reject: settle(reject), context });
    });
  }

  /** Completes the oldest pending dial with a fresh stream under `id`. */
  complete(id: string | null, stream: Duplex = new PassThrough()): Duplex {
    const entry = this.pending.shift();
    if (!entry) throw new Error('no dial is pending');
    entry.resolve({ id, stream });
    return stream;
  }

  fail(error: unknown): void {
    const entry = this.pending.shift();
    if (!entry) throw new Error('no dial is pending');
    entry.reject(error);
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
