/**
 * Injection tokens of TunnelModule, readable like the pools' ("nestjs-tunnel-pool:TUNNEL_SERVER:edge").
 * The unnamed tunnel is 'default', and runs over the default pool.
 */
import { DEFAULT_POOL_NAME } from '../pool.constants.js';

const PREFIX = 'nestjs-tunnel-pool';

function token(kind: string, name?: string): string {
  return name === undefined || name === DEFAULT_POOL_NAME ? `${PREFIX}:${kind}` : `${PREFIX}:${kind}:${name}`;
}

/** The token of the `TunnelServerService` of tunnel `name` (the default tunnel when omitted). */
export function getTunnelServerToken(name?: string): string {
  return token('TUNNEL_SERVER', name);
}

/** The token of the `TunnelClientService` of tunnel `name` (the default tunnel when omitted). */
export function getTunnelClientToken(name?: string): string {
  return token('TUNNEL_CLIENT', name);
}

/** The default tunnel's `TunnelServerService`. */
export const TUNNEL_SERVER = getTunnelServerToken();

/** The default tunnel's `TunnelClientService`. */
export const TUNNEL_CLIENT = getTunnelClientToken();

// Internal tokens (not exported from the package).

export function getTunnelOptionsToken(name?: string): string {
  return token('TUNNEL_OPTIONS', name);
}

export function getTunnelRegistrationToken(name?: string): string {
  return token('TUNNEL_REGISTRATION', name);
}

export function getTunnelLifecycleToken(name?: string): string {
  return token('TUNNEL_LIFECYCLE', name);
}
