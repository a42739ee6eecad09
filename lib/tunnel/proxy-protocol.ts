import net from 'node:net';
import type { Readable } from 'node:stream';
import { ProxyHeaderError } from '../core/errors.js';
import { listen } from '../core/listeners.js';

/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): a header sent first on
 * a connection to a target, so the target sees the real client address
 * behind the tunnel. Writers for both versions, and a parser for a target
 * (or a test) that reads one. Only TCP over IPv4/IPv6 is written; the parser
 * also accepts the other families a v2 header may carry (UDP, UNIX,
 * unspecified), reported without addresses except for UDP.
 */

/** One end of the proxied connection. */
export interface ProxyAddress {
  readonly address: string;
  readonly port: number;
}

/** What a header says: the client (`source`) and the address it connected to (`destination`). */
export interface ProxyEndpoints {
  readonly source: ProxyAddress;
  readonly destination: ProxyAddress;
}

export type ProxyFamily = 'tcp4' | 'tcp6' | 'udp4' | 'udp6' | 'unix' | 'unknown';

/** A parsed header. */
export interface ProxyHeader {
  readonly version: 1 | 2;
  /** `'local'`: a v2 LOCAL header (the proxy's own connection: use the socket's addresses). */
  readonly command: 'proxy' | 'local';
  /** `'unknown'`: v1 UNKNOWN, v2 unspecified; no endpoints then. */
  readonly family: ProxyFamily;
  /** Set for tcp4/tcp6/udp4/udp6 with the PROXY command. */
  readonly endpoints?: ProxyEndpoints;
  /** v2 only: the type-length-value fields after the addresses, as they came. */
  readonly tlvs?: readonly { readonly type: number; readonly value: Buffer }[];
}

/** `parseProxyHeader`'s answer; it never throws. */
export type ProxyParse =
  /** The bytes so far are the start of a header: read more. */
  | { readonly status: 'incomplete' }
  /** A whole header: `length` bytes of the input; what follows is the connection's data. */
  | { readonly status: 'ok'; readonly header: ProxyHeader; readonly length: number }
  | { readonly status: 'invalid'; readonly error: ProxyHeaderError };

/** The 12 bytes every v2 header starts with. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** The longest v1 line the specification allows, CRLF included. */
export const PROXY_V1_MAX_LENGTH = 107;
const V2_FIXED = 16;

/**
 * A v1 header line: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (TCP6 when
 * either address is IPv6 and not IPv4-mapped), or `PROXY UNKNOWN\r\n`
 * without `endpoints`. Throws a `ProxyHeaderError` (`'address'`) for an
 * address or port that is not one.
 */
export function proxyHeaderV1(endpoints?: ProxyEndpoints): Buffer {
  if (!endpoints) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const { family, source, destination } = normalize(endpoints);
  return Buffer.from(`PROXY ${family === 4 ? 'TCP4' : 'TCP6'} ${source.address} ${destination.address} ${source.port} ${destination.port}\r\n`, 'latin1');
}

/**
 * A v2 header (binary): version 2, command PROXY, TCP over IPv4 (12 address
 * bytes) or IPv6 (36), no TLV; without `endpoints`, command LOCAL with an
 * unspecified family and no address (16 bytes in all). Throws a
 * `ProxyHeaderError` (`'address'`) for an address or port that is not one.
 */
export function proxyHeaderV2(endpoints?: ProxyEndpoints): Buffer {
  if (!endpoints) return Buffer.concat([PROXY_V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const { family, source, destination } = normalize(endpoints);
  const size = family === 4 ? 4 : 16;
  const header = Buffer.alloc(V2_FIXED + 2 * size + 4);
  PROXY_V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, PROXY
  header[13] = family === 4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  header.writeUInt16BE(2 * size + 4, 14);
  (family === 4 ? ipv4Bytes : ipv6Bytes)(source.address).copy(header, V2_FIXED);
  (family === 4 ? ipv4Bytes : ipv6Bytes)(destination.address).copy(header, V2_FIXED + size);
  header.writeUInt16BE(source.port, V2_FIXED + 2 * size);
  header.writeUInt16BE(destination.port, V2_FIXED + 2 * size + 2);
  return header;
}

/** `proxyHeaderV1` or `proxyHeaderV2`. */
export function proxyHeader(version: 1 | 2, endpoints?: ProxyEndpoints): Buffer {
  return version === 1 ? proxyHeaderV1(endpoints) : proxyHeaderV2(endpoints);
}

/**
 * Reads a v1 or v2 header at the start of `bytes`. Never throws: any input
 * is `incomplete` (a prefix of a header), `ok` (with the header's length)
 * or `invalid` (with a typed error).
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyParse {
  const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    if (input.length === 0) return INCOMPLETE;
    if (startsLike(input, PROXY_V2_SIGNATURE)) return input.length < PROXY_V2_SIGNATURE.length ? INCOMPLETE : parseV2(input);
    if (startsLike(input, V1_PREFIX)) return input.length < V1_PREFIX.length ? INCOMPLETE : parseV1(input);
    return invalid('signature', 'the bytes start with neither "PROXY " nor the v2 signature');
  } catch (error) {
    // Not reached by any input the tests found; kept so the parser's promise (no throw) holds.
    return invalid('address', (error as Error).message);
  }
}

/**
 * Reads a PROXY header from the start of `stream` (a target's accepted
 * socket), then puts every byte after it back, so the stream reads on as if
 * the header had never been there. Rejects with a `ProxyHeaderError`: bytes
 * that are no header, or (`'truncated'`) an end, error or `timeout` before
 * a whole one.
 */
export function readProxyHeader(stream: Readable, timeout = 5_000): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const stop = listen(stream, {
      data: (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        const parsed = parseProxyHeader(buffered);
        if (parsed.status === 'incomplete') return;
        finish();
        if (parsed.status === 'invalid') return reject(parsed.error);
        if (buffered.length > parsed.length) stream.unshift(buffered.subarray(parsed.length));
        resolve(parsed.header);
      },
      end: () => fail('the stream ended'),
      error: (error: Error) => fail(`the stream failed: ${error.message}`),
      close: () => fail('the stream closed'),
    });
    const timer = setTimeout(() => fail(`no whole header within ${timeout} ms`), timeout);
    const finish = (): void => {
      clearTimeout(timer);
      stop();
      stream.pause();
    };
    const fail = (why: string): void => {
      finish();
      reject(new ProxyHeaderError('truncated', `${why} after ${buffered.length} bytes, before a whole header`));
    };
    stream.resume();
  });
}

const INCOMPLETE: ProxyParse = { status: 'incomplete' };

function invalid(reason: ConstructorParameters<typeof ProxyHeaderError>[0], message: string): ProxyParse {
  return { status: 'invalid', error: new ProxyHeaderError(reason, message) };
}

/** Whether `input` and `prefix` agree on their common length. */
function startsLike(input: Buffer, prefix: Buffer): boolean {
  const n = Math.min(input.length, prefix.length);
  return n > 0 && input.compare(prefix, 0, n, 0, n) === 0;
}

function parseV1(input: Buffer): ProxyParse {
  const limit = Math.min(input.length, PROXY_V1_MAX_LENGTH);
  let cr = -1;
  for (let i = V1_PREFIX.length; i < limit - 1; i++) {
    if (input[i] === 0x0d && input[i + 1] === 0x0a) {
      cr = i;
      break;
    }
  }
  if (cr < 0) return input.length >= PROXY_V1_MAX_LENGTH ? invalid('too-long', `no CRLF within ${PROXY_V1_MAX_LENGTH} bytes`) : INCOMPLETE;
  const line = input.toString('latin1', 0, cr);
  const length = cr + 2;
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { status: 'ok', header: { version: 1, command: 'proxy', family: 'unknown' }, length };
  if (parts[1] !== 'TCP4' && parts[1] !== 'TCP6') return invalid('family', `unknown protocol ${JSON.stringify(parts[1] ?? '')}`);
  if (parts.length !== 6) return invalid('address', `expected 6 fields separated by single spaces, got ${parts.length}`);
  const version = parts[1] === 'TCP4' ? 4 : 6;
  const [, , src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const isIp = version === 4 ? net.isIPv4 : net.isIPv6;
  if (!isIp(src) || !isIp(dst)) return invalid('address', `not two IPv${version} addresses: ${JSON.stringify(src)} ${JSON.stringify(dst)}`);
  const sourcePort = port(sport);
  const destinationPort = port(dport);
  if (sourcePort === undefined || destinationPort === undefined) return invalid('address', `not two ports: ${JSON.stringify(sport)} ${JSON.stringify(dport)}`);
  return {
    status: 'ok',
    header: {
      version: 1,
      command: 'proxy',
      family: version === 4 ? 'tcp4' : 'tcp6',
      endpoints: { source: { address: src, port: sourcePort }, destination: { address: dst, port: destinationPort } },
    },
    length,
  };
}

/** A decimal port 0..65535, without sign, leading zero or blank. */
function port(text: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return undefined;
  const value = Number(text);
  return value <= 65535 ? value : undefined;
}

const FAMILIES: Record<number, { family: ProxyFamily; size: number }> = {
  0x00: { family: 'unknown', size: 0 },
  0x11: { family: 'tcp4', size: 12 },
  0x12: { family: 'udp4', size: 12 },
  0x21: { family: 'tcp6', size: 36 },
  0x22: { family: 'udp6', size: 36 },
  0x31: { family: 'unix', size: 216 },
  0x32: { family: 'unix', size: 216 },
};

function parseV2(input: Buffer): ProxyParse {
  if (input.length < V2_FIXED) return INCOMPLETE;
  const versionCommand = input[12]!;
  if (versionCommand >> 4 !== 2) return invalid('version', `version ${versionCommand >> 4}, expected 2`);
  const command = versionCommand & 0x0f;
  if (command > 1) return invalid('version', `command ${command}, expected 0 (LOCAL) or 1 (PROXY)`);
  const familyByte = input[13]!;
  const known = FAMILIES[familyByte];
  if (!known) return invalid('family', `address family/protocol byte 0x${familyByte.toString(16).padStart(2, '0')}`);
  const bodyLength = input.readUInt16BE(14);
  const length = V2_FIXED + bodyLength;
  if (command === 1 && bodyLength < known.size) return invalid('family', `${bodyLength} address bytes, ${known.family} needs ${known.size}`);
  if (input.length < length) return INCOMPLETE;
  const body = input.subarray(V2_FIXED, length);
  if (command === 0) return { status: 'ok', header: { version: 2, command: 'local', family: known.family }, length };
  const tlvs = readTlvs(body.subarray(known.size));
  if (!tlvs) return invalid('family', 'the bytes after the addresses are no sequence of type-length-value fields');
  let endpoints: ProxyEndpoints | undefined;
  if (known.size === 12) {
    endpoints = {
      source: { address: ipv4String(body.subarray(0, 4)), port: body.readUInt16BE(8) },
      destination: { address: ipv4String(body.subarray(4, 8)), port: body.readUInt16BE(10) },
    };
  } else if (known.size === 36) {
    endpoints = {
      source: { address: ipv6String(body.subarray(0, 16)), port: body.readUInt16BE(32) },
      destination: { address: ipv6String(body.subarray(16, 32)), port: body.readUInt16BE(34) },
    };
  }
  const header: ProxyHeader = { version: 2, command: 'proxy', family: known.family, ...(endpoints ? { endpoints } : {}), ...(tlvs.length > 0 ? { tlvs } : {}) };
  return { status: 'ok', header, length };
}

function readTlvs(bytes: Buffer): { type: number; value: Buffer }[] | undefined {
  const tlvs: { type: number; value: Buffer }[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 3 > bytes.length) return undefined;
    const size = bytes.readUInt16BE(at + 1);
    if (at + 3 + size > bytes.length) return undefined;
    tlvs.push({ type: bytes[at]!, value: Buffer.from(bytes.subarray(at + 3, at + 3 + size)) });
    at += 3 + size;
  }
  return tlvs;
}

/** Both endpoints in one family: IPv4 when both are IPv4 (or IPv4-mapped IPv6), IPv6 otherwise. */
function normalize(endpoints: ProxyEndpoints): { family: 4 | 6; source: ProxyAddress; destination: ProxyAddress } {
  const source = checked(endpoints.source, 'source');
  const destination = checked(endpoints.destination, 'destination');
  const source4 = asIpv4(source.address);
  const destination4 = asIpv4(destination.address);
  if (source4 !== undefined && destination4 !== undefined) {
    return { family: 4, source: { address: source4, port: source.port }, destination: { address: destination4, port: destination.port } };
  }
  const as6 = (address: string): string => (net.isIPv4(address) ? `::ffff:${address}` : address);
  return { family: 6, source: { address: as6(source.address), port: source.port }, destination: { address: as6(destination.address), port: destination.port } };
}

function checked(endpoint: ProxyAddress | undefined, name: string): ProxyAddress {
  const address = endpoint?.address;
  if (typeof address !== 'string' || net.isIP(address) === 0) throw new ProxyHeaderError('address', `the ${name} address ${JSON.stringify(address)} is no IPv4 or IPv6 address`);
  const value = endpoint!.port;
  if (!Number.isInteger(value) || value < 0 || value > 65535) throw new ProxyHeaderError('address', `the ${name} port ${JSON.stringify(value)} is no integer from 0 to 65535`);
  // A zone (fe80::1%eth0) means nothing to the target: dropped.
  return { address: address.includes('%') ? address.slice(0, address.indexOf('%')) : address, port: value };
}

function asIpv4(address: string): string | undefined {
  if (net.isIPv4(address)) return address;
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped && net.isIPv4(mapped[1]!) ? mapped[1] : undefined;
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv4String(bytes: Buffer): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** The 16 bytes of an IPv6 address (`::` and a dotted IPv4 tail understood). */
function ipv6Bytes(address: string): Buffer {
  let text = address;
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    // The dotted tail as the two hex groups it stands for: ::ffff:1.2.3.4 is ::ffff:102:304.
    const [a, b, c, d] = text.slice(lastColon + 1).split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const [head, rest] = text.split('::') as [string, string | undefined];
  const left = groups(head);
  const right = rest === undefined ? [] : groups(rest);
  const words = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const bytes = Buffer.alloc(16);
  words.forEach((word, i) => bytes.writeUInt16BE(word, i * 2));
  return bytes;
}

/** RFC 5952 text: lower-case hex, no leading zeros, the longest run (>= 2) of zero groups as `::`. */
function ipv6String(bytes: Buffer): string {
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]): string => list.map((word) => word.toString(16)).join(':');
  if (bestStart < 0) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLength))}`;
}
