import { defineTransport } from '../transport-factory.js';
import type { TcpClientOptions } from './tcp-client.transport.js';
import type { TcpServerOptions } from './tcp-server.transport.js';
import { resolveTcpClientOptions, TCP_CLIENT_OPTION_KEYS, TcpClientTransport } from './tcp-client.transport.js';
import { resolveTcpServerOptions, TCP_SERVER_OPTION_KEYS, TcpServerTransport } from './tcp-server.transport.js';

export { TcpClientTransport, type TcpClientOptions } from './tcp-client.transport.js';
export { TcpServerTransport, type TcpServerOptions } from './tcp-server.transport.js';

/** TCP and TLS 1.3, wire-compatible with the Go `pool`. */
export const tcpTransport = defineTransport<'tcp', TcpClientOptions, TcpServerOptions>({
  name: 'tcp',
  clientOptionKeys: TCP_CLIENT_OPTION_KEYS,
  serverOptionKeys: TCP_SERVER_OPTION_KEYS,
  createClient: (read) => new TcpClientTransport(resolveTcpClientOptions(read)),
  createServer: (read) => new TcpServerTransport(resolveTcpServerOptions(read)),
});
