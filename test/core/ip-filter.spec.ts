import { describe, expect, it } from '@jest/globals';
import { createAddressFilter, normalizeAddress } from '../../lib/core/ip-filter.js';

describe('allowed client IPs', () => {
  it('allows everybody when unset', () => {
    expect(createAddressFilter(undefined)('203.0.113.9')).toBe(true);
  });

  it.each([
    // allowed, peer, expected
    ['127.0.0.1', '127.0.0.1', true],
    ['127.0.0.1', '127.0.0.2', false],
    ['127.0.0.1', '::ffff:127.0.0.1', true], // IPv4-mapped peer on a dual-stack listener
    ['::ffff:127.0.0.1', '127.0.0.1', true], // mapped form in the option
    ['::ffff:127.0.0.1', '::ffff:127.0.0.1', true],
    ['::1', '::1', true],
    ['::1', '127.0.0.1', false],
    ['10.0.0.0/8', '10.200.3.4', true],
    ['10.0.0.0/8', '::ffff:10.200.3.4', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['fd00::/8', 'fd12::1', true],
    [['192.0.2.1', '198.51.100.0/24'], '198.51.100.77', true],
    [['192.0.2.1', '198.51.100.0/24'], '192.0.2.2', false],
  ] as Array<[string | string[], string, boolean]>)('allowed %j, peer %s → %s', (allowed, peer, expected) => {
    expect(createAddressFilter(allowed)(peer)).toBe(expected);
  });

  it('refuses a peer without an address', () => {
    expect(createAddressFilter('127.0.0.1')(undefined)).toBe(false);
  });

  it.each([['not-an-ip'], ['10.0.0.0/33'], ['::1/129'], [[]], ['1.2.3.4/8/9'], [[42]]])('rejects %j with an options error naming allowedIps', (bad) => {
    expect(() => createAddressFilter(bad as never)).toThrow(expect.objectContaining({ code: 'POOL_ERR_INVALID_OPTIONS', option: 'allowedIps' }));
  });

  it('normalizes mapped addresses and zone IDs', () => {
    expect(normalizeAddress('::FFFF:192.0.2.1')).toBe('192.0.2.1');
    expect(normalizeAddress('fe80::1%eth0')).toBe('fe80::1');
  });
});
