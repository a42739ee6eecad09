import type { EventEmitter } from 'node:events';
import { PoolAbortedError, PoolTimeoutError } from '../../core/errors.js';

/**
 * Waits for `event` on `emitter`, rejecting on 'error', on 'close' before
 * it, after `timeout` ms, or when `signal` aborts. Removes every listener it
 * added, whatever happens.
 */
export function waitForEvent(emitter: EventEmitter, event: string, timeout: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (error?: unknown): void => {
      clearTimeout(timer);
      emitter.off(event, onEvent);
      emitter.off('error', onError);
      emitter.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const onEvent = (): void => finish();
    const onError = (error: unknown): void => finish(error);
    const onClose = (): void => finish(Object.assign(new Error(`closed before '${event}'`), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    const onAbort = (): void => finish(new PoolAbortedError('the pool closed'));
    const timer = setTimeout(() => finish(new PoolTimeoutError(`no '${event}' within ${timeout} ms`)), timeout);
    emitter.once(event, onEvent);
    emitter.on('error', onError);
    emitter.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
