import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import type net from 'node:net';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { eventually, listenRaw } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { GUID } from '../ws/ws-support.js';
import { chunk, runs } from './fc.js';
import { checkOneDial, sendScripted, type Ending } from './peers.js';

const scope = useTestScope();

interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

type Script =
  /** A proper 101, then these frames. */
  | { kind: 'frames'; frames: Frame[]; cuts: number[]; ending: Ending }
  /** A proper 101, then arbitrary bytes. */
  | { kind: 'garbage'; bytes: Uint8Array; cuts: number[]; ending: Ending }
  /** Another status instead of 101. */
  | { kind: 'status'; status: number }
  /** Arbitrary bytes instead of an HTTP response. */
  | { kind: 'not-http'; bytes: Uint8Array; ending: Ending };

const OP = { CONT: 0x0, TEXT: 0x1, BINARY: 0x2, CLOSE: 0x8, PING: 0x9, PONG: 0xa } as const;

const frame: fc.Arbitrary<Frame> = fc.record({
  fin: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, fc.constant(false)),
  opcode: fc.oneof({ weight: 6, arbitrary: fc.constant<number>(OP.BINARY) }, fc.constantFrom<number>(OP.CONT, OP.TEXT, OP.CLOSE, OP.PING, OP.PONG, 0x3, 0xb)),
  payload: fc.uint8Array({ maxLength: 12 }),
});
const cuts = fc.array(fc.nat({ max: 40 }), { maxLength: 5 });
const ending = fc.constantFrom<Ending>('end', 'reset', 'hold');

const script: fc.Arbitrary<Script> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('frames' as const), frames: fc.array(frame, { minLength: 0, maxLength: 4 }), cuts, ending }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('garbage' as const), bytes: fc.uint8Array({ minLength: 1, maxLength: 24 }), cuts, ending }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('status' as const), status: fc.oneof(fc.constantFrom(403, 404, 503), fc.integer({ min: 200, max: 599 })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('not-http' as const), bytes: fc.uint8Array({ minLength: 0, maxLength: 24 }), ending }) },
);

function encode(f: Frame): Buffer {
  return Buffer.concat([Buffer.from([(f.fin ? 0x80 : 0) | f.opcode, f.payload.length]), f.payload]);
}

/**
 * What the ws client must make of a frame sequence (RFC 6455 as the ws
 * library applies it): the first complete message decides. Returns the
 * outcome and how many frames it took.
 */
function firstMessage(frames: readonly Frame[]): { outcome: { id: string; rest: Buffer } | { code: string } | { pending: true }; used: number } {
  let fragments: { opcode: number; data: Buffer[] } | undefined;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i]!;
    const used = i + 1;
    const handshake = { outcome: { code: 'POOL_ERR_HANDSHAKE' }, used };
    if (f.opcode === OP.PING || f.opcode === OP.PONG) {
      if (!f.fin) return handshake; // a fragmented control frame is a protocol error
      continue;
    }
    if (f.opcode === OP.CLOSE) return handshake; // closed (or a malformed close): no ID
    if (f.opcode === OP.TEXT || f.opcode === OP.BINARY) {
      if (fragments) return handshake; // a new message inside a fragmented one
      fragments = { opcode: f.opcode, data: [] };
    } else if (f.opcode !== OP.CONT || !fragments) {
      return handshake; // reserved opcode, or a continuation of nothing
    }
    fragments.data.push(Buffer.from(f.payload));
    if (!f.fin) continue;
    if (fragments.opcode === OP.TEXT) return handshake; // text where the ID belongs: closed 1003
    const message = Buffer.concat(fragments.data);
    if (message.length < 4) return { outcome: { code: 'POOL_ERR_INVALID_ID' }, used };
    return { outcome: { id: message.subarray(0, 4).toString('hex'), rest: message.subarray(4) }, used };
  }
  return { outcome: { pending: true }, used: frames.length };
}

function statusCode(status: number): string {
  return status === 403 ? 'POOL_ERR_IP_NOT_ALLOWED' : status === 503 ? 'POOL_ERR_FULL' : 'POOL_ERR_REFUSED';
}

describe('ws client first message (property): a raw server upgrades, then sends anything', () => {
  it('the dial pools a stream under the first 4 bytes of a binary first message, or fails typed, and pools nothing', async () => {
    let current: Script = { kind: 'frames', frames: [], cuts: [], ending: 'hold' };
    let success: { id: string; rest: Buffer } | undefined;
    const seen: net.Socket[] = [];
    const raw = await listenRaw((socket) => {
      seen.push(socket);
      const s = current;
      let head = Buffer.alloc(0);
      const onData = (data: Buffer): void => {
        head = Buffer.concat([head, data]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        socket.resume();
        const key = /sec-websocket-key: *(\S+)/i.exec(head.subarray(0, end).toString('latin1'))?.[1] ?? '';
        const accept = createHash('sha1').update(key + GUID).digest('base64');
        const upgraded = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
        if (s.kind === 'status') {
          socket.end(`HTTP/1.1 ${s.status} Whatever\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        } else if (s.kind === 'not-http') {
          void sendScripted(socket, [Buffer.from(s.bytes)], s.ending);
        } else if (s.kind === 'garbage') {
          void sendScripted(socket, [Buffer.from(upgraded), ...chunk(s.bytes, s.cuts)], s.ending);
        } else {
          const { outcome, used } = firstMessage(s.frames);
          const frames = 'id' in outcome ? s.frames.slice(0, used) : s.frames;
          void sendScripted(socket, [Buffer.from(upgraded), ...chunk(Buffer.concat(frames.map(encode)), s.cuts)], 'id' in outcome ? 'hold' : s.ending);
        }
      };
      socket.on('data', onData);
    });
    scope.defer(() => raw.close());

    await fc.assert(
      fc.asyncProperty(script, async (s) => {
        current = s;
        seen.length = 0;
        success = undefined;
        let allowed: string[];
        if (s.kind === 'status') allowed = [statusCode(s.status)];
        else if (s.kind === 'not-http') allowed = ['POOL_ERR_HANDSHAKE'];
        else if (s.kind === 'garbage') allowed = ['POOL_ERR_HANDSHAKE', 'POOL_ERR_INVALID_ID', 'created'];
        else {
          const { outcome } = firstMessage(s.frames);
          if ('id' in outcome) {
            success = outcome;
            allowed = ['created'];
          } else allowed = ['code' in outcome ? outcome.code : 'POOL_ERR_HANDSHAKE'];
        }
        // Garbage that happens to frame a binary message: whatever the ID, it is a valid one.
        const whenCreated = (pool: ClientPool): void => expect(pool.active).toBe(1);
        await checkOneDial({ transport: 'ws', address: `127.0.0.1:${raw.port}`, handshakeTimeout: 300 }, success ?? { codes: allowed }, scope.track, whenCreated);
        await eventually(() => seen.every((socket) => socket.destroyed), 2000, 'the raw server to see the socket closed');
      }),
      runs(50, 10_000),
    );
  });
});
