import { ControlProtocolError } from '../../core/errors.js';
import { decodeBody, type ControlMessage } from './messages.js';
import { CONTROL_PREAMBLE, FRAME_HEADER_LENGTH, MAX_FRAME_BODY } from './wire.js';

/** What the decoder found in the bytes pushed so far. */
export type Decoded =
  | { readonly kind: 'message'; readonly message: ControlMessage }
  /** A frame of a skippable type (0x80–0xff) this end does not know: read past. */
  | { readonly kind: 'skipped'; readonly type: number; readonly length: number }
  /** The bytes broke the protocol; the decoder reads nothing more. */
  | { readonly kind: 'error'; readonly error: ControlProtocolError };

/**
 * The receiving half of a control channel as a pure state machine: bytes in
 * (in chunks of any size), preamble checked, frames cut and decoded, in
 * order. It never throws: a protocol error is returned as an `error` entry,
 * after which the decoder is spent and ignores further input.
 *
 * It holds at most one frame's bytes (header plus `MAX_FRAME_BODY`): a frame
 * that announces a longer body fails at its header, before its body arrives.
 */
export class ControlDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Preamble bytes still expected. */
  private preambleLeft: number;
  private failed = false;
  /** The header of the frame whose body is arriving. */
  private header: { type: number; length: number } | undefined;

  /** `expectPreamble: false` decodes bare frames (a test, or a stream whose preamble was read elsewhere). */
  constructor(options: { expectPreamble?: boolean } = {}) {
    this.preambleLeft = options.expectPreamble === false ? 0 : CONTROL_PREAMBLE.length;
  }

  /** Whether a protocol error has been returned. */
  get spent(): boolean {
    return this.failed;
  }

  /** Bytes held, waiting for the rest of their frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Uint8Array): Decoded[] {
    if (this.failed || chunk.length === 0) return [];
    let data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.preambleLeft > 0) {
      const offset = CONTROL_PREAMBLE.length - this.preambleLeft;
      const length = Math.min(this.preambleLeft, data.length);
      if (!data.subarray(0, length).equals(CONTROL_PREAMBLE.subarray(offset, offset + length))) {
        return this.fail(
          new ControlProtocolError(
            'preamble',
            'the peer does not speak the tunnel control protocol: the stream does not start with "NTPC" (a plain pool, a Go peer, or another program at the other end)',
          ),
        );
      }
      this.preambleLeft -= length;
      data = data.subarray(length);
      if (data.length === 0) return [];
    }
    this.chunks.push(data);
    this.buffered += data.length;
    const out: Decoded[] = [];
    for (;;) {
      if (this.header === undefined) {
        if (this.buffered < FRAME_HEADER_LENGTH) return out;
        const bytes = this.consume(FRAME_HEADER_LENGTH);
        const header = { type: bytes[0]!, length: bytes.readUInt32BE(1) };
        if (header.length > MAX_FRAME_BODY) {
          const hex = header.type.toString(16).padStart(2, '0');
          out.push(...this.fail(new ControlProtocolError('too-large', `a control frame of type 0x${hex} announces ${header.length} bytes; at most ${MAX_FRAME_BODY} are allowed`)));
          return out;
        }
        this.header = header;
      }
      // The body is joined once, when all of it is there: byte-sized chunks cost no quadratic copying.
      if (this.buffered < this.header.length) return out;
      const { type, length } = this.header;
      this.header = undefined;
      const decoded = decodeFrame(type, this.consume(length));
      if (decoded.kind === 'error') {
        out.push(...this.fail(decoded.error));
        return out;
      }
      out.push(decoded);
    }
  }

  /** The stream ended: anything held (or a preamble cut short) is a truncated frame. */
  end(): Decoded[] {
    if (this.failed) return [];
    if (this.buffered > 0 || this.header !== undefined) return this.fail(new ControlProtocolError('truncated', `the control stream ended inside a frame (${this.buffered} bytes of it arrived)`));
    if (this.preambleLeft > 0 && this.preambleLeft < CONTROL_PREAMBLE.length) {
      return this.fail(new ControlProtocolError('truncated', 'the control stream ended inside its preamble'));
    }
    return [];
  }

  private fail(error: ControlProtocolError): Decoded[] {
    this.failed = true;
    this.chunks = [];
    this.buffered = 0;
    this.header = undefined;
    return [{ kind: 'error', error }];
  }

  /** Takes the first `length` buffered bytes (`length` <= buffered), joining chunks only when it must. */
  private consume(length: number): Buffer {
    if (length === 0) return Buffer.alloc(0);
    let first = this.chunks[0]!;
    if (first.length < length) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    if (first.length === length) this.chunks.shift();
    else this.chunks[0] = first.subarray(length);
    this.buffered -= length;
    return first.subarray(0, length);
  }
}

/** One frame's body decoded; never throws. */
export function decodeFrame(type: number, body: Buffer): Decoded {
  try {
    const message = decodeBody(type, body);
    return message === undefined ? { kind: 'skipped', type, length: body.length } : { kind: 'message', message };
  } catch (error) {
    if (error instanceof ControlProtocolError) return { kind: 'error', error };
    // A decoder bug must still not escape as an untyped throw.
    return { kind: 'error', error: new ControlProtocolError('malformed', `a control message of type 0x${type.toString(16)} could not be decoded`, { cause: error }) };
  }
}

/** Every entry decoded from a complete byte string (preamble first unless told otherwise), including a final truncation. */
export function decodeAll(bytes: Uint8Array, options: { expectPreamble?: boolean } = {}): Decoded[] {
  const decoder = new ControlDecoder(options);
  return [...decoder.push(bytes), ...decoder.end()];
}
