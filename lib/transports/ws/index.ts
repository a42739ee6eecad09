import { defineTransport } from '../transport-factory.js';
import type { WsClientOptions } from './ws-client.transport.js';
import type { WsServerOptions } from './ws-server.transport.js';
import { resolveWsClientOptions, WS_CLIENT_OPTION_KEYS, WsClientTransport } from './ws-client.transport.js';
import { resolveWsServerOptions, WS_SERVER_OPTION_KEYS, WsServerTransport } from './ws-server.transport.js';

export { WsClientTransport, type WsClientOptions } from './ws-client.transport.js';
export { WsServerTransport, type WsServerOptions, type HttpServerSource } from './ws-server.transport.js';
export { WebSocketDuplex, type WsStreamError } from './ws-duplex.js';
export type { WsCommonOptions } from './ws-options.js';
export { wsMasking, type WsMasking } from './masking.js';

/** WebSocket (ws:// and wss://) on the `ws` package, wire-compatible with the Go `npws`. */
export const wsTransport = defineTransport<'ws', WsClientOptions, WsServerOptions>({
  name: 'ws',
  clientOptionKeys: WS_CLIENT_OPTION_KEYS,
  serverOptionKeys: WS_SERVER_OPTION_KEYS,
  createClient: (read) => new WsClientTransport(resolveWsClientOptions(read)),
  createServer: (read) => new WsServerTransport(resolveWsServerOptions(read)),
});
