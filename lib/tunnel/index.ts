// The tunnel layer, above the pools: control protocol and channel, routes, message router, server and client.
// Internal: the package's public tunnel API is lib/tunnel-entry.ts (nestjs-tunnel-pool/tunnel).
export { ControlChannel, type ControlChannelOptions, type ControlChannelEvents, type ClientHello, type ServerAnswer, type HelloResult } from './control/channel.js';
export { ControlDecoder, decodeAll, decodeFrame, type Decoded } from './control/decoder.js';
export { encodeMessage, encodeBody, decodeBody } from './control/messages.js';
export type * from './control/messages.js';
export * from './control/wire.js';
export * from './routes.js';
export * from './router.js';
export { TunnelServer, type TunnelServerOptions, type TunnelServerEvents, type ServedRoute, type TunnelConnectionEvent } from './tunnel-server.js';
export { TunnelClient, type TunnelClientOptions, type TunnelClientEvents, type RouteState } from './tunnel-client.js';
export { matchPreamble } from './tunnel-common.js';
