import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ControlProtocolError } from '../../lib/core/errors.js';
import { ControlDecoder, decodeAll, type Decoded } from '../../lib/tunnel/control/decoder.js';
import { encodeMessage, type ControlMessage } from '../../lib/tunnel/control/messages.js';
import { CONTROL_PREAMBLE, DIRECTIONS, END_KINDS, ERROR_CODES, FAIL_REASONS, PROXY_PROTOCOLS, ROUTE_STATUSES } from '../../lib/tunnel/control/wire.js';
import { chunk, runs } from '../properties/fc.js';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffff_ffff });
const u53 = fc.maxSafeNat();
const text8 = fc.string({ maxLength: 60 }); // at most 240 bytes of UTF-8
const text16 = fc.string({ maxLength: 200 });
const id = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((bytes) => Buffer.from(bytes).toString('hex'));
const names = <N extends string>(codes: { byName: Record<N, number> }): fc.Arbitrary<N> => fc.constantFrom(...(Object.keys(codes.byName) as N[]));
const peer = fc.option(
  fc.record({
    address: fc.oneof(fc.ipV4(), fc.constantFrom('::1', '2001:db8::7', '::ffff:10.0.0.1', 'fe80::1:2:3:4')),
    port: u16,
  }),
  { nil: undefined },
);

const message: fc.Arbitrary<ControlMessage> = fc.oneof(
  fc
    .record({
      range: fc.tuple(fc.integer({ min: 1, max: 255 }), fc.integer({ min: 1, max: 255 })).map(([a, b]) => [Math.min(a, b), Math.max(a, b)] as const),
      name: text8,
      routes: fc.array(
        fc.record({
          name: text8,
          direction: names(DIRECTIONS),
          serverPort: u16,
          targetHost: text8,
          targetPort: u16,
          proxyProtocol: names(PROXY_PROTOCOLS),
          maxConnections: u32,
          connectTimeout: u32,
        }),
        { maxLength: 5 },
      ),
    })
    .map(({ range, name, routes }): ControlMessage => ({ type: 'hello', minVersion: range[0], maxVersion: range[1], name, routes })),
  fc.record({
    type: fc.constant('hello-ack' as const),
    version: fc.integer({ min: 1, max: 255 }),
    limits: fc.record({ pingInterval: u32, livenessTimeout: u32, maxRoutes: u16, maxConnections: u32 }),
    routes: fc.array(fc.record({ name: text8, status: names(ROUTE_STATUSES), port: u16, text: text16 }), { maxLength: 5 }),
  }),
  fc.record({ type: fc.constant('error' as const), code: names(ERROR_CODES), minVersion: u8, maxVersion: u8, text: text16 }),
  fc.record({ conn: u32, id, route: text8, peer }).map(({ peer: p, ...rest }): ControlMessage => (p === undefined ? { type: 'open', ...rest } : { type: 'open', ...rest, peer: p })),
  fc.record({ type: fc.constant('fail' as const), conn: u32, id, reason: names(FAIL_REASONS), text: text16 }),
  fc.record({ type: fc.constant('end' as const), conn: u32, id, sent: u53, received: u53, how: names(END_KINDS) }),
  fc.record({ type: fc.constant('shut' as const), conn: u32, id, sent: u53 }),
  fc.record({ type: fc.constantFrom('ping' as const, 'pong' as const), nonce: u32, time: u53 }),
  fc.constant({ type: 'flush' as const }),
  fc.integer({ min: 0, max: 65_535 }).map((count) => ({ type: 'want' as const, count })),
  fc.record({ type: fc.constant('drain' as const), timeout: u32, text: text16 }),
);

/** An IPv6 address comes back in its canonical text; compare what it stands for. */
function canonical(value: ControlMessage): ControlMessage {
  if (value.type !== 'open' || value.peer === undefined) return value;
  const address = value.peer.address === '::ffff:10.0.0.1' || !value.peer.address.includes(':') ? value.peer.address : value.peer.address.toLowerCase();
  return { ...value, peer: { ...value.peer, address } };
}

/** Bytes that look like the protocol: the preamble (mostly), then frames with random types, lengths and bodies. */
const protocolish = fc
  .tuple(
    fc.boolean(),
    fc.array(
      fc.oneof(
        message.map((m) => encodeMessage(m)),
        fc.tuple(u8, fc.uint8Array({ maxLength: 40 })).map(([type, body]) => {
          const frame = Buffer.alloc(5 + body.length);
          frame[0] = type;
          frame.writeUInt32BE(body.length, 1);
          Buffer.from(body).copy(frame, 5);
          return frame;
        }),
        fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)),
      ),
      { maxLength: 6 },
    ),
  )
  .map(([preamble, parts]) => Buffer.concat([preamble ? CONTROL_PREAMBLE : Buffer.alloc(0), ...parts]));

const anyBytes = fc.oneof(fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)), protocolish);

function decodeInChunks(bytes: Buffer, cuts: number[]): Decoded[] {
  const decoder = new ControlDecoder();
  const out: Decoded[] = [];
  for (const part of chunk(bytes, cuts)) out.push(...decoder.push(part));
  return [...out, ...decoder.end()];
}

describe('control codec (property)', () => {
  it('every message round-trips: decode(encode(m)) is m', () => {
    fc.assert(
      fc.property(message, (m) => {
        const decoded = decodeAll(encodeMessage(m), { expectPreamble: false });
        expect(decoded).toEqual([{ kind: 'message', message: canonical(m) }]);
      }),
      runs(400),
    );
  });

  it('arbitrary bytes never make the decoder throw; a failure is one typed error, last', () => {
    fc.assert(
      fc.property(anyBytes, fc.array(fc.nat(), { maxLength: 8 }), (bytes, cuts) => {
        let entries: Decoded[] = [];
        expect(() => (entries = decodeInChunks(bytes, cuts))).not.toThrow();
        const errors = entries.filter((entry) => entry.kind === 'error');
        expect(errors.length).toBeLessThanOrEqual(1);
        if (errors.length === 1) {
          expect(entries.at(-1)).toBe(errors[0]);
          const error = (errors[0] as { error: unknown }).error;
          expect(error).toBeInstanceOf(ControlProtocolError);
          expect(error).toMatchObject({ code: 'POOL_ERR_CONTROL_PROTOCOL' });
        }
      }),
      runs(1500),
    );
  });

  it('chunking never changes what is decoded', () => {
    fc.assert(
      fc.property(anyBytes, fc.array(fc.nat(), { maxLength: 12 }), (bytes, cuts) => {
        expect(decodeInChunks(bytes, cuts)).toEqual(decodeAll(bytes));
      }),
      runs(1500),
    );
  });

  it('a sequence of messages after the preamble decodes to the same sequence, however it is cut', () => {
    fc.assert(
      fc.property(fc.array(message, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (sequence, cuts) => {
        const bytes = Buffer.concat([CONTROL_PREAMBLE, ...sequence.map((m) => encodeMessage(m))]);
        expect(decodeInChunks(bytes, cuts)).toEqual(sequence.map((m) => ({ kind: 'message', message: canonical(m) })));
      }),
      runs(300),
    );
  });
});
