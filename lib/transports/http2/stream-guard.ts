import { constants, type Http2Stream } from 'node:http2';
import { StreamCutError } from '../../core/errors.js';

/** What a guarded stream's session tells it: why streams are being cut, and that one closed. */
export interface StreamOwner {
  /** Set when the session was cut (socket lost, PING timeout...), so its streams say why. */
  readonly abortReason: StreamCutError | undefined;
  /** Called once, when a guarded stream of this owner has closed. */
  streamClosed(stream: Http2Stream): void;
}

const kOwner = Symbol('owner');
const kClosedHere = Symbol('closedHere');
const kCut = Symbol('cut');

interface Guarded extends Http2Stream {
  [kOwner]: StreamOwner;
  [kClosedHere]?: true;
  [kCut]?: true;
  _final(callback: (error?: Error | null) => void): void;
}

/**
 * Node ends an HTTP/2 stream that is cut under it (peer RST_STREAM
 * CANCEL, its socket closing) with 'aborted' and 'close' but no 'error':
 * a reader cannot tell that from a clean end. This turns it
 * into a `StreamCutError`, with the owner's reason when it
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
 * reader sees a cut, not a clean end. Node's `close()` ends the writable
 * side first when it is still open, and that end is an END_STREAM queued
 * before the RST_STREAM: the peer would read a clean end, then the error
 * (and a `pipe()` would already have forwarded the end). A cut stream skips
 * that END_STREAM: the peer gets RST_STREAM(CANCEL) alone.
 *
 * A pool may hold thousands of idle streams, so nothing here is made per
 * stream: the functions and listeners are shared, `this` being the stream,
 * and the stream carries its owner in one property.
 */
export function guardStream(stream: Http2Stream, owner: StreamOwner): void {
  const guarded = stream as Guarded;
  guarded[kOwner] = owner;
  guarded.close = closeHere;
  guarded.destroy = destroyHere;
  guarded._final = finalUnlessCut;
  guarded.on('aborted', onAborted);
  guarded.on('close', onClose);
}

function closeHere(this: Guarded, ...args: Parameters<Http2Stream['close']>): void {
  this[kClosedHere] = true;
  (Object.getPrototypeOf(this) as Http2Stream).close.apply(this, args);
}

function destroyHere(this: Guarded, error?: Error): Guarded {
  if (!this.closed && !this.destroyed) {
    this[kCut] = true;
    this.close(constants.NGHTTP2_CANCEL);
  } else if (!error && !this.destroyed && cutByPeer(this)) {
    // Node destroys a stream the peer reset without an error, and emits no
    // 'aborted' once this side had ended its writing: the reader would see
    // a clean end of a stream cut short.
    error = this[kOwner].abortReason ?? new StreamCutError('reset', `the peer reset the HTTP/2 stream (RST_STREAM code ${String(this.rstCode)})`, { rstCode: this.rstCode });
  }
  return (Object.getPrototypeOf(this) as Http2Stream).destroy.call(this, error) as Guarded;
}

/** Closed by the peer's RST_STREAM (or the session's death), not by this side, before the peer's END_STREAM was read. */
function cutByPeer(stream: Guarded): boolean {
  if (stream[kClosedHere] || !stream.closed || endOfStreamRead(stream)) return false;
  return stream[kOwner].abortReason !== undefined || (stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR);
}

/** The peer's END_STREAM arrived (its bytes may still wait unread: they and the end are the reader's). */
function endOfStreamRead(stream: Guarded): boolean {
  const state = (stream as Guarded & { _readableState?: { ended?: boolean } })._readableState;
  return stream.readableEnded || state?.ended === true;
}

/** `end()`'s END_STREAM, except when `close()` ends the writable side of a stream being cut. */
function finalUnlessCut(this: Guarded, callback: (error?: Error | null) => void): void {
  if (this[kCut]) {
    callback();
    return;
  }
  (Object.getPrototypeOf(this) as Guarded)._final.call(this, callback);
}

function onAborted(this: Guarded): void {
  const known = this[kOwner].abortReason;
  // Node itself calls close(CANCEL) when the socket dies: a known reason wins.
  if (this.destroyed || (this[kClosedHere] && !known)) return;
  // RST_STREAM(NO_ERROR) is a peer's "stop sending" after its own END_STREAM:
  // Node keeps what was received readable up to a clean end; so do we.
  if (!known && this.rstCode === constants.NGHTTP2_NO_ERROR) return;
  this.destroy(known ?? new StreamCutError('reset', `the peer reset the HTTP/2 stream (RST_STREAM code ${String(this.rstCode)})`, { rstCode: this.rstCode }));
}

function onClose(this: Guarded): void {
  this[kOwner].streamClosed(this);
}

/**
 * Whether a closed stream ended on both sides by END_STREAM; anything else
 * may have cost an RST_STREAM. (`writableEnded`, not `writableFinished`:
 * Node may close a stream whose two ends are done before 'finish'.)
 */
export function closedGracefully(stream: Http2Stream): boolean {
  return stream.writableEnded && stream.readableEnded && stream.rstCode === 0;
}
