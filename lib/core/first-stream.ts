import type { Duplex } from 'node:stream';
import { FirstStreamLostError, FirstStreamTakenError, type PoolClosedError } from './errors.js';
import { FIRST_ID } from './ids.js';
import { IdleStreams, type DropReason } from './idle-streams.js';
import { WaiterQueue, type WaitOptions } from './waiters.js';

/** Where the reserved first stream is in its one life. */
type Phase =
  /** Not arrived yet. */
  | { readonly kind: 'waiting' }
  /** Arrived, nobody asked yet: held and watched like an idle stream. */
  | { readonly kind: 'held' }
  /** Handed out by `firstStream()`. */
  | { readonly kind: 'taken' }
  /** Died before it was taken; `error` is what every call gets from now on. */
  | { readonly kind: 'lost'; readonly error: FirstStreamLostError };

/** What the reservation uses of its server pool. */
export interface FirstStreamHost {
  /** The pool's name, for messages. */
  readonly name: string;
  /** The pool's hand-out path (uncounted: the first stream is not one of the pool's). */
  handOut(stream: Duplex): Duplex | undefined;
  /** Counts a drop of the stream in the pool's stats. */
  dropped(reason: DropReason): void;
  /** The transport's own check at take time. */
  isUsable(stream: Duplex): boolean;
}

/**
 * The reservation of a server pool's first stream (`reserveFirstId`, ID
 * `00000000`): issued once in the pool's life, kept out of the ordinary
 * gets, taken with `firstStream()`. One small state machine:
 *
 *     waiting ──arrives, a call waits──▶ taken
 *     waiting ──arrives, nobody waits──▶ held ──firstStream()──▶ taken
 *     waiting / held ──dies first──────▶ lost
 *
 * Once `taken` or `lost` it never comes again, so calls reject at once
 * (`FirstStreamTakenError`, `FirstStreamLostError`) instead of waiting.
 * Not expired by `maxIdle`: expiring it would leave nothing to take, ever.
 */
export class FirstStream {
  private phase: Phase = { kind: 'waiting' };
  private readonly waiters = new WaiterQueue<Duplex>();
  /** Holds the stream while `held`, dropping it if it dies. */
  private readonly held: IdleStreams;

  constructor(private readonly host: FirstStreamHost) {
    this.held = new IdleStreams(
      (_id, reason, error) => this.left(reason, error),
      (stream) => host.isUsable(stream),
    );
  }

  get state(): Phase['kind'] {
    return this.phase.kind;
  }

  /** The first stream completed its handshake. */
  arrive(stream: Duplex): void {
    if (this.waiters.size === 0) {
      this.phase = { kind: 'held' };
      this.held.add(FIRST_ID, stream); // a stream already dead leaves at once ('lost')
      return;
    }
    const out = this.host.handOut(stream);
    if (!out) return this.left('stale');
    this.phase = { kind: 'taken' };
    this.waiters.offer(out);
    // The calls still waiting would wait for a stream that never comes.
    this.waiters.failAll(this.takenError());
  }

  /** `firstStream()`: the stream now, when it comes, or why it never will. */
  take(options: WaitOptions, timeout: number): Promise<Duplex> {
    if (this.phase.kind === 'held') {
      const stream = this.held.take(FIRST_ID); // a dead one is dropped: 'lost'
      const out = stream && this.host.handOut(stream);
      if (out) {
        this.phase = { kind: 'taken' };
        return Promise.resolve(out);
      }
      if (stream) this.left('stale');
    }
    if (this.phase.kind === 'lost') return Promise.reject(this.phase.error);
    if (this.phase.kind === 'taken') return Promise.reject(this.takenError());
    return this.waiters.wait({ timeout, signal: options.signal }, () => `the first stream (${FIRST_ID}) did not arrive within ${timeout} ms`);
  }

  /** The pool closes: waiting calls reject with `closed`, a held stream is closed ('shutdown'). */
  close(closed: PoolClosedError): void {
    this.waiters.failAll(closed);
    this.held.destroyAll('shutdown');
  }

  /** The stream left before it was taken. */
  private left(reason: DropReason, error?: unknown): void {
    this.host.dropped(reason);
    if (reason === 'shutdown') return;
    const how = reason === 'error' ? 'failed' : reason === 'end' ? 'was ended by the peer' : reason === 'close' ? 'closed' : 'was dead';
    const lost = new FirstStreamLostError(
      `the first stream (${FIRST_ID}) of server pool ${this.host.name} ${how} before firstStream() took it; a pool issues that ID once, so it will not come again`,
      error === undefined ? undefined : { cause: error },
    );
    this.phase = { kind: 'lost', error: lost };
    // Calls waiting for it would wait for a stream that never comes.
    this.waiters.failAll(lost);
  }

  private takenError(): FirstStreamTakenError {
    return new FirstStreamTakenError(
      `the first stream (${FIRST_ID}) of server pool ${this.host.name} was already taken by firstStream(); a pool issues that ID once, so it will not come again`,
    );
  }
}
