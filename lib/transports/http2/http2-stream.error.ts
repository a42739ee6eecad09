/** Why a pooled HTTP/2 stream ended without both sides closing it. */
export type Http2AbortReason = 'reset' | 'connection-lost' | 'ping-timeout' | 'goaway';

/**
 * A pooled HTTP/2 stream was cut off: the peer reset it, the session's
 * connection died, the peer stopped answering PINGs, or a GOAWAY excluded
 * it. `code` is `'ECONNRESET'`, as on a reset TCP socket, so code written
 * for the `tcp` transport handles it unchanged; `reason` tells which.
 */
export class Http2StreamAbortedError extends Error {
  readonly code = 'ECONNRESET';
  override readonly name = 'Http2StreamAbortedError';

  constructor(
    readonly reason: Http2AbortReason,
    message: string,
    /** The RST_STREAM code the stream closed with, when known. */
    readonly rstCode?: number,
  ) {
    super(message);
  }
}
