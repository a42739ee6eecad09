// nestjs-tunnel-pool/tunnel: the tunnel layer above the pools (a server that
// listens for tunnel clients and opens public listeners for their reverse
// routes, a client that dials it and serves those routes), without Nest.
// Like nestjs-tunnel-pool/core it loads no @nestjs/*, rxjs or
// reflect-metadata. The main entry (index.ts) re-exports all of it.

// The two ends
export {
  TunnelServer,
  type TunnelServerOptions,
  type TunnelServerEvents,
  type ServedRoute,
  type TunnelConnectionEvent,
  type AccountedEvent,
} from './tunnel/tunnel-server.js';
export { TunnelClient, type TunnelClientOptions, type TunnelClientEvents, type RouteState } from './tunnel/tunnel-client.js';
export type { ForwardResult, DirectionResult, DirectionEnd } from './tunnel/forward.js';

// Routes (what a client serves) and the server's allowlist (what it opens)
export {
  RouteAllowlist,
  clientLabel,
  validateRoutes,
  type RouteOptions,
  type Route,
  type HostPort,
  type AllowlistOptions,
  type AllowRuleOptions,
  type PortRange,
  type RouteVerdict,
  type Direction,
  type RouteRefusal,
} from './tunnel/routes.js';
// What the control channel says about routes and connections, as the events carry it
export type { AnnouncedRoute, RouteAnswer, EndMessage, FailMessage, OpenMessage, PeerAddress, ServerLimits, ShutMessage } from './tunnel/control/messages.js';
export type { FailReason, EndKind, RouteStatus, ControlErrorCode } from './tunnel/control/wire.js';
export type { ControlChannelOptions } from './tunnel/control/channel.js';

// Where control messages for a client go: in this process by default; the interface lets several servers share clients
export {
  LocalControlRouter,
  LocalBus,
  type ControlRouter,
  type RoutedMessage,
  type Envelope,
  type Attachment,
  type AttachOptions,
  type DeliverToChannel,
  type DeliverToInstance,
} from './tunnel/router.js';

// PROXY protocol v1/v2 (a route's proxyProtocol option): what a target uses to read the real client address
export {
  parseProxyHeader,
  readProxyHeader,
  proxyHeader,
  type ProxyHeader,
  type ProxyParse,
  type ProxyEndpoints,
  type ProxyAddress,
  type ProxyFamily,
} from './tunnel/proxy-protocol.js';

// Stats: plain snapshots per route and per client
export { LATENCY_BOUNDS_MS, failureReason, type TunnelStatsSnapshot, type TunnelCounters, type LatencySummary, type ConnectionKey } from './tunnel/tunnel-stats.js';

// The tunnel's errors (also in nestjs-tunnel-pool/core, with every other error)
export {
  ControlProtocolError,
  ControlVersionError,
  ControlTimeoutError,
  ControlRefusedError,
  TargetConnectError,
  RouteLimitError,
  ProxyHeaderError,
  StreamCutError,
  type ControlProtocolFailure,
  type ControlVersionRange,
  type TargetConnectFailure,
  type ProxyHeaderFailure,
} from './core/errors.js';
