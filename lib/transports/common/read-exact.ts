import type { Readable } from 'node:stream';
import { HandshakeError, PoolRefusedError } from '../../core/errors.js';
import { Disposers, listen } from '../../core/listeners.js';
import { poolClosed, whenClosed } from './pool-signal.js';

export interface ReadExactOptions {
  /** What is being read, for messages (default 'the ID'). */
  what?: string;
  /** When set, a close before the first byte is this refusal (PoolRefusedError), not a handshake error. */
  refusal?: string;
}

/**
 * Reads exactly `length` bytes and leaves everything after them in the
 * stream's buffer, unread: the application gets those bytes first. Rejects
 * with `HandshakeError` if the stream ends, fails or `timeout` passes first,
 * with `PoolClosedError` if the pool's `signal` aborts.
 */
export function readExact(stream: Readable, length: number, timeout: number, signal?: AbortSignal, options: ReadExactOptions = {}): Promise<Buffer> {
  const { what = 'the ID', refusal } = options;
  const closedEarly = (message: string): Error =>
    refusal && stream.readableLength === 0 ? new PoolRefusedError(refusal) : new HandshakeError(message);
  // Already over: no event would come, so it would wait for the timeout.
  if (signal?.aborted) return Promise.reject(poolClosed('the handshake'));
  if (stream.destroyed) return Promise.reject(closedEarly(`the connection closed before ${what} arrived`));
  if (stream.readableEnded) return Promise.reject(closedEarly(`the peer closed before sending ${what}`));
  return new Promise((resolve, reject) => {
    const undo = new Disposers();
    const finish = (error: Error | null, value?: Buffer): void => {
      undo.dispose();
      if (error) reject(error);
      else resolve(value!);
    };
    undo.add(
      listen(stream, {
        readable: () => {
          const chunk = stream.read(length) as Buffer | null;
          if (chunk === null) return;
          if (chunk.length < length) finish(new HandshakeError(`the peer closed after ${chunk.length} of the ${length} bytes of ${what}`));
          else finish(null, chunk);
        },
        end: () => finish(closedEarly(`the peer closed before sending ${what}`)),
        error: (error: Error) => finish(new HandshakeError(`the connection failed while reading ${what}: ${error.message}`, { cause: error })),
        close: () => finish(closedEarly(`the connection closed before ${what} arrived`)),
      }),
    );
    const timer = setTimeout(() => finish(new HandshakeError(`${what} did not arrive within ${timeout} ms`)), timeout);
    undo.add(() => clearTimeout(timer));
    if (signal) undo.add(whenClosed(signal, () => finish(poolClosed('the handshake'))));
  });
}
