import { constants, type Http2Stream } from 'node:http2';
import { Http2StreamAbortedError } from './http2-stream.error.js';

/**
 * Node ends an HTTP/2 stream that is cut under it (peer RST_STREAM
 * CANCEL, its socket closing) with 'aborted' and 'close' but no 'error':
 * a reader cannot tell that from a clean end. This turns it
 * into an `Http2StreamAbortedError`, with the session's reason when it
 * knows one. A stream closed from this side (`destroy()`, `close()`) is
 * left alone: whoever closed it knows.
 *
 * `destroy()` of a stream still open resets it with CANCEL rather than
 * Node's NO_ERROR. Node 20 spins for ever (SendPendingData under
 * SubmitRstStream) when a stream is reset with any other code while its
 * session is still inside the callback that reported a peer's RST_STREAM
 * (a 'close' handler, or a promise it resolves), and both the pool
 * (close, flush) and applications destroy streams there. CANCEL is queued
 * until that callback returns. It is also what the reset means: the peer's
 * reader sees a cut, not a clean end.
 */
export function guardStream(stream: Http2Stream, reason: () => Http2StreamAbortedError | undefined = () => undefined): void {
  let closedHere = false;
  const close = stream.close;
  stream.close = function (this: Http2Stream, ...args: Parameters<Http2Stream['close']>) {
    closedHere = true;
    return close.apply(this, args);
  };
  const destroy = stream.destroy;
  stream.destroy = function (this: Http2Stream, error?: Error) {
    if (!this.closed && !this.destroyed) this.close(constants.NGHTTP2_CANCEL);
    return destroy.call(this, error);
  };
  stream.once('aborted', () => {
    const known = reason();
    // Node itself calls close(CANCEL) when the socket dies: a known reason wins.
    if (stream.destroyed || (closedHere && !known)) return;
    // RST_STREAM(NO_ERROR) is a peer's "stop sending" after its own END_STREAM:
    // Node keeps what was received readable up to a clean end; so do we.
    if (!known && stream.rstCode === constants.NGHTTP2_NO_ERROR) return;
    const error =
      known ??
      new Http2StreamAbortedError('reset', `the peer reset the HTTP/2 stream (RST_STREAM code ${String(stream.rstCode)})`, stream.rstCode);
    stream.destroy(error);
  });
}

/**
 * Whether a closed stream ended on both sides by END_STREAM; anything else
 * may have cost an RST_STREAM. (`writableEnded`, not `writableFinished`:
 * Node may close a stream whose two ends are done before 'finish'.)
 */
export function closedGracefully(stream: Http2Stream): boolean {
  return stream.writableEnded && stream.readableEnded && stream.rstCode === 0;
}
