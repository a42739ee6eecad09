import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isIP } from 'node:net';
import { forwardedFor } from '../../lib/transports/common/forwarded-for.js';
import { runs } from './fc.js';

const SOCKET = '198.51.100.1';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((parts) => parts.join('.'));
const ipv6 = fc.ipV6();
/** An entry as a proxy writes it, with the address it stands for. */
const proxyEntry = fc.oneof(
  ipv4.map((ip) => ({ entry: ip, ip })),
  fc.tuple(ipv4, fc.integer({ min: 1, max: 65535 })).map(([ip, port]) => ({ entry: `${ip}:${port}`, ip })),
  ipv6.map((ip) => ({ entry: ip, ip })),
  ipv6.map((ip) => ({ entry: `[${ip}]`, ip })),
  fc.tuple(ipv6, fc.integer({ min: 1, max: 65535 })).map(([ip, port]) => ({ entry: `[${ip}]:${port}`, ip })),
);
/** Whatever a client may write in the header itself: commas, brackets, spaces, addresses, junk. */
const clientJunk = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef:.,[] %\t'), maxLength: 40 }),
  fc.array(proxyEntry.map((p) => p.entry), { maxLength: 4 }).map((entries) => entries.join(', ')),
);
const headerValue = fc.oneof(
  fc.constant(undefined),
  clientJunk,
  fc.array(clientJunk, { maxLength: 3 }),
);

describe('forwardedFor (property): the X-Forwarded-For parser', () => {
  it('never throws, and yields the socket address, nothing, or a valid IP', () => {
    fc.assert(
      fc.property(fc.option(fc.string({ maxLength: 20 }), { nil: undefined }), headerValue, fc.integer({ min: -1, max: 6 }), (remote, header, trusted) => {
        const address = forwardedFor(remote, header === undefined ? {} : { 'x-forwarded-for': header }, trusted);
        expect(address === undefined || address === remote || isIP(address) !== 0).toBe(true);
        if (trusted <= 0) expect(address).toBe(remote);
      }),
      runs(5000),
    );
  });

  it('with N trusted proxies, takes the entry the outermost one wrote, whatever the client wrote before it', () => {
    fc.assert(
      fc.property(clientJunk, fc.array(proxyEntry, { minLength: 1, maxLength: 5 }), fc.boolean(), (junk, proxies, asArray) => {
        const appended = proxies.map((p) => p.entry);
        const header = asArray ? [junk, appended.join(', ')] : `${junk}, ${appended.join(', ')}`;
        const address = forwardedFor(SOCKET, { 'x-forwarded-for': header }, proxies.length);
        expect(address).toBe(proxies[0]!.ip);
      }),
      runs(3000),
    );
  });

  it.each([
    ['an empty header', '', SOCKET],
    ['only commas and spaces', ' , ,, ', SOCKET],
    ['a hostname', 'proxy.example', undefined],
    ['an address with a bad port form', '1.2.3.4:', undefined],
    ['an out-of-range octet', '256.1.1.1', undefined],
    ['an IPv6-looking "host:port" without brackets (it is also a valid IPv6 address)', '::1:80', '::1:80'],
  ])('%s', (_what, header, expected) => {
    expect(forwardedFor(SOCKET, { 'x-forwarded-for': header }, 1)).toBe(expected);
  });
});
