// The Nest layer's public API (re-exported by lib/index.ts). Health checks
// have their own entry point, `nestjs-tunnel-pool/health`, so this one never
// loads @nestjs/terminus.
export { PoolModule } from './pool.module.js';
export { ClientPoolService } from './client-pool.service.js';
export { ServerPoolService } from './server-pool.service.js';
export { CLIENT_POOL, SERVER_POOL, DEFAULT_POOL_NAME, getClientPoolToken, getServerPoolToken } from './pool.constants.js';
export { InjectClientPool, InjectServerPool } from './pool.decorators.js';
export type { PoolModuleOptions, PoolModuleRootOptions, PoolModuleAsyncOptions, PoolOptionsFactory } from './pool-module-options.interface.js';
export type { ClientPoolServiceStats, ServerPoolServiceStats, UnconfiguredPoolStats } from './pool-service-stats.js';
// TunnelModule (over the PoolModule registrations)
export * from './tunnel/index.js';
