// nestjs-tunnel-pool/core: the pools, transports, errors and certificates,
// without Nest. Nothing here loads @nestjs/*, rxjs or reflect-metadata, so
// it works in a plain Node program that has none of them installed. The main
// entry (index.ts) is this plus the Nest layer.

// Pools (usable without Nest)
export { ClientPool, type ClientPoolOptions } from './core/client-pool.js';
export { ServerPool, type ServerPoolOptions, type IncomingStream, type IncomingOptions, type IncomingGetOptions } from './core/server-pool.js';
export { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from './pool-factory.js';
export type { ClientPoolStats, ServerPoolStats, PerClientStats, PoolStats, PoolState } from './core/stats.js';
export type { WaitOptions } from './core/waiters.js';
// Who is at the other end of a pooled stream (mutual TLS, shared key), and its label for `incomingGet({ client })` and `stats.clients`.
export { streamIdentity, type ClientIdentity } from './core/stream-identity.js';
export { identityLabel } from './auth/identity.js';
// Shared-key authentication of pooled connections (the `auth` option): a fresh key, and the option types.
export { generateAuthKey, type AuthKeyInput, type AuthKeySpec, type ClientAuthOptions, type ServerAuthOptions } from './auth/keys.js';
export { FIRST_ID, isValidId, type IdWireForm } from './core/ids.js';
export { adjustCapacity, adjustInterval } from './core/adaptive.js';
export type { PoolLogger } from './core/logger.js';

// Errors
export {
  PoolError,
  PoolErrorCode,
  PoolTimeoutError,
  PoolClosedError,
  PoolNotStartedError,
  PoolRefusedError,
  IpNotAllowedError,
  PoolFullError,
  DialError,
  HandshakeError,
  TlsMismatchError,
  CertificatePinError,
  AuthRefusedError,
  AuthHandshakeError,
  InvalidIdError,
  InvalidOptionsError,
  DuplicatePoolError,
  ListenError,
  PoolAbortedError,
  FirstStreamLostError,
  FirstStreamTakenError,
  FdLimitError,
  MissingModuleError,
  StreamCutError,
  WsStreamError,
  ControlProtocolError,
  ControlVersionError,
  ControlTimeoutError,
  ControlRefusedError,
  type ControlProtocolFailure,
  type ControlVersionRange,
  TargetConnectError,
  RouteLimitError,
  ProxyHeaderError,
  isPoolError,
  refusalForStatus,
  type PoolErrorFor,
  type StreamCutReason,
  type StreamCutDetails,
  type TargetConnectFailure,
  type ProxyHeaderFailure,
} from './core/errors.js';

// Transports
export type {
  ClientTransport,
  ServerTransport,
  ServerAcceptor,
  Admission,
  Refusal,
  RefusalReason,
  HandshakeFailure,
  AcceptFailure,
  ConnectingOptions,
  DialContext,
  DialResult,
} from './core/transport.js';
export { REFUSAL_REASONS } from './core/transport.js';
// A transport is a factory object: the built-ins below, or your own made with defineTransport.
export {
  defineTransport,
  isTransportFactory,
  type TransportFactory,
  type TransportDefinition,
  type AnyTransportFactory,
  type ClientOptionsOf,
  type ServerOptionsOf,
} from './transports/transport-factory.js';
export { BUILT_IN_TRANSPORTS, type TransportName } from './transports/index.js';
// What a transport uses to validate its options the way the built-ins do (naming the option, with the caller's prefix).
export { OptionReader } from './core/validate.js';
export { TcpClientTransport, TcpServerTransport, tcpTransport, type TcpClientOptions, type TcpServerOptions } from './transports/tcp/index.js';
// HTTP/2
export { Http2ClientTransport, Http2ServerTransport, Http2StreamAbortedError, http2Transport, type Http2AbortReason, type Http2ClientOptions, type Http2ServerOptions, type Http2FlowOptions } from './transports/http2/index.js';
// WebSocket
export { WsClientTransport, WsServerTransport, WebSocketDuplex, wsTransport, wsMasking, type WsClientOptions, type WsServerOptions, type WsCommonOptions, type WsMasking, type HttpServerSource } from './transports/ws/index.js';
export type { TlsMode, TlsModeInput, ServerTlsInput, CaInput } from './transports/common/tls.js';
export type { Endpoint, EndpointInput, AddressResolver } from './transports/common/endpoint.js';

// Certificates
export {
  createSelfSignedCertificate,
  createCertificateAuthority,
  type CertificateOptions,
  type GeneratedCertificate,
  type CertificateAuthority,
} from './certs/index.js';

// diagnostics_channel events: the channel names and their payload types (subscribing needs no import)
export {
  CHANNELS,
  type ChannelName,
  type ChannelMessages,
  type PoolRef,
  type DialStartMessage,
  type DialEndMessage,
  type DialErrorMessage,
  type HandshakeMessage,
  type HandOffMessage,
  type DropMessage,
  type RefusalMessage,
  type SessionOpenMessage,
  type SessionCloseMessage,
  type TunnelConnectionOpenMessage,
  type TunnelConnectionCloseMessage,
} from './diagnostics/channels.js';
