import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import net from 'node:net';
import { ProxyHeaderError } from '../../lib/core/errors.js';
import { parseProxyHeader, PROXY_V1_MAX_LENGTH, proxyHeaderV1, proxyHeaderV2, type ProxyEndpoints } from '../../lib/tunnel/proxy-protocol.js';

const SIGNATURE = '0d0a0d0a000d0a515549540a';
const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const FFFF6 = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';

describe('PROXY protocol v1 writer: the specification\'s lines, byte for byte', () => {
  it.each<[string, ProxyEndpoints | undefined, string]>([
    ['TCP4', { source: { address: '192.168.0.1', port: 56324 }, destination: { address: '192.168.0.11', port: 443 } }, 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'],
    ['TCP4, the longest', { source: { address: '255.255.255.255', port: 65535 }, destination: { address: '255.255.255.255', port: 65535 } }, 'PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n'],
    ['TCP6, the longest', { source: { address: FFFF6, port: 65535 }, destination: { address: FFFF6, port: 65535 } }, `PROXY TCP6 ${FFFF6} ${FFFF6} 65535 65535\r\n`],
    ['IPv4-mapped IPv6 on both ends is TCP4', { source: { address: '::ffff:127.0.0.1', port: 1 }, destination: { address: '::FFFF:10.0.0.1', port: 2 } }, 'PROXY TCP4 127.0.0.1 10.0.0.1 1 2\r\n'],
    ['one IPv4 and one IPv6 end is TCP6', { source: { address: '127.0.0.1', port: 1 }, destination: { address: '::1', port: 2 } }, 'PROXY TCP6 ::ffff:127.0.0.1 ::1 1 2\r\n'],
    ['UNKNOWN without endpoints', undefined, 'PROXY UNKNOWN\r\n'],
  ])('%s', (_name, endpoints, line) => {
    const written = proxyHeaderV1(endpoints);
    expect(written.toString('latin1')).toBe(line);
    expect(written.length).toBeLessThanOrEqual(PROXY_V1_MAX_LENGTH);
  });

  it('the TCP6 worst case is 104 bytes, as the specification counts', () => {
    expect(proxyHeaderV1({ source: { address: FFFF6, port: 65535 }, destination: { address: FFFF6, port: 65535 } })).toHaveLength(104);
  });
});

describe('PROXY protocol v2 writer: the specification\'s layout, byte for byte', () => {
  it('TCP over IPv4: signature, 0x21 (v2, PROXY), 0x11 (AF_INET, STREAM), length 12, addresses, ports', () => {
    const header = proxyHeaderV2({ source: { address: '192.168.0.1', port: 56324 }, destination: { address: '192.168.0.11', port: 443 } });
    expect(header.toString('hex')).toBe(hex(`${SIGNATURE} 21 11 000c c0a80001 c0a8000b dc04 01bb`).toString('hex'));
  });

  it('TCP over IPv6: 0x21 (AF_INET6, STREAM), length 36', () => {
    const header = proxyHeaderV2({ source: { address: '2001:db8::1', port: 1 }, destination: { address: '::ffff:10.0.0.1', port: 65535 } });
    expect(header.toString('hex')).toBe(
      hex(`${SIGNATURE} 21 21 0024 20010db8000000000000000000000001 00000000000000000000ffff0a000001 0001 ffff`).toString('hex'),
    );
  });

  it('LOCAL without endpoints: 0x20, family unspecified, no address (16 bytes)', () => {
    expect(proxyHeaderV2().toString('hex')).toBe(hex(`${SIGNATURE} 20 00 0000`).toString('hex'));
  });

  it('refuses what is no address or port, with a typed error', () => {
    for (const endpoints of [
      { source: { address: 'localhost', port: 1 }, destination: { address: '127.0.0.1', port: 2 } },
      { source: { address: '127.0.0.1', port: 70000 }, destination: { address: '127.0.0.1', port: 2 } },
      { source: { address: '127.0.0.1', port: 1.5 }, destination: { address: '127.0.0.1', port: 2 } },
    ]) {
      for (const write of [proxyHeaderV1, proxyHeaderV2]) {
        expect(() => write(endpoints)).toThrow(ProxyHeaderError);
      }
    }
  });
});

describe('parseProxyHeader', () => {
  it('reads the specification\'s examples', () => {
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /'))).toEqual({
      status: 'ok',
      length: 47, // the line and its CRLF; 'GET /' is the connection's data
      header: { version: 1, command: 'proxy', family: 'tcp4', endpoints: { source: { address: '192.168.0.1', port: 56324 }, destination: { address: '192.168.0.11', port: 443 } } },
    });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff:: ffff:: 1 2\r\n'))).toEqual({ status: 'ok', length: 33, header: { version: 1, command: 'proxy', family: 'unknown' } });
    expect(parseProxyHeader(hex(`${SIGNATURE} 20 00 0000`))).toEqual({ status: 'ok', length: 16, header: { version: 2, command: 'local', family: 'unknown' } });
    const withTlv = hex(`${SIGNATURE} 21 11 0011 7f000001 7f000002 0001 0002 04 0002 abcd`); // a TLV of type 4 (PP2_TYPE_NOOP), 2 bytes
    expect(parseProxyHeader(withTlv)).toMatchObject({
      status: 'ok',
      length: 33,
      header: { family: 'tcp4', endpoints: { source: { address: '127.0.0.1', port: 1 } }, tlvs: [{ type: 4, value: Buffer.from([0xab, 0xcd]) }] },
    });
    expect(parseProxyHeader(hex(`${SIGNATURE} 21 12 000c 7f000001 7f000002 0001 0002`))).toMatchObject({ status: 'ok', header: { family: 'udp4' } });
  });

  it.each<[string, Buffer, string]>([
    ['no signature', Buffer.from('GET / HTTP/1.1\r\n'), 'signature'],
    ['a v1 line without CRLF in 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), 'too-long'],
    ['a v1 protocol that does not exist', Buffer.from('PROXY UDP4 1.1.1.1 1.1.1.1 1 1\r\n'), 'family'],
    ['a v1 TCP4 line with IPv6 addresses', Buffer.from('PROXY TCP4 ::1 ::1 1 1\r\n'), 'address'],
    ['a v1 port out of range', Buffer.from('PROXY TCP4 1.1.1.1 1.1.1.1 65536 1\r\n'), 'address'],
    ['a v1 port with a leading zero', Buffer.from('PROXY TCP4 1.1.1.1 1.1.1.1 01 1\r\n'), 'address'],
    ['a v1 line with a double space', Buffer.from('PROXY TCP4  1.1.1.1 1.1.1.1 1 1\r\n'), 'address'],
    ['a v2 version 1', hex(`${SIGNATURE} 11 11 000c 7f000001 7f000002 0001 0002`), 'version'],
    ['a v2 command 2', hex(`${SIGNATURE} 22 11 000c 7f000001 7f000002 0001 0002`), 'version'],
    ['a v2 family 0x41', hex(`${SIGNATURE} 21 41 000c 7f000001 7f000002 0001 0002`), 'family'],
    ['a v2 TCP4 with 8 address bytes', hex(`${SIGNATURE} 21 11 0008 7f000001 7f000002`), 'family'],
    ['a v2 TLV longer than the header', hex(`${SIGNATURE} 21 11 000f 7f000001 7f000002 0001 0002 04 0005 ab`), 'family'],
  ])('%s: invalid, with a typed reason', (_name, bytes, reason) => {
    const parsed = parseProxyHeader(bytes);
    expect(parsed.status).toBe('invalid');
    if (parsed.status !== 'invalid') return;
    expect(parsed.error).toBeInstanceOf(ProxyHeaderError);
    expect(parsed.error).toMatchObject({ code: 'POOL_ERR_PROXY_HEADER', reason });
  });
});

const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const port = fc.integer({ min: 0, max: 65535 });
const endpointsArb = fc.oneof(
  fc.record({ source: fc.record({ address: ipv4, port }), destination: fc.record({ address: ipv4, port }) }),
  fc.record({ source: fc.record({ address: ipv6, port }), destination: fc.record({ address: ipv6, port }) }),
);

/** Whether two spellings are one address (compared as numbers by a BlockList; an IPv4-mapped IPv6 address as its IPv4). */
function sameAddress(a: string, b: string): boolean {
  const unmap = (address: string): string => /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] ?? address;
  const [x, y] = [unmap(a), unmap(b)];
  if (net.isIPv4(x) !== net.isIPv4(y)) return false;
  const list = new net.BlockList();
  const family = net.isIPv4(x) ? 'ipv4' : 'ipv6';
  list.addAddress(x, family);
  return list.check(y, family);
}

describe('parseProxyHeader: properties', () => {
  it('never throws on arbitrary bytes, and answers incomplete, ok or a typed invalid', () => {
    const anyStart = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((tail) => Buffer.concat([hex(SIGNATURE), tail])),
      fc.uint8Array({ maxLength: 120 }).map((tail) => Buffer.concat([Buffer.from('PROXY '), tail])),
      fc.string({ maxLength: 120 }).map((tail) => Buffer.from(`PROXY TCP4 ${tail}`)),
    );
    fc.assert(
      fc.property(anyStart, (bytes) => {
        const parsed = parseProxyHeader(bytes);
        if (parsed.status === 'invalid') return parsed.error instanceof ProxyHeaderError;
        if (parsed.status === 'ok') return parsed.length > 0 && parsed.length <= bytes.length;
        return parsed.status === 'incomplete';
      }),
      { numRuns: 5000 },
    );
  });

  it('reads back what the writers wrote, v1 and v2, and its exact length before any data', () => {
    fc.assert(
      fc.property(endpointsArb, fc.constantFrom(1 as const, 2 as const), fc.uint8Array({ maxLength: 64 }), (endpoints, version, data) => {
        const header = version === 1 ? proxyHeaderV1(endpoints) : proxyHeaderV2(endpoints);
        const parsed = parseProxyHeader(Buffer.concat([header, data]));
        if (parsed.status !== 'ok') return false;
        const got = parsed.header.endpoints!;
        return (
          parsed.length === header.length &&
          parsed.header.version === version &&
          sameAddress(got.source.address, endpoints.source.address) &&
          sameAddress(got.destination.address, endpoints.destination.address) &&
          got.source.port === endpoints.source.port &&
          got.destination.port === endpoints.destination.port
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('every strict prefix of a header is incomplete (a reader waits, never misreads)', () => {
    fc.assert(
      fc.property(fc.option(endpointsArb, { nil: undefined }), fc.constantFrom(1 as const, 2 as const), (endpoints, version) => {
        const header = version === 1 ? proxyHeaderV1(endpoints) : proxyHeaderV2(endpoints);
        for (let cut = 0; cut < header.length; cut++) {
          if (parseProxyHeader(header.subarray(0, cut)).status !== 'incomplete') return false;
        }
        return true;
      }),
      { numRuns: 500 },
    );
  });
});
