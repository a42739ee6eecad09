import { Controller, Get, Inject } from '@nestjs/common';
import { HealthCheck, HealthCheckService, type HealthIndicatorFunction } from '@nestjs/terminus';
import { PoolHealthIndicator, TunnelHealthIndicator } from '../lib/nest/health/index.js';
import { hasClientSide, hasServerSide, type SampleConfig } from './config.js';
import { SAMPLE_CONFIG } from './sample.constants.js';

/**
 * `GET /health`: the pools of this process and the tunnel over them (both
 * from the library's indicators). 200 when all are up; 503 when anything
 * keeps the tunnel from carrying a connection: no control channel, no
 * ready stream, every dial failing (a transport or TLS mismatch, a wrong key).
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly pools: PoolHealthIndicator,
    private readonly tunnel: TunnelHealthIndicator,
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    const checks: HealthIndicatorFunction[] = [];
    if (hasServerSide(this.config.role)) checks.push(() => this.pools.isHealthy('serverPool', { pool: 'server' }));
    if (hasClientSide(this.config.role)) checks.push(() => this.pools.isHealthy('clientPool', { pool: 'client' }));
    checks.push(() => this.tunnel.isHealthy('tunnel'));
    return this.health.check(checks);
  }
}
