import type { EventEmitter } from 'node:events';
import { PoolTimeoutError } from '../../core/errors.js';
import { Disposers, listen } from '../../core/listeners.js';
import { poolClosed, whenClosed } from './pool-signal.js';

/**
 * Waits for `event` on `emitter`, rejecting on 'error', on 'close' before
 * it, after `timeout` ms, or with a `PoolClosedError` when the pool's
 * `signal` aborts. Removes every listener it added, whatever happens.
 */
export function waitForEvent(emitter: EventEmitter, event: string, timeout: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(poolClosed());
  return new Promise((resolve, reject) => {
    const undo = new Disposers();
    const finish = (error?: unknown): void => {
      undo.dispose();
      if (error === undefined) resolve();
      else reject(error);
    };
    undo.add(
      listen(emitter, {
        [event]: () => finish(),
        error: (error: unknown) => finish(error),
        close: () => finish(Object.assign(new Error(`closed before '${event}'`), { code: 'ERR_STREAM_PREMATURE_CLOSE' })),
      }),
    );
    const timer = setTimeout(() => finish(new PoolTimeoutError(`no '${event}' within ${timeout} ms`)), timeout);
    undo.add(() => clearTimeout(timer));
    if (signal) undo.add(whenClosed(signal, () => finish(poolClosed())));
  });
}
