import { StreamCutError, type StreamCutReason } from '../../core/errors.js';

/**
 * Why a pooled HTTP/2 stream ended without both sides closing it.
 * @deprecated Use `StreamCutReason`: one cut error for every transport.
 */
export type Http2AbortReason = StreamCutReason;

/**
 * The name HTTP/2 cuts had before every transport shared one class: the
 * same class as `StreamCutError` (so `instanceof` either name matches a
 * cut of any transport), kept so code written against it still works.
 * @deprecated Use `StreamCutError`.
 */
export const Http2StreamAbortedError = StreamCutError;
/** @deprecated Use `StreamCutError`. */
export type Http2StreamAbortedError = StreamCutError;
