import type { Duplex } from 'node:stream';

const noop = (): void => undefined;

/**
 * Set on every stream a pool hands to the application. A transport reads
 * it when the stream is destroyed: an idle stream (never handed out) whose
 * peer has ended its side carries nothing to cut, so it may close as usual;
 * a stream the application had is cut unless it ended its writing.
 */
export const HANDED_OUT: unique symbol = Symbol.for('nestjs-tunnel-pool.handedOut');

/** Whether a pool handed `stream` to the application. */
export function wasHandedOut(stream: Duplex): boolean {
  return (stream as Duplex & { [HANDED_OUT]?: true })[HANDED_OUT] === true;
}

/**
 * The streams a pool handed to the application that are still open. They
 * are the application's: the pool only counts them and, when it closes,
 * waits for them, then cuts those still open at the close timeout.
 *
 * One 'close' listener, shared by every stream (Node calls it with `this`
 * set to the stream), so a taken stream costs a set entry and nothing else.
 */
export class TakenStreams {
  private readonly open = new Set<Duplex>();
  private readonly onClose: (this: Duplex) => void;
  private onEmpty?: () => void;

  constructor() {
    const taken = this;
    this.onClose = function () {
      taken.closed(this);
    };
  }

  /** Handed out and not closed yet. */
  get size(): number {
    return this.open.size;
  }

  /** Tracks `stream` until its 'close'; returns it. */
  add(stream: Duplex): Duplex {
    (stream as Duplex & { [HANDED_OUT]?: true })[HANDED_OUT] = true;
    if (stream.closed || this.open.has(stream)) return stream;
    this.open.add(stream);
    stream.on('close', this.onClose);
    return stream;
  }

  /**
   * Resolves once every tracked stream has closed, or after `timeout` ms:
   * then the streams still open are destroyed with `cutError()` (each gets
   * its own) and no longer tracked. Call it once, when the pool closes and
   * nothing more can be taken.
   */
  closeWithin(timeout: number, cutError: () => Error): Promise<void> {
    if (this.open.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = Number.isFinite(timeout) ? setTimeout(() => this.cutAll(cutError), timeout) : undefined;
      this.onEmpty = () => {
        clearTimeout(timer);
        this.onEmpty = undefined;
        resolve();
      };
    });
  }

  /**
   * Destroys every tracked stream with its own `cutError()`, now (the
   * close timeout ran out, or the pool is destroyed). The error reaches the
   * application's 'error' listeners; a stream without one is still cut (its
   * `errored` holds the error) but does not crash the process. Settles a
   * pending `closeWithin`.
   */
  cutAll(cutError: () => Error): void {
    for (const stream of [...this.open]) {
      this.open.delete(stream);
      stream.off('close', this.onClose);
      if (stream.listenerCount('error') === 0) stream.on('error', noop);
      stream.destroy(cutError());
    }
    this.onEmpty?.();
  }

  private closed(stream: Duplex): void {
    if (!this.open.delete(stream)) return;
    stream.off('close', this.onClose);
    if (this.open.size === 0) this.onEmpty?.();
  }
}
