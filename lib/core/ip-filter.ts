import { BlockList, isIP } from 'node:net';
import { InvalidOptionsError } from './errors.js';
import { show } from './validate.js';

/**
 * Which peer addresses a server pool serves. Entries are single addresses or
 * CIDR subnets, IPv4 or IPv6; an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`)
 * is compared as the IPv4 address it carries, on either side.
 */
export type AddressFilter = (address: string | undefined) => boolean;

const MAPPED_V4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;

/** `::ffff:1.2.3.4` → `1.2.3.4`; other addresses unchanged; zone IDs dropped. */
export function normalizeAddress(address: string): string {
  const bare = address.replace(/%.*$/, '');
  const mapped = MAPPED_V4.exec(bare);
  return mapped ? mapped[1]! : bare;
}

export function createAddressFilter(allowed: string | readonly string[] | undefined, option = 'allowedIps'): AddressFilter {
  if (allowed === undefined) return () => true;
  const entries = typeof allowed === 'string' ? [allowed] : allowed;
  if (!Array.isArray(entries) || entries.length === 0) {
    throw new InvalidOptionsError(option, `got ${show(allowed)}, expected an IP address, a CIDR subnet or a non-empty list of them`);
  }
  const list = new BlockList();
  for (const entry of entries) {
    if (typeof entry !== 'string') {
      throw new InvalidOptionsError(option, `got ${show(entry)} in the list, expected an IP address or CIDR subnet`);
    }
    const [rawAddress, prefixText, extra] = entry.trim().split('/');
    const address = normalizeAddress(rawAddress ?? '');
    const family = isIP(address);
    const maxPrefix = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
    if (family === 0 || extra !== undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) {
      throw new InvalidOptionsError(option, `got ${show(entry)}, expected an IP address (e.g. "127.0.0.1", "::1") or a CIDR subnet (e.g. "10.0.0.0/8")`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (prefix === maxPrefix) list.addAddress(address, type);
    else list.addSubnet(address, prefix, type);
  }
  return (peer) => {
    // Only an address as given is compared: normalizing "::1%x y" or "10.0.0.1%x" would make one.
    if (!peer || isIP(peer) === 0) return false;
    const address = normalizeAddress(peer);
    const family = isIP(address);
    if (family === 0) return false;
    return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
  };
}
