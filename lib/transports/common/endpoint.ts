import { isIP } from 'node:net';
import { InvalidOptionsError } from '../../core/errors.js';
import { show } from '../../core/validate.js';

export interface Endpoint {
  host: string;
  port: number;
}

export type EndpointInput = string | Endpoint;

/** A function that may return a different endpoint on every dial. */
export type AddressResolver = () => EndpointInput | Promise<EndpointInput>;

/** Parses `"host:port"`, `"[v6]:port"` or `{ host, port }`. */
export function parseEndpoint(input: unknown, option = 'address'): Endpoint {
  if (typeof input === 'string') {
    const match = /^\[([^\]]+)\]:(\d+)$/.exec(input) ?? /^([^:]+):(\d+)$/.exec(input);
    if (match) return checked({ host: match[1]!, port: Number(match[2]) }, input, option);
  } else if (input && typeof input === 'object' && 'host' in input && 'port' in input) {
    const { host, port } = input as { host: unknown; port: unknown };
    if (typeof host === 'string' && typeof port === 'number') return checked({ host, port }, input, option);
  }
  throw new InvalidOptionsError(option, `got ${show(input)}, expected "host:port", "[ipv6]:port" or { host, port }`);
}

/**
 * Code points no host name may hold (the WHATWG URL "forbidden host code
 * points", whitespace, and '%'): in a ws:// URL they would change what is
 * dialed ("user@host" dials "host" with credentials), or fail untyped.
 * An IPv6 literal (with its ':' and an optional "%zone") is checked apart.
 */
const NOT_IN_A_HOST = /[\s\x00-\x20\x7f#%/:<>?@[\\\]^|]/;

function checked(endpoint: Endpoint, input: unknown, option: string): Endpoint {
  if (!endpoint.host || !Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
    throw new InvalidOptionsError(option, `got ${show(input)}, expected a host and a port from 1 to 65535`);
  }
  if (isIP(endpoint.host) !== 6 && NOT_IN_A_HOST.test(endpoint.host)) {
    throw new InvalidOptionsError(option, `got ${show(input)}, expected a host name or IP address (no spaces, "@", "/", "?", "#", "%" or ":" outside "[ipv6]")`);
  }
  return endpoint;
}

/** Formats an endpoint for messages and URLs. */
export function formatEndpoint({ host, port }: Endpoint): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Where to dial: a fixed address or a resolver asked on every dial. */
export function endpointSource(address: unknown, resolver: AddressResolver | undefined, option = 'address'): () => Promise<Endpoint> {
  if (resolver && address !== undefined) {
    throw new InvalidOptionsError(option, 'set either address or addressResolver, not both');
  }
  if (resolver) return async () => parseEndpoint(await resolver(), 'addressResolver()');
  if (address === undefined) {
    throw new InvalidOptionsError(option, 'a client pool needs address ("host:port") or addressResolver');
  }
  const fixed = parseEndpoint(address, option);
  return async () => fixed;
}
