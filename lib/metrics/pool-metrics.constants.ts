import type { Registry } from 'prom-client';

export const POOL_METRICS_OPTIONS = 'nestjs-tunnel-pool:POOL_METRICS_OPTIONS';

export interface PoolMetricsModuleOptions {
  /** The registry to register in: yours, to plug into an existing setup; prom-client's default registry otherwise. */
  registry?: Registry;
  /** The route of the scrape endpoint (default 'metrics'); false: no controller (serve `PoolMetricsService.scrape()` yourself). */
  path?: string | false;
  /** The metric name prefix (default `tunnel_pool_`). */
  prefix?: string;
  /** Make `PoolMetricsService` injectable everywhere without importing the module again. */
  isGlobal?: boolean;
}
