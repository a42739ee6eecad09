import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { isIP } from 'node:net';
import { createAddressFilter, normalizeAddress } from '../../lib/core/ip-filter.js';
import { runs } from './fc.js';

/** IPv4 as a 32-bit number and as text. */
const v4 = fc.nat({ max: 0xffff_ffff }).map((n) => ({ n, text: [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.') }));
const v4Rule = fc.tuple(v4, fc.integer({ min: 0, max: 32 }), fc.boolean()).map(([ip, prefix, bare]) => ({
  ip,
  prefix: bare ? 32 : prefix,
  text: bare ? ip.text : `${ip.text}/${prefix}`,
}));

function inV4Rule(n: number, rule: { ip: { n: number }; prefix: number }): boolean {
  if (rule.prefix === 0) return true;
  const shift = 32 - rule.prefix;
  return n >>> shift === rule.ip.n >>> shift;
}

/** IPv6 as a bigint and as text (full form, random case). */
const v6 = fc.array(fc.nat({ max: 0xffff }), { minLength: 8, maxLength: 8 }).chain((groups) =>
  fc.boolean().map((upper) => {
    const text = groups.map((g) => g.toString(16)).join(':');
    return { n: groups.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n), text: upper ? text.toUpperCase() : text };
  }),
);
// Stay clear of ::ffff:0:0/96, where an IPv6 rule also covers IPv4 peers (tested on its own below).
const v6Rule = fc.tuple(v6, fc.integer({ min: 1, max: 128 })).filter(([ip]) => ip.n >> 32n !== 0xffffn).map(([ip, prefix]) => ({ ip, prefix, text: `${ip.text}/${prefix}` }));

function inV6Rule(n: bigint, rule: { ip: { n: bigint }; prefix: number }): boolean {
  const shift = BigInt(128 - rule.prefix);
  return n >> shift === rule.ip.n >> shift;
}

/** The ways one IPv4 peer can show up: plain, IPv4-mapped IPv6 in several spellings, with a zone. */
function spellings(text: string, n: number): string[] {
  const hex = `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  return [text, `::ffff:${text}`, `::FFFF:${text}`, `0:0:0:0:0:ffff:${text}`, `::ffff:${hex}`, `::ffff:${text}%eth0`];
}

const garbage = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:.%/[] '), maxLength: 45 }),
  fc.constant(''),
);

describe('allowedIps filter (property): peer addresses as the socket or a proxy reports them', () => {
  it('IPv4 peers: allowed exactly when inside a rule, under every spelling of the address', () => {
    fc.assert(
      fc.property(fc.array(v4Rule, { minLength: 1, maxLength: 4 }), v4, (rules, peer) => {
        const allowed = createAddressFilter(rules.map((rule) => rule.text));
        const expected = rules.some((rule) => inV4Rule(peer.n, rule));
        for (const spelling of spellings(peer.text, peer.n)) expect([spelling, allowed(spelling)]).toEqual([spelling, expected]);
      }),
      runs(2000),
    );
  });

  it('IPv4 rules written as IPv4-mapped IPv6 compare as IPv4', () => {
    fc.assert(
      fc.property(v4, v4, (rule, peer) => {
        const allowed = createAddressFilter(`::ffff:${rule.text}`);
        expect(allowed(peer.text)).toBe(rule.n === peer.n);
        expect(allowed(`::ffff:${peer.text}`)).toBe(rule.n === peer.n);
      }),
      runs(1000),
    );
  });

  it('IPv6 peers: allowed exactly when inside a rule, in any letter case', () => {
    fc.assert(
      fc.property(fc.array(v6Rule, { minLength: 1, maxLength: 4 }), v6, (rules, peer) => {
        const allowed = createAddressFilter(rules.map((rule) => rule.text));
        expect(allowed(peer.text)).toBe(rules.some((rule) => inV6Rule(peer.n, rule)));
      }),
      runs(2000),
    );
  });

  it('anything that is not an address is refused, never thrown on', () => {
    const allowAll = createAddressFilter(['0.0.0.0/0', '::/0']);
    fc.assert(
      fc.property(garbage, (peer) => {
        const result = allowAll(peer);
        expect(typeof result).toBe('boolean');
        // Allowed only if it is a real IPv4 or IPv6 address (an IPv6 one may carry a zone).
        if (result) expect(isIP(peer)).not.toBe(0);
        expect(normalizeAddress(peer).length).toBeLessThanOrEqual(peer.length);
      }),
      runs(5000),
    );
    expect(allowAll(undefined)).toBe(false);
    expect(allowAll('')).toBe(false);
    // Regressions: normalizing (dropping a "%zone") turned non-addresses into addresses: "1.2.3.4%eth0"
    // (IPv4 has no zones) was allowed as 1.2.3.4, and "::%" (seed 15) as "::". Unreachable from today's
    // transports (socket addresses are canonical; X-Forwarded-For entries must pass isIP first), refused
    // by the filter itself now.
    expect(allowAll('1.2.3.4%eth0')).toBe(false);
    expect(createAddressFilter('10.0.0.1')('10.0.0.1%anything')).toBe(false);
    expect(allowAll('::%')).toBe(false);
    expect(createAddressFilter('::1')('::1%not a zone')).toBe(false);
    expect(allowAll('fe80::1%eth0')).toBe(true);
    expect(allowAll('localhost')).toBe(false);
  });
});
