import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isIP } from 'node:net';
import { formatEndpoint, parseEndpoint, type Endpoint } from '../../lib/transports/common/endpoint.js';
import { runs } from './fc.js';

function parsed(input: unknown): Endpoint | { code: string } {
  try {
    return parseEndpoint(input);
  } catch (error) {
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'address' });
    return { code: (error as { code: string }).code };
  }
}

/** Characters that cannot be part of a host name (WHATWG forbidden host code points, whitespace, '%'): they would change what a URL dials. */
const NOT_IN_A_HOST = /[\s\x00-\x20\x7f#%/:<>?@[\\\]^|]/;

const port = fc.integer({ min: 1, max: 65535 });
const hostname = fc.domain();
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const anyText = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: fc.constantFrom(...'ab1:[]@/?# .%\n'), maxLength: 20 }),
  fc.tuple(fc.string({ maxLength: 12 }), fc.oneof(port.map(String), fc.string({ maxLength: 6 }))).map(([h, p]) => `${h}:${p}`),
  fc.tuple(fc.string({ maxLength: 12 }), port).map(([h, p]) => `[${h}]:${p}`),
);

describe('parseEndpoint (property): "host:port", "[v6]:port", { host, port }', () => {
  it.each([
    ['a host name', 'tunnel.example.com:443', { host: 'tunnel.example.com', port: 443 }],
    ['an IPv6 literal with a zone', '[fe80::1%eth0]:80', { host: 'fe80::1%eth0', port: 80 }],
    ['an internationalised host name', 'bücher.example:80', { host: 'bücher.example', port: 80 }],
  ])('accepts %s', (_what, input, expected) => {
    expect(parseEndpoint(input)).toEqual(expected);
  });

  it('never throws anything but POOL_ERR_INVALID_OPTIONS, and what it accepts is a real host and a port in 1..65535', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.anything(), fc.record({ host: fc.oneof(fc.string({ maxLength: 12 }), fc.anything()), port: fc.oneof(fc.integer(), fc.double(), fc.anything()) })), (input) => {
        const result = parsed(input);
        if ('code' in result) return;
        expect(typeof result.host).toBe('string');
        expect(result.host.length).toBeGreaterThan(0);
        expect(Number.isInteger(result.port) && result.port >= 1 && result.port <= 65535).toBe(true);
        // A host never carries URL delimiters, whitespace or controls, and has a ':' only as an IPv6 literal.
        // (An IPv6 literal has ':' and may have a "%zone".)
        if (isIP(result.host) !== 6) expect(NOT_IN_A_HOST.test(result.host)).toBe(false);
      }),
      runs(5000),
    );
  });

  it('round-trips every host name, IPv4 and IPv6 address through formatEndpoint, as a string and as an object', () => {
    fc.assert(
      fc.property(fc.oneof(hostname, ipv4, ipv6), port, (host, p) => {
        const endpoint = { host, port: p };
        expect(parseEndpoint(formatEndpoint(endpoint))).toEqual(endpoint);
        expect(parseEndpoint(endpoint)).toEqual(endpoint);
      }),
      runs(3000),
    );
  });

  it.each([
    ['a port of 0', 'example.com:0'],
    ['a port past 65535', 'example.com:65536'],
    ['an IPv6 address without brackets', '::1:80'],
    ['an empty host', ':80'],
    ['no port', 'example.com'],
    // Regressions found by the property above: hosts that are not hosts were accepted, and in a
    // ws:// URL they changed what was dialed ("user@host" dialed host with an Authorization
    // header, while tcp looked up "user@host" in DNS) or failed untyped (" " made the URL throw).
    ['a space as host (counterexample " :1")', ' :1'],
    ['credentials in the host', 'user@127.0.0.1:80'],
    ['a path and query in the host', '127.0.0.1/x?:80'],
    ['a fragment in the host', 'example.com#:80'],
    ['a percent-encoded host', 'a%20b:80'],
    ['an object with a space in its host', { host: 'a b', port: 80 }],
    ['an object with an IPv6 host in brackets', { host: '[::1]', port: 80 }],
  ])('refuses %s', (_what, input) => {
    expect(parsed(input)).toEqual({ code: 'POOL_ERR_INVALID_OPTIONS' });
  });
});
