import { PoolClosedError, PoolError } from '../../core/errors.js';
import type { Disposer } from '../../core/listeners.js';
import { onAbort } from '../../core/waiters.js';

/**
 * The signal a transport gets with a dial (`DialContext.signal`) is the
 * pool's own lifecycle: it aborts when the pool closes, and every dial in
 * flight shares it (a single-mode pool may have hundreds). So a dial never
 * adds an 'abort' listener of its own to it: `whenClosed` registers in the
 * one shared listener per signal (`onAbort`), which is O(1) to undo and
 * never trips Node's MaxListenersExceededWarning. And what a dial fails
 * with then is the pool's close (`PoolClosedError`, `POOL_ERR_CLOSED`),
 * not a caller's abort (`PoolAbortedError` is for a signal the caller
 * passed to a get).
 */

/** The error of a dial or handshake that the pool's close reached. */
export function poolClosed(during?: string): PoolClosedError {
  return new PoolClosedError(during ? `the pool closed during ${during}` : 'the pool closed');
}

/**
 * Calls `callback` once when the pool's `signal` aborts (at once when it
 * already has: a dial that awaited something since its last check must not
 * wait for its timeout); the disposer forgets it.
 */
export function whenClosed(signal: AbortSignal, callback: () => void): Disposer {
  if (signal.aborted) {
    callback();
    return () => undefined;
  }
  return onAbort(signal, callback);
}

/**
 * `work`, or a `PoolClosedError` as soon as the pool's `signal` aborts.
 * A failure of `work` that is not a `PoolError` goes through `wrap`.
 */
export function untilClosed<T>(work: Promise<T>, signal: AbortSignal, wrap: (error: unknown) => PoolError, during?: string): Promise<T> {
  if (signal.aborted) return Promise.reject(poolClosed(during));
  return new Promise<T>((resolve, reject) => {
    const forget = whenClosed(signal, () => reject(poolClosed(during)));
    work.then(
      (value) => {
        forget();
        resolve(value);
      },
      (error: unknown) => {
        forget();
        reject(error instanceof PoolError ? error : wrap(error));
      },
    );
  });
}
