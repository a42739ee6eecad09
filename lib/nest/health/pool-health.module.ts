import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PoolHealthIndicator } from './pool-health.indicator.js';

/**
 * Provides `PoolHealthIndicator`, and re-exports `TerminusModule` (so
 * `HealthCheckService` too): importing this one module in the module of your
 * health controller is enough. The indicator finds the pools by token
 * anywhere in the application.
 */
@Module({
  imports: [TerminusModule],
  providers: [PoolHealthIndicator],
  exports: [PoolHealthIndicator, TerminusModule],
})
export class PoolHealthModule {}
