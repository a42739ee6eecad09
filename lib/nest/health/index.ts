// The `nestjs-tunnel-pool/health` entry point: the only one that loads @nestjs/terminus.
export { PoolHealthModule } from './pool-health.module.js';
export { PoolHealthIndicator, type PoolHealthCheckOptions, type PoolRole } from './pool-health.indicator.js';
export { TunnelHealthIndicator, type TunnelHealthCheckOptions, type TunnelSide } from './tunnel-health.indicator.js';
