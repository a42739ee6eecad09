import { Controller, Get, Inject, Optional } from '@nestjs/common';
import { HealthCheck, HealthCheckService, HealthIndicatorService, type HealthIndicatorFunction } from '@nestjs/terminus';
import { PoolHealthIndicator } from '../lib/nest/health/index.js';
import { hasClientSide, hasServerSide, type SampleConfig } from './config.js';
import { SAMPLE_CONFIG } from './sample.constants.js';
import { TunnelEntryService } from './tunnel-entry.service.js';
import { TunnelExitService } from './tunnel-exit.service.js';

/**
 * `GET /health`: the pools of this process (from the library's indicator)
 * and the control connection between the two sides (the tunnel carries
 * nothing without it). 200 when all are up, 503 otherwise.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly pools: PoolHealthIndicator,
    private readonly indicators: HealthIndicatorService,
    @Inject(SAMPLE_CONFIG) private readonly config: SampleConfig,
    @Optional() private readonly entry?: TunnelEntryService,
    @Optional() private readonly exit?: TunnelExitService,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    const checks: HealthIndicatorFunction[] = [];
    if (hasServerSide(this.config.role)) {
      checks.push(() => this.pools.isHealthy('serverPool', { pool: 'server' }));
      checks.push(() => this.control('entryControl', this.entry?.exitConnected ?? false, 'no exit is connected to the control port'));
    }
    if (hasClientSide(this.config.role)) {
      checks.push(() => this.pools.isHealthy('clientPool', { pool: 'client' }));
      checks.push(() => this.control('exitControl', this.exit?.controlConnected ?? false, 'the control connection to the entry is down'));
    }
    return this.health.check(checks);
  }

  private control<const Key extends string>(key: Key, connected: boolean, why: string) {
    const check = this.indicators.check(key);
    return connected ? check.up({ connected }) : check.down({ connected, message: why });
  }
}
