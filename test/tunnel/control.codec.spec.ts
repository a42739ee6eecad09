import { describe, expect, it } from '@jest/globals';
import { ControlProtocolError, InvalidOptionsError } from '../../lib/core/errors.js';
import { ControlDecoder, decodeAll, type Decoded } from '../../lib/tunnel/control/decoder.js';
import { encodeMessage, formatIpv6, ipv6Bytes, type ControlMessage } from '../../lib/tunnel/control/messages.js';
import { CONTROL_PREAMBLE, MAX_FRAME_BODY } from '../../lib/tunnel/control/wire.js';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** The messages decoded from bare frames (no preamble), failing the test on anything else. */
function messages(bytes: Buffer): ControlMessage[] {
  return decodeAll(bytes, { expectPreamble: false }).map((entry) => {
    if (entry.kind !== 'message') throw new Error(`expected a message, got ${JSON.stringify(entry)}`);
    return entry.message;
  });
}

function errorOf(entries: Decoded[]): ControlProtocolError {
  const last = entries.at(-1);
  if (last?.kind !== 'error') throw new Error(`expected an error, got ${JSON.stringify(entries)}`);
  expect(last.error).toBeInstanceOf(ControlProtocolError);
  expect(last.error.code).toBe('POOL_ERR_CONTROL_PROTOCOL');
  return last.error;
}

/** Every message type with its exact bytes, as docs/extensions/tunnel-control.md lays them out. */
const LAYOUTS: [string, ControlMessage, string][] = [
  [
    'HELLO with one reverse and one forward route',
    {
      type: 'hello',
      minVersion: 1,
      maxVersion: 1,
      name: 'c1',
      routes: [
        { name: 'web', direction: 'reverse', serverPort: 8080, targetHost: '', targetPort: 0, proxyProtocol: 'none', maxConnections: 0, connectTimeout: 10_000 },
        { name: 'db', direction: 'forward', serverPort: 0, targetHost: 'db.lan', targetPort: 5432, proxyProtocol: 'v2', maxConnections: 5, connectTimeout: 3000 },
      ],
    },
    `01 00000032
     01 01  02 6331  0002
     03 776562  01  1f90  00  0000  00  00000000  00002710
     02 6462    02  0000  06 64622e6c616e  1538  02  00000005  00000bb8`,
  ],
  [
    'HELLO_ACK: one accepted, one refused',
    {
      type: 'hello-ack',
      version: 1,
      limits: { pingInterval: 15_000, livenessTimeout: 45_000, maxRoutes: 64, maxConnections: 0 },
      routes: [
        { name: 'web', status: 'accepted', port: 8080, text: '' },
        { name: 'db', status: 'target-not-allowed', port: 0, text: 'no' },
      ],
    },
    `02 00000024
     01  00003a98  0000afc8  0040  00000000  0002
     03 776562  00  1f90  0000
     02 6462    08  0000  0002 6e6f`,
  ],
  ['ERROR (version)', { type: 'error', code: 'version', minVersion: 1, maxVersion: 2, text: 'hi' }, '03 00000007  01 01 02 0002 6869'],
  [
    'OPEN with an IPv4 peer',
    { type: 'open', conn: 7, id: 'a1b2c3d4', route: 'web', peer: { address: '203.0.113.9', port: 51_000 } },
    '10 00000013  00000007 a1b2c3d4 03776562 04 cb007109 c738',
  ],
  [
    'OPEN with an IPv6 peer',
    { type: 'open', conn: 1, id: '00000000', route: 'a', peer: { address: '2001:db8::1', port: 443 } },
    '10 0000001d  00000001 00000000 0161 06 20010db8000000000000000000000001 01bb',
  ],
  ['OPEN without a peer', { type: 'open', conn: 0xffff_ffff, id: 'ffffffff', route: 'a', }, '10 0000000b  ffffffff ffffffff 0161 00'],
  ['FAIL', { type: 'fail', conn: 7, id: 'a1b2c3d4', reason: 'target-refused', text: 'ECONNREFUSED' }, '11 00000017  00000007 a1b2c3d4 03 000c 45434f4e4e52454655534544'],
  [
    'END (accounting) of a connection the public peer reset',
    { type: 'end', conn: 7, id: 'a1b2c3d4', sent: 1000, received: 2 ** 40, how: 'public-reset' },
    '12 00000019  00000007 a1b2c3d4 00000000000003e8 0000010000000000 01',
  ],
  ['SHUT (this end wrote 1000 bytes, then its end)', { type: 'shut', conn: 7, id: 'a1b2c3d4', sent: 1000 }, '13 00000010  00000007 a1b2c3d4 00000000000003e8'],
  ['PING', { type: 'ping', nonce: 1, time: 5 }, '20 0000000c  00000001 0000000000000005'],
  ['PONG', { type: 'pong', nonce: 0xfffffffe, time: 2 ** 53 - 1 }, '21 0000000c  fffffffe 001fffffffffffff'],
  ['FLUSH', { type: 'flush' }, '30 00000000'],
  ['WANT', { type: 'want', count: 3 }, '80 00000002 0003'],
  ['DRAIN', { type: 'drain', timeout: 5000, text: 'bye' }, '31 00000009  00001388 0003 627965'],
];

describe('control codec: exact bytes', () => {
  it.each(LAYOUTS)('%s', (_name, message, bytes) => {
    expect(encodeMessage(message).toString('hex')).toBe(hex(bytes).toString('hex'));
    expect(messages(hex(bytes))).toEqual([message]);
  });

  it('the preamble is ASCII NTPC, once, before the first frame', () => {
    expect(CONTROL_PREAMBLE.toString('hex')).toBe('4e545043');
    const stream = Buffer.concat([CONTROL_PREAMBLE, hex('30 00000000'), hex('30 00000000')]);
    expect(decodeAll(stream).map((entry) => entry.kind)).toEqual(['message', 'message']);
  });
});

describe('control codec: strict decoding, typed errors, never a throw', () => {
  const cases: [string, string, string, RegExp][] = [
    ['a wrong preamble (an ID from a Go pool, say)', '61316232 63336434', 'preamble', /does not speak the tunnel control protocol/],
    ['a frame longer than the maximum', `4e545043 10 ${(MAX_FRAME_BODY + 1).toString(16).padStart(8, '0')}`, 'too-large', /65536/],
    ['an unknown must-understand type', '4e545043 7f 00000000', 'unknown-type', /0x7f/],
    ['a body with a byte too many', '4e545043 30 00000001 00', 'malformed', /FLUSH.*1 bytes left/],
    ['a body a byte short', '4e545043 20 0000000b 00000001 00000000000000', 'malformed', /PING.*time/],
    ['an unknown direction', '4e545043 01 00000014 0101 00 0001 0161 07 0000 00 0000 00 00000000 00000000', 'malformed', /route direction 7/],
    ['an empty version range', '4e545043 01 00000005 0201 00 0000', 'malformed', /versions 2\.\.1/],
    ['invalid UTF-8 in a text', '4e545043 31 00000007 00000000 0001 ff', 'malformed', /UTF-8/],
    ['a count above 2^53 - 1', '4e545043 12 00000019 00000001 00000001 0020000000000000 0000000000000000 00', 'malformed', /above 2\^53/],
    ['an unknown peer family', '4e545043 10 0000000b 00000001 00000001 0161 05', 'malformed', /family 5/],
    ['a stream cut inside a frame', '4e545043 20 0000000c 0000', 'truncated', /inside a frame/],
    ['a stream cut inside the preamble', '4e54', 'truncated', /preamble/],
  ];

  it.each(cases)('%s', (_name, bytes, reason, message) => {
    let entries: Decoded[] = [];
    expect(() => (entries = decodeAll(hex(bytes)))).not.toThrow();
    const error = errorOf(entries);
    expect(error.reason).toBe(reason);
    expect(error.message).toMatch(message);
  });

  it('refuses an oversized frame at its header, before its body arrives', () => {
    const decoder = new ControlDecoder();
    const entries = decoder.push(hex(`4e545043 01 ${(MAX_FRAME_BODY + 1).toString(16).padStart(8, '0')}`));
    expect(errorOf(entries).reason).toBe('too-large');
    expect(decoder.spent).toBe(true);
    expect(decoder.push(hex('30 00000000'))).toEqual([]); // spent: reads nothing more
  });

  it('skips an unknown type from 0x80 up and goes on', () => {
    const entries = decodeAll(hex('4e545043  81 00000003 010203  30 00000000  ff 00000000'));
    expect(entries).toEqual([{ kind: 'skipped', type: 0x81, length: 3 }, { kind: 'message', message: { type: 'flush' } }, { kind: 'skipped', type: 0xff, length: 0 }]);
  });

  it('reads a code it does not know as "other" where the table allows it (FAIL reason, END how, route status, ERROR code)', () => {
    expect(messages(hex('11 0000000b 00000001 00000002 63 0000'))).toEqual([{ type: 'fail', conn: 1, id: '00000002', reason: 'other', text: '' }]);
    expect(messages(hex('12 00000019 00000001 00000002 0000000000000000 0000000000000000 63'))[0]).toMatchObject({ how: 'other' });
    expect(messages(hex('03 00000005 63 01 01 0000'))[0]).toMatchObject({ code: 'other' });
  });

  it('holds no more than one frame: a 64 KiB frame byte by byte decodes once, in order', () => {
    const big: ControlMessage = { type: 'drain', timeout: 1, text: 'x'.repeat(MAX_FRAME_BODY - 6) };
    const bytes = Buffer.concat([CONTROL_PREAMBLE, encodeMessage(big), encodeMessage({ type: 'flush' })]);
    const decoder = new ControlDecoder();
    const out: Decoded[] = [];
    let most = 0;
    for (let i = 0; i < bytes.length; i++) {
      out.push(...decoder.push(bytes.subarray(i, i + 1)));
      most = Math.max(most, decoder.bufferedBytes);
    }
    expect(out.map((entry) => (entry.kind === 'message' ? entry.message.type : entry.kind))).toEqual(['drain', 'flush']);
    expect(most).toBeLessThanOrEqual(MAX_FRAME_BODY);
  });

  it('encoding refuses what the wire cannot carry, naming the field', () => {
    expect(() => encodeMessage({ type: 'open', conn: 1, id: 'A1B2C3D4', route: 'x' })).toThrow(InvalidOptionsError);
    expect(() => encodeMessage({ type: 'open', conn: 1, id: 'a1b2c3d4', route: 'x', peer: { address: 'example.com', port: 1 } })).toThrow(/open\.peer\.address/);
    expect(() => encodeMessage({ type: 'ping', nonce: 2 ** 32, time: 0 })).toThrow(/ping\.nonce/);
    expect(() => encodeMessage({ type: 'drain', timeout: 0, text: 'x'.repeat(MAX_FRAME_BODY) })).toThrow(/at most 65536/);
  });

  it('IPv6 text and bytes: RFC 5952 form, IPv4-mapped, an IPv4 tail', () => {
    const round = (text: string): string => formatIpv6(ipv6Bytes(text));
    expect(round('2001:0db8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(round('::')).toBe('::');
    expect(round('::1')).toBe('::1');
    expect(round('1::')).toBe('1::');
    expect(round('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(round('1:0:2:3:4:5:6:7')).toBe('1:0:2:3:4:5:6:7');
    expect(round('::ffff:127.0.0.1')).toBe('::ffff:127.0.0.1');
    expect(round('64:ff9b::192.0.2.33')).toBe('64:ff9b::c000:221');
  });
});
