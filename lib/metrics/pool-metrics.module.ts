import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { OptionReader } from '../core/validate.js';
import { POOL_METRICS_OPTIONS, type PoolMetricsModuleOptions } from './pool-metrics.constants.js';
import { createPoolMetricsController } from './pool-metrics.controller.js';
import { PoolMetricsService } from './pool-metrics.service.js';

/**
 * Prometheus metrics of every pool in the application. Import
 * `PoolMetricsModule.forRoot()` once (beside `PoolModule`): it registers the
 * collectors in prom-client's default registry (or `registry`) and serves
 * GET /metrics (or `path`; `path: false` serves nothing, inject
 * `PoolMetricsService` and call `scrape()` where you want).
 */
@Module({})
export class PoolMetricsModule {
  static forRoot(options: PoolMetricsModuleOptions = {}): DynamicModule {
    const read = new OptionReader(options as Record<string, unknown>, 'PoolMetricsModule.forRoot');
    const rawPath = read.raw('path');
    if (rawPath !== undefined && rawPath !== false && typeof rawPath !== 'string') {
      read.fail('path', 'a route string or false');
    }
    read.accept('registry');
    read.string('prefix');
    const isGlobal = read.bool('isGlobal', false);
    read.rejectUnknown();
    const path: string | false = rawPath === undefined ? 'metrics' : (rawPath as string | false);
    return {
      module: PoolMetricsModule,
      global: isGlobal,
      imports: [DiscoveryModule],
      providers: [{ provide: POOL_METRICS_OPTIONS, useValue: options }, PoolMetricsService],
      controllers: path === false ? [] : [createPoolMetricsController(path)],
      exports: [PoolMetricsService],
    };
  }
}
