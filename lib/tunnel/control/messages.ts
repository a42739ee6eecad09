/**
 * The messages of the tunnel control protocol (version 1): their shape on
 * the API side, and pure functions from a message to its frame and from a
 * frame body back to the message. Nothing here touches a stream.
 */
import net from 'node:net';
import { ControlProtocolError, InvalidOptionsError } from '../../core/errors.js';
import {
  ByteReader,
  ByteWriter,
  DIRECTIONS,
  END_KINDS,
  ERROR_CODES,
  FAIL_REASONS,
  FAMILY_IPV4,
  FAMILY_IPV6,
  FAMILY_NONE,
  FIRST_SKIPPABLE_TYPE,
  FRAME_HEADER_LENGTH,
  MAX_FRAME_BODY,
  MessageType,
  PROXY_PROTOCOLS,
  ROUTE_STATUSES,
  type ControlErrorCode,
  type Direction,
  type EndKind,
  type FailReason,
  type ProxyProtocolWire,
  type RouteStatus,
} from './wire.js';

/** A route as the client announces it in HELLO. */
export interface AnnouncedRoute {
  /** 1 to 64 characters of `A-Z a-z 0-9 . _ -` (checked by the route model, not by the codec). */
  name: string;
  direction: Direction;
  /** reverse: the port the client wants the server to listen on (0: the server picks). forward: 0. */
  serverPort: number;
  /** forward: the host the server connects to. reverse: empty (the target stays private to the client). */
  targetHost: string;
  /** forward: the port the server connects to. reverse: 0. */
  targetPort: number;
  proxyProtocol: ProxyProtocolWire;
  /** 0: no limit. */
  maxConnections: number;
  /** Milliseconds; 0: the other end's default. */
  connectTimeout: number;
}

/** The server's answer for one announced route. */
export interface RouteAnswer {
  name: string;
  status: RouteStatus;
  /** An accepted reverse route: the port the server listens on. Otherwise 0. */
  port: number;
  /** Why a route was refused, in words (empty when accepted). */
  text: string;
}

/** What the server tells the client about itself in HELLO_ACK. */
export interface ServerLimits {
  /** How often the server pings, in ms (0: it does not). */
  pingInterval: number;
  /** After this many ms without a frame from the client, the server drops the channel (0: never). */
  livenessTimeout: number;
  /** The most routes the server accepts from one client. */
  maxRoutes: number;
  /** The most tunnelled connections open at once for this client (0: no limit). */
  maxConnections: number;
}

/** The public peer of a tunnelled connection. */
export interface PeerAddress {
  address: string;
  port: number;
}

export interface HelloMessage {
  type: 'hello';
  minVersion: number;
  maxVersion: number;
  /** A label for logs (not an identity: that is the pooled stream's, from authentication). May be empty. */
  name: string;
  routes: AnnouncedRoute[];
}
export interface HelloAckMessage {
  type: 'hello-ack';
  version: number;
  limits: ServerLimits;
  routes: RouteAnswer[];
}
export interface ErrorMessage {
  type: 'error';
  code: ControlErrorCode;
  /** The versions the sender speaks (a client reads them after a 'version' error). */
  minVersion: number;
  maxVersion: number;
  text: string;
}
export interface OpenMessage {
  type: 'open';
  /** The sender's number for this connection, unique on the channel for the sender; FAIL and END repeat it. */
  conn: number;
  /** The pooled stream that carries it, 8 lowercase hex characters. */
  id: string;
  route: string;
  /** Absent when the sender does not know it. */
  peer?: PeerAddress;
}
export interface FailMessage {
  type: 'fail';
  conn: number;
  id: string;
  reason: FailReason;
  text: string;
}
export interface EndMessage {
  type: 'end';
  conn: number;
  id: string;
  /** Bytes the sender wrote into the pooled stream. */
  sent: number;
  /** Bytes the sender read from the pooled stream. */
  received: number;
  how: EndKind;
}
/**
 * The sender ended its writing side of a tunnelled connection's pooled
 * stream after `sent` bytes: the receiver passes the stream's end on only
 * once it read exactly that many (a FIN without its SHUT, such as the one
 * the kernel writes for a killed process, is a cut).
 */
export interface ShutMessage {
  type: 'shut';
  conn: number;
  id: string;
  sent: number;
}
export interface PingMessage {
  type: 'ping';
  nonce: number;
  /** Opaque to the receiver, echoed in the pong: the sender's clock. */
  time: number;
}
export interface PongMessage {
  type: 'pong';
  nonce: number;
  time: number;
}
export interface FlushMessage {
  type: 'flush';
}
export interface DrainMessage {
  type: 'drain';
  /** How long the sender lets open connections finish, in ms. */
  timeout: number;
  text: string;
}

/** Server → client, a hint: `count` more streams would be taken now (public connections wait for one). */
export interface WantMessage {
  type: 'want';
  count: number;
}

export type ControlMessage =
  | HelloMessage
  | HelloAckMessage
  | ErrorMessage
  | OpenMessage
  | FailMessage
  | EndMessage
  | ShutMessage
  | PingMessage
  | PongMessage
  | FlushMessage
  | DrainMessage
  | WantMessage;

const ID = /^[0-9a-f]{8}$/;

function need(ok: boolean, field: string, detail: string): void {
  if (!ok) throw new InvalidOptionsError(field, detail);
}

function uint(value: number, bits: 8 | 16 | 32 | 53, field: string): number {
  const max = bits === 53 ? Number.MAX_SAFE_INTEGER : 2 ** bits - 1;
  need(Number.isInteger(value) && value >= 0 && value <= max, field, `got ${value}, expected an integer from 0 to ${max}`);
  return value;
}

function writeId(writer: ByteWriter, id: string, field: string): void {
  need(typeof id === 'string' && ID.test(id), field, `got ${JSON.stringify(id)}, expected 8 lowercase hex characters`);
  writer.bytes(Buffer.from(id, 'hex'));
}

function writePeer(writer: ByteWriter, peer: PeerAddress | undefined): void {
  if (peer === undefined) {
    writer.u8(FAMILY_NONE);
    return;
  }
  const v4 = net.isIPv4(peer.address);
  need(v4 || net.isIPv6(peer.address), 'open.peer.address', `got ${JSON.stringify(peer.address)}, expected an IPv4 or IPv6 address`);
  writer.u8(v4 ? FAMILY_IPV4 : FAMILY_IPV6).bytes(v4 ? ipv4Bytes(peer.address) : ipv6Bytes(peer.address));
  writer.u16(uint(peer.port, 16, 'open.peer.port'));
}

/** The body of a message (no frame header). Throws `InvalidOptionsError` naming the field for a value the wire cannot carry. */
export function encodeBody(message: ControlMessage): Buffer {
  const w = new ByteWriter();
  switch (message.type) {
    case 'hello':
      w.u8(uint(message.minVersion, 8, 'hello.minVersion')).u8(uint(message.maxVersion, 8, 'hello.maxVersion'));
      w.str8(message.name, 'hello.name');
      w.u16(uint(message.routes.length, 16, 'hello.routes.length'));
      for (const route of message.routes) {
        w.str8(route.name, 'route.name').u8(DIRECTIONS.byName[route.direction]);
        w.u16(uint(route.serverPort, 16, 'route.serverPort'));
        w.str8(route.targetHost, 'route.targetHost').u16(uint(route.targetPort, 16, 'route.targetPort'));
        w.u8(PROXY_PROTOCOLS.byName[route.proxyProtocol]);
        w.u32(uint(route.maxConnections, 32, 'route.maxConnections')).u32(uint(route.connectTimeout, 32, 'route.connectTimeout'));
      }
      break;
    case 'hello-ack':
      w.u8(uint(message.version, 8, 'helloAck.version'));
      w.u32(uint(message.limits.pingInterval, 32, 'limits.pingInterval')).u32(uint(message.limits.livenessTimeout, 32, 'limits.livenessTimeout'));
      w.u16(uint(message.limits.maxRoutes, 16, 'limits.maxRoutes')).u32(uint(message.limits.maxConnections, 32, 'limits.maxConnections'));
      w.u16(uint(message.routes.length, 16, 'helloAck.routes.length'));
      for (const answer of message.routes) {
        w.str8(answer.name, 'answer.name').u8(ROUTE_STATUSES.byName[answer.status]).u16(uint(answer.port, 16, 'answer.port')).str16(answer.text);
      }
      break;
    case 'error':
      w.u8(ERROR_CODES.byName[message.code]).u8(uint(message.minVersion, 8, 'error.minVersion')).u8(uint(message.maxVersion, 8, 'error.maxVersion')).str16(message.text);
      break;
    case 'open':
      w.u32(uint(message.conn, 32, 'open.conn'));
      writeId(w, message.id, 'open.id');
      w.str8(message.route, 'open.route');
      writePeer(w, message.peer);
      break;
    case 'fail':
      w.u32(uint(message.conn, 32, 'fail.conn'));
      writeId(w, message.id, 'fail.id');
      w.u8(FAIL_REASONS.byName[message.reason]).str16(message.text);
      break;
    case 'end':
      w.u32(uint(message.conn, 32, 'end.conn'));
      writeId(w, message.id, 'end.id');
      w.u64(uint(message.sent, 53, 'end.sent')).u64(uint(message.received, 53, 'end.received')).u8(END_KINDS.byName[message.how]);
      break;
    case 'shut':
      w.u32(uint(message.conn, 32, 'shut.conn'));
      writeId(w, message.id, 'shut.id');
      w.u64(uint(message.sent, 53, 'shut.sent'));
      break;
    case 'ping':
    case 'pong':
      w.u32(uint(message.nonce, 32, `${message.type}.nonce`)).u64(uint(message.time, 53, `${message.type}.time`));
      break;
    case 'flush':
      break;
    case 'drain':
      w.u32(uint(message.timeout, 32, 'drain.timeout')).str16(message.text);
      break;
    case 'want':
      w.u16(uint(message.count, 16, 'want.count'));
      break;
  }
  return w.done();
}

const TYPE_OF: Record<ControlMessage['type'], number> = {
  hello: MessageType.HELLO,
  'hello-ack': MessageType.HELLO_ACK,
  error: MessageType.ERROR,
  open: MessageType.OPEN,
  fail: MessageType.FAIL,
  end: MessageType.END,
  shut: MessageType.SHUT,
  ping: MessageType.PING,
  pong: MessageType.PONG,
  flush: MessageType.FLUSH,
  drain: MessageType.DRAIN,
  want: MessageType.WANT,
};

/** The whole frame of a message: type, body length, body. */
export function encodeMessage(message: ControlMessage): Buffer {
  const body = encodeBody(message);
  need(body.length <= MAX_FRAME_BODY, `${message.type}`, `the message takes ${body.length} bytes; a frame carries at most ${MAX_FRAME_BODY}`);
  const header = Buffer.alloc(FRAME_HEADER_LENGTH);
  header.writeUInt8(TYPE_OF[message.type], 0);
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
}

function readId(r: ByteReader): string {
  return r.bytes(4, 'id').toString('hex');
}

function readPeer(r: ByteReader): PeerAddress | undefined {
  const family = r.u8('peer family');
  if (family === FAMILY_NONE) return undefined;
  if (family === FAMILY_IPV4) {
    const address = [...r.bytes(4, 'peer address')].join('.');
    return { address, port: r.u16('peer port') };
  }
  if (family === FAMILY_IPV6) {
    const address = formatIpv6(r.bytes(16, 'peer address'));
    return { address, port: r.u16('peer port') };
  }
  throw r.malformed(`peer family ${family} is not 0, 4 or 6`);
}

/**
 * The message in a frame body, or `undefined` for a skippable type this end
 * does not know. Throws a `ControlProtocolError` ('malformed',
 * 'unknown-type') and nothing else.
 */
export function decodeBody(type: number, body: Buffer): ControlMessage | undefined {
  switch (type) {
    case MessageType.HELLO: {
      const r = new ByteReader(body, 'HELLO');
      const minVersion = r.u8('minVersion');
      const maxVersion = r.u8('maxVersion');
      if (minVersion === 0 || minVersion > maxVersion) throw r.malformed(`versions ${minVersion}..${maxVersion} are no range`);
      const name = r.str8('name');
      const count = r.u16('route count');
      const routes: AnnouncedRoute[] = [];
      for (let i = 0; i < count; i++) {
        routes.push({
          name: r.str8('route name'),
          direction: r.code(DIRECTIONS, 'route direction'),
          serverPort: r.u16('route serverPort'),
          targetHost: r.str8('route targetHost'),
          targetPort: r.u16('route targetPort'),
          proxyProtocol: r.code(PROXY_PROTOCOLS, 'route proxyProtocol'),
          maxConnections: r.u32('route maxConnections'),
          connectTimeout: r.u32('route connectTimeout'),
        });
      }
      r.end();
      return { type: 'hello', minVersion, maxVersion, name, routes };
    }
    case MessageType.HELLO_ACK: {
      const r = new ByteReader(body, 'HELLO_ACK');
      const version = r.u8('version');
      if (version === 0) throw r.malformed('version 0');
      const limits: ServerLimits = { pingInterval: r.u32('pingInterval'), livenessTimeout: r.u32('livenessTimeout'), maxRoutes: r.u16('maxRoutes'), maxConnections: r.u32('maxConnections') };
      const count = r.u16('route count');
      const routes: RouteAnswer[] = [];
      for (let i = 0; i < count; i++) {
        routes.push({ name: r.str8('route name'), status: r.code(ROUTE_STATUSES, 'route status', true), port: r.u16('route port'), text: r.str16('route text') });
      }
      r.end();
      return { type: 'hello-ack', version, limits, routes };
    }
    case MessageType.ERROR: {
      const r = new ByteReader(body, 'ERROR');
      const message: ErrorMessage = { type: 'error', code: r.code(ERROR_CODES, 'code', true), minVersion: r.u8('minVersion'), maxVersion: r.u8('maxVersion'), text: r.str16('text') };
      r.end();
      return message;
    }
    case MessageType.OPEN: {
      const r = new ByteReader(body, 'OPEN');
      const conn = r.u32('conn');
      const id = readId(r);
      const route = r.str8('route');
      const peer = readPeer(r);
      r.end();
      return peer === undefined ? { type: 'open', conn, id, route } : { type: 'open', conn, id, route, peer };
    }
    case MessageType.FAIL: {
      const r = new ByteReader(body, 'FAIL');
      const message: FailMessage = { type: 'fail', conn: r.u32('conn'), id: readId(r), reason: r.code(FAIL_REASONS, 'reason', true), text: r.str16('text') };
      r.end();
      return message;
    }
    case MessageType.END: {
      const r = new ByteReader(body, 'END');
      const message: EndMessage = { type: 'end', conn: r.u32('conn'), id: readId(r), sent: r.u64('sent'), received: r.u64('received'), how: r.code(END_KINDS, 'how', true) };
      r.end();
      return message;
    }
    case MessageType.SHUT: {
      const r = new ByteReader(body, 'SHUT');
      const message: ShutMessage = { type: 'shut', conn: r.u32('conn'), id: readId(r), sent: r.u64('sent') };
      r.end();
      return message;
    }
    case MessageType.PING:
    case MessageType.PONG: {
      const r = new ByteReader(body, type === MessageType.PING ? 'PING' : 'PONG');
      const nonce = r.u32('nonce');
      const time = r.u64('time');
      r.end();
      return { type: type === MessageType.PING ? 'ping' : 'pong', nonce, time };
    }
    case MessageType.FLUSH:
      new ByteReader(body, 'FLUSH').end();
      return { type: 'flush' };
    case MessageType.DRAIN: {
      const r = new ByteReader(body, 'DRAIN');
      const message: DrainMessage = { type: 'drain', timeout: r.u32('timeout'), text: r.str16('text') };
      r.end();
      return message;
    }
    case MessageType.WANT: {
      const r = new ByteReader(body, 'WANT');
      const message: WantMessage = { type: 'want', count: r.u16('count') };
      r.end();
      return message;
    }
    default:
      if (type >= FIRST_SKIPPABLE_TYPE) return undefined;
      throw new ControlProtocolError('unknown-type', `unknown control message type 0x${type.toString(16).padStart(2, '0')} (types below 0x80 must be understood)`);
  }
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

/** The 16 bytes of an IPv6 address in any textual form Node accepts (`::`, an IPv4 tail; no zone). */
export function ipv6Bytes(address: string): Buffer {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    const v4 = ipv4Bytes(text.slice(lastColon + 1));
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    text = `${text.slice(0, lastColon + 1)}0`; // a placeholder group, dropped below
  }
  const [head, rest] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (part: string | undefined): number[] => (part ? part.split(':').map((group) => parseInt(group, 16)) : []);
  let left = parse(head);
  let right = parse(rest);
  if (tail.length > 0) {
    if (rest === undefined) left = [...left.slice(0, -1), ...tail];
    else right = [...right.slice(0, -1), ...tail];
  }
  const groups = rest === undefined ? left : [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
  const out = Buffer.alloc(16);
  groups.forEach((group, i) => out.writeUInt16BE(group, i * 2));
  return out;
}

/** RFC 5952 text of 16 address bytes: lowercase, the longest run of zero groups as `::`, IPv4-mapped as `::ffff:a.b.c.d`. */
export function formatIpv6(bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${[...bytes.subarray(12)].join('.')}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}
