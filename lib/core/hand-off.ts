import type { Duplex } from 'node:stream';

/** A stream that can no longer carry data both ways. */
export function isDead(stream: Duplex): boolean {
  return (
    stream.destroyed ||
    stream.writableEnded ||
    (stream.readableEnded && stream.readableLength === 0) ||
    stream.errored != null
  );
}

/**
 * Called on every stream a pool hands to the application, just before it
 * does. Between the hand-out and the moment the application attaches its
 * own 'error' listener (after an `await`, after telling the other side the
 * ID...), an error of the stream (a reset, a failed write) would have no
 * listener and crash the process. Until the first other 'error' listener
 * comes, this one takes such an error: the stream is destroyed with it
 * (`stream.errored`, 'close'; `finished()` and async iteration report it),
 * so the application still learns of it. As soon as anyone adds an 'error'
 * listener, this one steps aside and Node's usual rules apply.
 */
export function guardUntilListened(stream: Duplex): Duplex {
  if (stream.listenerCount('error') > 0) return stream;
  const onError = function (this: Duplex, error: unknown): void {
    if (!this.destroyed) this.destroy(error instanceof Error ? error : new Error(String(error)));
  };
  const onNewListener = function (this: Duplex, event: string | symbol): void {
    if (event !== 'error') return;
    this.off('error', onError);
    this.off('newListener', onNewListener);
  };
  stream.on('error', onError);
  stream.on('newListener', onNewListener);
  return stream;
}
