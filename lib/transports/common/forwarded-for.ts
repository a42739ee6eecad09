import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';

/**
 * The peer address to check against `allowedIps` for an HTTP request.
 * `trustedProxies` is how many reverse proxies stand in front of the server
 * (0: none, use the socket's address). Each appends the address it saw to
 * `X-Forwarded-For`, so the entry `trustedProxies` places from the right is
 * the one the outermost trusted proxy saw; entries left of it were written
 * by the client and prove nothing. Without a usable header, the socket's
 * address.
 */
export function forwardedFor(remoteAddress: string | undefined, headers: IncomingHttpHeaders, trustedProxies: number): string | undefined {
  if (trustedProxies <= 0) return remoteAddress;
  const header = headers['x-forwarded-for'];
  const raw = Array.isArray(header) ? header.join(',') : header;
  if (!raw) return remoteAddress;
  const entries = raw.split(',').map((entry) => entry.trim()).filter((entry) => entry.length > 0);
  if (entries.length === 0) return remoteAddress;
  // In range: entries is non-empty and trustedProxies >= 1, so the index is 0 .. length - 1.
  const candidate = entries[Math.max(0, entries.length - trustedProxies)]!;
  // "[v6]:port" and "v4:port" forms, as some proxies write them.
  const bare = /^\[([^\]]+)\](?::\d+)?$/.exec(candidate)?.[1] ?? (/^(\d+\.\d+\.\d+\.\d+):\d+$/.exec(candidate)?.[1] ?? candidate);
  return isIP(bare) ? bare : undefined;
}
