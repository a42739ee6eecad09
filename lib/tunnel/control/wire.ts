/**
 * The constants of the tunnel control protocol and the two small byte
 * helpers its codec is written with. The layouts are documented byte by
 * byte in docs/extensions/tunnel-control.md; this file and that document
 * change together.
 */
import { ControlProtocolError } from '../../core/errors.js';

/** The 4 bytes each end writes once, before its first frame: ASCII `NTPC`. */
export const CONTROL_PREAMBLE = Buffer.from('NTPC', 'ascii');

/** The protocol versions this build speaks. */
export const CONTROL_VERSION = { min: 1, max: 1 } as const;

/** Frame header: type (1 byte) and body length (4 bytes, big-endian). */
export const FRAME_HEADER_LENGTH = 5;

/** The largest frame body a version-1 end sends or accepts. */
export const MAX_FRAME_BODY = 65_536;

/** Message types. 0x00–0x7f must be understood (unknown: protocol error); 0x80–0xff may be skipped. */
export const MessageType = {
  HELLO: 0x01,
  HELLO_ACK: 0x02,
  ERROR: 0x03,
  OPEN: 0x10,
  FAIL: 0x11,
  END: 0x12,
  SHUT: 0x13,
  PING: 0x20,
  PONG: 0x21,
  FLUSH: 0x30,
  DRAIN: 0x31,
  /** A hint (skippable): the server has gets waiting for this client's streams; the client may dial more now. */
  WANT: 0x80,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** Types from here on are skipped by an end that does not know them. */
export const FIRST_SKIPPABLE_TYPE = 0x80;

/**
 * A code table: names on the API side, one byte on the wire. Each table
 * keeps 255 for 'other' (a peer's newer code is read as 'other', never an
 * error, where the table says so).
 */
function table<const N extends string>(entries: Record<N, number>): { byName: Record<N, number>; byCode: Map<number, N> } {
  return { byName: entries, byCode: new Map(Object.entries(entries).map(([name, code]) => [code as number, name as N])) };
}

/** Route direction: 'reverse' = listener on the server, target behind the client; 'forward' = the other way round. */
export const DIRECTIONS = table({ reverse: 1, forward: 2 });
export type Direction = keyof typeof DIRECTIONS.byName;

/** PROXY protocol header towards the target. */
export const PROXY_PROTOCOLS = table({ none: 0, v1: 1, v2: 2 });
export type ProxyProtocolWire = keyof typeof PROXY_PROTOCOLS.byName;

/** Per-route answer in HELLO_ACK: 0 accepted, any other value a refusal. */
export const ROUTE_STATUSES = table({
  accepted: 0,
  'not-allowed': 1,
  'port-not-allowed': 2,
  'port-in-use': 3,
  duplicate: 4,
  invalid: 5,
  'direction-not-allowed': 6,
  'too-many-routes': 7,
  'target-not-allowed': 8,
  other: 255,
});
export type RouteStatus = keyof typeof ROUTE_STATUSES.byName;
export type RouteRefusal = Exclude<RouteStatus, 'accepted'>;

/** Why one tunnelled connection could not be opened (FAIL). */
export const FAIL_REASONS = table({
  'no-stream': 1,
  'unknown-route': 2,
  'target-refused': 3,
  'target-timeout': 4,
  'target-unreachable': 5,
  limit: 6,
  draining: 7,
  'not-allowed': 8,
  other: 255,
});
export type FailReason = keyof typeof FAIL_REASONS.byName;

/** How a tunnelled connection ended, as the side that sends END saw it. */
export const END_KINDS = table({
  /** Both directions ended with a clean end of data. */
  end: 0,
  /** The public peer reset its connection. */
  'public-reset': 1,
  /** The target reset its connection, or refused after accepting. */
  'target-reset': 2,
  /** The pooled stream was cut. */
  'stream-cut': 3,
  /** A timeout of the route (connect or idle) ended it. */
  timeout: 4,
  /** This side shut down (drain timeout, close). */
  shutdown: 5,
  other: 255,
});
export type EndKind = keyof typeof END_KINDS.byName;

/** Why an end closes the whole channel (ERROR). */
export const ERROR_CODES = table({
  version: 1,
  protocol: 2,
  'not-allowed': 3,
  duplicate: 4,
  shutdown: 5,
  timeout: 6,
  other: 255,
});
export type ControlErrorCode = keyof typeof ERROR_CODES.byName;

/** Address family of the public peer in OPEN. */
export const FAMILY_NONE = 0;
export const FAMILY_IPV4 = 4;
export const FAMILY_IPV6 = 6;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Appends fields to a growing list of buffers; `done()` gives the body. */
export class ByteWriter {
  private readonly parts: Buffer[] = [];

  u8(value: number): this {
    this.parts.push(Buffer.of(value));
    return this;
  }

  u16(value: number): this {
    const part = Buffer.alloc(2);
    part.writeUInt16BE(value);
    this.parts.push(part);
    return this;
  }

  u32(value: number): this {
    const part = Buffer.alloc(4);
    part.writeUInt32BE(value);
    this.parts.push(part);
    return this;
  }

  u64(value: number): this {
    const part = Buffer.alloc(8);
    part.writeBigUInt64BE(BigInt(value));
    this.parts.push(part);
    return this;
  }

  bytes(value: Uint8Array): this {
    this.parts.push(Buffer.from(value));
    return this;
  }

  /** A string with a 1-byte length (at most 255 bytes of UTF-8). */
  str8(value: string, field: string): this {
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length > 0xff) throw new RangeError(`${field} is ${bytes.length} bytes of UTF-8; at most 255 fit`);
    return this.u8(bytes.length).bytes(bytes);
  }

  /** A string with a 2-byte length; a longer text is cut at a character boundary. */
  str16(value: string): this {
    let bytes = Buffer.from(value, 'utf8');
    if (bytes.length > 0xffff) bytes = Buffer.from(cutUtf8(value, 0xffff), 'utf8');
    return this.u16(bytes.length).bytes(bytes);
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** The longest prefix of `value` whose UTF-8 takes at most `max` bytes. */
function cutUtf8(value: string, max: number): string {
  let out = '';
  let size = 0;
  for (const char of value) {
    const length = Buffer.byteLength(char, 'utf8');
    if (size + length > max) break;
    out += char;
    size += length;
  }
  return out;
}

/**
 * Reads the fields of one message body, strictly: a read past the end, a
 * string that is not UTF-8, or bytes left over at `end()` throw a
 * `ControlProtocolError` ('malformed') naming the message and field.
 */
export class ByteReader {
  private offset = 0;

  constructor(
    private readonly body: Buffer,
    private readonly message: string,
  ) {}

  private take(length: number, field: string): Buffer {
    if (this.offset + length > this.body.length) {
      throw this.malformed(`${field} needs ${length} bytes at offset ${this.offset}, the body has ${this.body.length}`);
    }
    const out = this.body.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  u8(field: string): number {
    return this.take(1, field)[0]!;
  }

  u16(field: string): number {
    return this.take(2, field).readUInt16BE();
  }

  u32(field: string): number {
    return this.take(4, field).readUInt32BE();
  }

  /** An unsigned 64-bit count; above 2^53 − 1 is malformed (no count of bytes gets there). */
  u64(field: string): number {
    const value = this.take(8, field).readBigUInt64BE();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw this.malformed(`${field} is ${value}, above 2^53 - 1`);
    return Number(value);
  }

  bytes(length: number, field: string): Buffer {
    return Buffer.from(this.take(length, field));
  }

  str8(field: string): string {
    return this.text(this.u8(`${field} length`), field);
  }

  str16(field: string): string {
    return this.text(this.u16(`${field} length`), field);
  }

  /** A code from a table; unknown codes are malformed unless the table has 'other' and `lenient` is set. */
  code<N extends string>(codes: { byCode: Map<number, N> }, field: string, lenient = false): N {
    const value = this.u8(field);
    const name = codes.byCode.get(value);
    if (name !== undefined) return name;
    if (lenient && codes.byCode.get(255) !== undefined) return codes.byCode.get(255)!;
    throw this.malformed(`${field} ${value} is not a known value`);
  }

  end(): void {
    if (this.offset !== this.body.length) throw this.malformed(`${this.body.length - this.offset} bytes left after the last field`);
  }

  malformed(detail: string): ControlProtocolError {
    return new ControlProtocolError('malformed', `malformed ${this.message} message: ${detail}`);
  }

  private text(length: number, field: string): string {
    const bytes = this.take(length, field);
    try {
      return utf8.decode(bytes);
    } catch {
      throw this.malformed(`${field} is not valid UTF-8`);
    }
  }
}
