import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PoolHealthIndicator } from './pool-health.indicator.js';

/**
 * Provides `PoolHealthIndicator`. Import it beside `TerminusModule` (for
 * `HealthCheckService`) in the module of your health controller; it finds
 * the pools by token anywhere in the application.
 */
@Module({
  imports: [TerminusModule],
  providers: [PoolHealthIndicator],
  exports: [PoolHealthIndicator],
})
export class PoolHealthModule {}
