import { createHash } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import type { ClientPoolConfig, ServerPoolConfig } from '../../lib/pool-factory.js';
import { startPair, type PoolPair } from '../support/pools.js';
import type { WebSocketDuplex } from '../../lib/transports/ws/ws-duplex.js';

export type WsServerConfig = Omit<Extract<ServerPoolConfig, { transport: 'ws' }>, 'transport'>;
export type WsClientConfig = Omit<Extract<ClientPoolConfig, { transport: 'ws' }>, 'transport'>;

export type WsPair = PoolPair;

/** A started ws server pool on 127.0.0.1:0 and a started client pool dialing it (through `via` when given). */
export function startWsPair(server: WsServerConfig = {}, client: WsClientConfig = {}, via?: (port: number) => number): Promise<WsPair> {
  return startPair({ transport: 'ws', ...server }, client, via);
}

/** The pooled stream as the ws transport made it (for bufferedAmount and the paused state). */
export function asWs(stream: Duplex): WebSocketDuplex {
  return stream as WebSocketDuplex;
}

/** Transport figures of a pool, typed loosely for assertions. */
export function wsStats(pool: ClientPool | ServerPool): Record<string, unknown> {
  return pool.stats.transportStats;
}

/** A deterministic byte pattern, so the reader can check order and content without keeping a copy. */
export function pattern(offset: number, length: number): Buffer {
  const chunk = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) chunk[i] = ((offset + i) * 31 + ((offset + i) >>> 8)) & 0xff;
  return chunk;
}

// ---- raw WebSocket framing, for golden tests only ------------------------

export const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export function acceptKey(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

export interface Frame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Parses whole frames off the front of `buffer`; returns them and the unparsed rest. */
export function parseFrames(buffer: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let offset = 0;
  for (;;) {
    if (buffer.length - offset < 2) break;
    const b0 = buffer[offset]!;
    const b1 = buffer[offset + 1]!;
    let length = b1 & 0x7f;
    let at = offset + 2;
    if (length === 126) {
      if (buffer.length < at + 2) break;
      length = buffer.readUInt16BE(at);
      at += 2;
    } else if (length === 127) {
      if (buffer.length < at + 8) break;
      length = Number(buffer.readBigUInt64BE(at));
      at += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    const maskAt = at;
    if (masked) at += 4;
    if (buffer.length < at + length) break;
    const payload = Buffer.from(buffer.subarray(at, at + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= buffer[maskAt + (i & 3)]!;
    frames.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
    offset = at + length;
  }
  return { frames, rest: buffer.subarray(offset) };
}

/** An unmasked frame, as a server sends it (payloads under 126 bytes). */
export function serverFrame(opcode: number, payload: Buffer | string): Buffer {
  const data = Buffer.from(payload);
  if (data.length >= 126) throw new Error('serverFrame: payloads under 126 bytes only');
  return Buffer.concat([Buffer.from([0x80 | opcode, data.length]), data]);
}

/** A masked frame, as a client sends it (payloads under 126 bytes). */
export function clientFrame(opcode: number, payload: Buffer | string, mask = Buffer.from([0x11, 0x22, 0x33, 0x44])): Buffer {
  const data = Buffer.from(payload);
  if (data.length >= 126) throw new Error('clientFrame: payloads under 126 bytes only');
  const masked = Buffer.from(data);
  for (let i = 0; i < masked.length; i++) masked[i]! ^= mask[i & 3]!;
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | data.length]), mask, masked]);
}

export const OP = { TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

/** Collects everything a raw socket receives; `wait` resolves once a predicate holds on it. */
export class Collector {
  data = Buffer.alloc(0);
  ended = false;
  private waiters: Array<() => void> = [];

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.data = Buffer.concat([this.data, chunk]);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  async wait(check: (data: Buffer) => boolean, timeout = 5000, what = 'data'): Promise<Buffer> {
    const deadline = Date.now() + timeout;
    while (!check(this.data)) {
      if (this.ended && !check(this.data)) throw new Error(`Collector: connection ended before ${what}; got ${JSON.stringify(this.data.toString('latin1'))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Collector: no ${what} within ${timeout} ms; got ${JSON.stringify(this.data.toString('latin1'))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.data;
  }

  /** The HTTP head (through the blank line) and what follows it. */
  async head(timeout = 5000): Promise<{ head: string; body: Buffer }> {
    const data = await this.wait((d) => d.includes('\r\n\r\n'), timeout, 'an HTTP head');
    const end = data.indexOf('\r\n\r\n') + 4;
    return { head: data.subarray(0, end).toString('latin1'), body: data.subarray(end) };
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

/** A raw client's upgrade request, as the Go probe in wire-traces sends it. */
export function upgradeRequest(port: number, path = '/', extra = ''): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ogmQ7FkgsoPEruRI67alig==\r\n${extra}\r\n`;
}
