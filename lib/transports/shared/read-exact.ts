import type { Readable } from 'node:stream';
import { HandshakeError, PoolAbortedError, PoolRefusedError } from '../../core/errors.js';

/**
 * Reads exactly `length` bytes and leaves everything after them in the
 * stream's buffer, unread: the application gets those bytes first. Rejects
 * with `HandshakeError` if the stream ends, fails or `timeout` passes first.
 */
export interface ReadExactOptions {
  /** What is being read, for messages (default 'the ID'). */
  what?: string;
  /** When set, a close before the first byte is this refusal (PoolRefusedError), not a handshake error. */
  refusal?: string;
}

export function readExact(stream: Readable, length: number, timeout: number, signal?: AbortSignal, options: ReadExactOptions = {}): Promise<Buffer> {
  const { what = 'the ID', refusal } = options;
  return new Promise((resolve, reject) => {
    const finish = (error: Error | null, value?: Buffer): void => {
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('close', onClose);
      signal?.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(value!);
    };
    const onReadable = (): void => {
      const chunk = stream.read(length) as Buffer | null;
      if (chunk === null) return;
      if (chunk.length < length) {
        finish(new HandshakeError(`the peer closed after ${chunk.length} of the ${length} bytes of ${what}`));
        return;
      }
      finish(null, chunk);
    };
    const closedEarly = (message: string): Error =>
      refusal && stream.readableLength === 0 ? new PoolRefusedError(refusal) : new HandshakeError(message);
    const onEnd = (): void => finish(closedEarly(`the peer closed before sending ${what}`));
    const onClose = (): void => finish(closedEarly(`the connection closed before ${what} arrived`));
    const onError = (error: Error): void => finish(new HandshakeError(`the connection failed while reading ${what}: ${error.message}`, { cause: error }));
    const onAbort = (): void => finish(new PoolAbortedError('the pool closed during the handshake'));
    // Already over: no event would come, so it would wait for the timeout.
    if (signal?.aborted) return reject(new PoolAbortedError('the pool closed during the handshake'));
    if (stream.destroyed) return reject(closedEarly(`the connection closed before ${what} arrived`));
    if (stream.readableEnded) return reject(closedEarly(`the peer closed before sending ${what}`));
    const timer = setTimeout(() => finish(new HandshakeError(`${what} did not arrive within ${timeout} ms`)), timeout);
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
