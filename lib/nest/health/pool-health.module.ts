import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PoolHealthIndicator } from './pool-health.indicator.js';
import { TunnelHealthIndicator } from './tunnel-health.indicator.js';

/**
 * Provides `PoolHealthIndicator` and `TunnelHealthIndicator`, and re-exports `TerminusModule` (so
 * `HealthCheckService` too): importing this one module in the module of your
 * health controller is enough. The indicator finds the pools by token
 * anywhere in the application.
 */
@Module({
  imports: [TerminusModule],
  providers: [PoolHealthIndicator, TunnelHealthIndicator],
  exports: [PoolHealthIndicator, TunnelHealthIndicator, TerminusModule],
})
export class PoolHealthModule {}
