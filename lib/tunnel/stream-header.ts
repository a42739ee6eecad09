import type { Duplex } from 'node:stream';
import { ControlProtocolError, PoolTimeoutError, StreamCutError } from '../core/errors.js';

/**
 * The 8 bytes a tunnel client writes first on every pooled stream it uses
 * for a tunnelled connection: `NTPR` (reverse: the server named the stream
 * in its OPEN) or `NTPF` (forward: the client named it), then the OPEN's
 * `conn` (u32, big-endian).
 *
 * Why: both ends pick streams (the server for a reverse connection, the
 * client for a forward one) and may pick the same one at the same moment.
 * The server sends nothing into a stream it picked before it has read
 * `NTPR` with its own `conn` there; if it reads `NTPF` instead, the client
 * had taken that stream for a forward connection: the server hands the
 * stream to that connection and tries its reverse one again on another
 * stream. No byte of one connection ever reaches another.
 */
export const STREAM_HEADER_LENGTH = 8;

export interface StreamHeader {
  readonly direction: 'reverse' | 'forward';
  readonly conn: number;
}

const MAGIC = { reverse: Buffer.from('NTPR', 'latin1'), forward: Buffer.from('NTPF', 'latin1') } as const;

/** The header's bytes. */
export function encodeStreamHeader(header: StreamHeader): Buffer {
  const bytes = Buffer.alloc(STREAM_HEADER_LENGTH);
  MAGIC[header.direction].copy(bytes, 0);
  bytes.writeUInt32BE(header.conn >>> 0, 4);
  return bytes;
}

/** The header in `bytes` (exactly 8), or a `ControlProtocolError` for anything else. */
export function decodeStreamHeader(bytes: Buffer): StreamHeader {
  const magic = bytes.subarray(0, 4);
  const direction = magic.equals(MAGIC.reverse) ? 'reverse' : magic.equals(MAGIC.forward) ? 'forward' : undefined;
  if (bytes.length !== STREAM_HEADER_LENGTH || direction === undefined) {
    throw new ControlProtocolError('stream-header', `a tunnelled stream did not start with its header (got ${bytes.subarray(0, 8).toString('hex')})`);
  }
  return { direction, conn: bytes.readUInt32BE(4) };
}

/**
 * Reads the header from `stream`, leaving every byte after it unread (so
 * forwarding starts with the connection's first byte). Rejects on an end,
 * an error or a close before 8 bytes, after `timeout` ms, or when `signal`
 * aborts (with its reason).
 */
export function readStreamHeader(stream: Duplex, timeout: number, signal?: AbortSignal): Promise<StreamHeader> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const timer = setTimeout(() => done(new PoolTimeoutError(`no tunnel header on the pooled stream within ${timeout} ms`)), timeout);
    const onAbort = (): void => done(signal?.reason instanceof Error ? signal.reason : new StreamCutError('closed', 'the tunnelled connection was given up'));
    const onReadable = (): void => {
      while (length < STREAM_HEADER_LENGTH) {
        // Every buffered byte at once (Node 26's read() with no size returns one chunk).
        const chunk = stream.read(stream.readableLength || undefined) as Buffer | null;
        if (chunk === null) return;
        chunks.push(chunk);
        length += chunk.length;
      }
      const bytes = Buffer.concat(chunks, length);
      const rest = bytes.subarray(STREAM_HEADER_LENGTH);
      let header: StreamHeader;
      try {
        header = decodeStreamHeader(bytes.subarray(0, STREAM_HEADER_LENGTH));
      } catch (error) {
        return done(error as Error);
      }
      done(undefined, header, rest);
    };
    const onEnd = (): void => done(new StreamCutError('closed', 'the pooled stream ended before its tunnel header'));
    const onClose = (): void => done(new StreamCutError('closed', 'the pooled stream closed before its tunnel header'));
    const onError = (error: Error): void => done(error);
    function done(error: Error | undefined, header?: StreamHeader, rest?: Buffer): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onClose);
      stream.off('error', onError);
      if (error) return reject(error);
      if (rest && rest.length > 0) stream.unshift(rest);
      resolve(header!);
    }
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onClose);
    stream.once('error', onError);
  });
}
