import type { Duplex } from 'node:stream';
import { TargetConnectError } from '../core/errors.js';
import { canReset } from '../transports/common/tcp-handle.js';
import type { EndMessage, FailMessage } from './control/messages.js';
import { CONTROL_PREAMBLE, FRAME_HEADER_LENGTH, MAX_FRAME_BODY, MessageType, type EndKind, type FailReason } from './control/wire.js';
import type { ForwardResult } from './forward.js';

/** The magic of a forward connection's stream header (stream-header.ts). */
const FORWARD_HEADER = Buffer.from('NTPF', 'latin1');

/** The first bytes of a control stream: the preamble and a HELLO frame header (type, body length). */
const MARK_LENGTH = CONTROL_PREAMBLE.length + FRAME_HEADER_LENGTH;

/**
 * How the tunnel server recognises a client's control stream among its
 * idle pooled streams: it starts with the control preamble followed by the
 * header of a HELLO frame of an allowed length. 'wait' while the bytes so
 * far are a prefix of such a start. A stream that starts with a forward
 * connection's header (`NTPF`) is 'keep': its bytes wait for the taker.
 */
export function matchPreamble(bytes: Buffer): 'claim' | 'wait' | 'keep' | 'pass' {
  const head = bytes.subarray(0, CONTROL_PREAMBLE.length);
  // A forward connection's stream header, written before the server takes the stream: its bytes are the taker's.
  if (FORWARD_HEADER.subarray(0, head.length).equals(head)) return head.length < FORWARD_HEADER.length ? 'wait' : 'keep';
  if (!CONTROL_PREAMBLE.subarray(0, head.length).equals(head)) return 'pass';
  if (bytes.length > CONTROL_PREAMBLE.length && bytes[CONTROL_PREAMBLE.length] !== MessageType.HELLO) return 'pass';
  if (bytes.length < MARK_LENGTH) return 'wait';
  return bytes.readUInt32BE(CONTROL_PREAMBLE.length + 1) <= MAX_FRAME_BODY ? 'claim' : 'pass';
}

/** The FAIL reason for an error met while opening a tunnelled connection. */
export function failReasonOf(error: unknown): FailReason {
  if (error instanceof TargetConnectError) {
    if (error.reason === 'refused') return 'target-refused';
    if (error.reason === 'timeout') return 'target-timeout';
    if (error.reason === 'unreachable' || error.reason === 'dns') return 'target-unreachable';
  }
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === 'POOL_ERR_ROUTE_LIMIT') return 'limit';
  if (code === 'POOL_ERR_TIMEOUT' || code === 'POOL_ERR_INVALID_ID') return 'no-stream';
  return 'other';
}

/**
 * This side's END for a forwarding of `local` (a = the public socket or the
 * target) with the pooled stream (b): what it wrote into the stream and
 * read from it, and how it ended as this side saw it.
 */
export function accountingOf(conn: number, id: string, result: ForwardResult): Omit<EndMessage, 'type'> {
  let how: EndKind = 'end';
  if (result.aToB.ended === 'timeout' || result.bToA.ended === 'timeout') how = 'timeout';
  else if (result.error !== undefined) how = 'other';
  return { conn, id, sent: result.aToB.bytes, received: result.bToA.bytes, how };
}

/** A FAIL message body for `error`. */
export function failOf(conn: number, id: string, error: unknown): Omit<FailMessage, 'type'> {
  const text = error instanceof Error ? error.message : String(error);
  return { conn, id, reason: failReasonOf(error), text: text.slice(0, 200) };
}

/** Destroys a stream with an error listener in place, so its error never reaches the process. */
export function destroyQuietly(stream: Duplex, error?: Error): void {
  stream.on('error', () => undefined);
  stream.destroy(error);
}

/** Resets a public tcp socket (RST): the public peer sees ECONNRESET, never a clean end. */
export function resetSocket(socket: import('node:net').Socket): void {
  socket.on('error', () => undefined);
  if (socket.destroyed) return;
  // canReset: never while a shutdown is in flight (the reset would fail with EINVAL and leave the handle open for good).
  if (typeof socket.resetAndDestroy === 'function' && canReset(socket)) socket.resetAndDestroy();
  else socket.destroy();
}
