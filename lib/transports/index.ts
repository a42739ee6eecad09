import { tcpTransport } from './tcp/index.js';
import type { TransportFactory } from './transport-factory.js';

/** The built-in transports by name. */
export const TRANSPORTS: Readonly<Record<string, TransportFactory>> = Object.freeze({
  tcp: tcpTransport,
});

export type TransportName = 'tcp';
