import { PoolError, PoolErrorCode } from './errors.js';
import { WaiterQueue } from './waiters.js';

/** Resolves when `work` settles or after `ms`, whichever is first; never rejects. */
export function withTimeout(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = Number.isFinite(ms) ? setTimeout(resolve, ms) : undefined;
    work.then(
      () => {
        if (timer) clearTimeout(timer);
        resolve();
      },
      () => {
        if (timer) clearTimeout(timer);
        resolve();
      },
    );
  });
}

/** `work` bounded by a timeout and an abort signal, rejecting with the pool's typed errors. */
export function withDeadline<T>(work: Promise<T>, ms: number, signal: AbortSignal | undefined, message: string): Promise<T> {
  const queue = new WaiterQueue<T>();
  const waiting = queue.wait({ timeout: ms, signal }, () => message);
  work.then(
    (value) => queue.offer(value),
    (error: unknown) => queue.failAll(error instanceof PoolError ? error : new PoolError(PoolErrorCode.DIAL, String(error), { cause: error })),
  );
  return waiting;
}
