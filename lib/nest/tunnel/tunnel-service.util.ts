import { InvalidOptionsError } from '../../core/errors.js';
import type { TunnelCounters, TunnelStatsSnapshot } from '../../tunnel/tunnel-stats.js';

/** What a service throws when its end is not configured, or not built yet (before the application's init). */
export function tunnelNotReady(role: 'client' | 'server', name: string, configured: boolean): InvalidOptionsError {
  return configured
    ? new InvalidOptionsError(role, `the tunnel ${role} '${name}' is built when the application initialises (init() or listen()); it is not yet`)
    : new InvalidOptionsError(role, `no tunnel ${role} is configured for tunnel '${name}': add ${role} to its TunnelModule options`);
}

const ZERO: TunnelCounters = { open: 0, total: 0, bytesIn: 0, bytesOut: 0, failures: {}, openLatency: { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0, sum: 0, buckets: [] } };

export function emptyTunnelStats(): TunnelStatsSnapshot {
  return { total: ZERO, routes: {}, clients: {} };
}

export function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
