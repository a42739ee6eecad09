import { http2Transport } from './http2/index.js';
import { tcpTransport } from './tcp/index.js';
import { wsTransport } from './ws/index.js';
import type { ClientOptionsOf, ServerOptionsOf } from './transport-factory.js';

/**
 * The built-in transports by name: the one place a built-in transport is
 * registered. Names and option types below are derived from it.
 */
export const BUILT_IN_TRANSPORTS = Object.freeze({
  tcp: tcpTransport,
  http2: http2Transport,
  ws: wsTransport,
} as const);

export type BuiltInTransports = typeof BUILT_IN_TRANSPORTS;
/** The name of a built-in transport ('tcp', 'http2', 'ws'). */
export type TransportName = keyof BuiltInTransports;
/** The transport used when a pool definition names none. */
export const DEFAULT_TRANSPORT = 'tcp' satisfies TransportName;
