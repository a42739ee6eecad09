import { http2Transport } from './http2/index.js';
import { tcpTransport } from './tcp/index.js';
import { wsTransport } from './ws/index.js';
import type { TransportFactory } from './transport-factory.js';

/** The built-in transports by name. */
export const TRANSPORTS: Readonly<Record<string, TransportFactory>> = Object.freeze({
  tcp: tcpTransport,
  http2: http2Transport,
  ws: wsTransport,
});

export type TransportName = 'tcp' | 'http2' | 'ws';
