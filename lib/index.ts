// The public API of nestjs-tunnel-pool. Nothing else is public.

// Everything usable without Nest (also its own entry point, nestjs-tunnel-pool/core)
export * from './core-entry.js';

// The tunnel server and client, their routes and stats (also its own entry point, nestjs-tunnel-pool/tunnel)
export * from './tunnel-entry.js';

// Nest
export {
  PoolModule,
  ClientPoolService,
  ServerPoolService,
  CLIENT_POOL,
  SERVER_POOL,
  DEFAULT_POOL_NAME,
  getClientPoolToken,
  getServerPoolToken,
  InjectClientPool,
  InjectServerPool,
  type PoolModuleOptions,
  type PoolModuleRootOptions,
  type PoolModuleAsyncOptions,
  type PoolOptionsFactory,
  type ClientPoolServiceStats,
  type ServerPoolServiceStats,
  type UnconfiguredPoolStats,
  TunnelModule,
  TunnelServerService,
  TunnelClientService,
  TUNNEL_SERVER,
  TUNNEL_CLIENT,
  getTunnelServerToken,
  getTunnelClientToken,
  InjectTunnelServer,
  InjectTunnelClient,
  type TunnelModuleOptions,
  type TunnelModuleRootOptions,
  type TunnelModuleAsyncOptions,
  type TunnelOptionsFactory,
  type TunnelModuleServerOptions,
  type TunnelModuleClientOptions,
  type TunnelServerEvent,
  type TunnelClientEvent,
} from './nest/index.js';
