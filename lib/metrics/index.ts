// The `nestjs-tunnel-pool/metrics` entry point: the only one that loads prom-client.
// registerPoolMetrics works without Nest; PoolMetricsModule is its Nest integration.
export { METRIC_PREFIX, POOL_METRICS, registerPoolMetrics, type MetricsDisposer, type PoolMetricsOptions, type PoolsSource, type StatsSource } from './pool-metrics.js';
export { PoolMetricsModule } from './pool-metrics.module.js';
export { PoolMetricsService } from './pool-metrics.service.js';
export { POOL_METRICS_OPTIONS, type PoolMetricsModuleOptions } from './pool-metrics.constants.js';
export { registerTunnelMetrics, TUNNEL_METRICS, TUNNEL_HISTOGRAMS, TUNNEL_METRIC_NAMES, type TunnelStatsSource, type TunnelsSource } from './tunnel-metrics.js';
