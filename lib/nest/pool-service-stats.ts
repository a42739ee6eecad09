import type { ClientPoolStats, ServerPoolStats } from '../core/stats.js';
import { unconfiguredMessage } from './unconfigured-pool.js';

/**
 * The `stats` of a service whose registration does not configure its side
 * (a pool with only `server` still has a `ClientPoolService`): just enough to
 * say so. It carries no zero-filled figures that would pass for real ones.
 */
export interface UnconfiguredPoolStats {
  role: 'client' | 'server';
  /** The registration's name. */
  name: string;
  configured: false;
  state: 'unconfigured';
  ready: false;
  active: 0;
  /** e.g. "no client pool is configured for pool 'default'". */
  message: string;
}

/**
 * A service's `stats`: the core pool's snapshot with `configured: true`, or
 * an `UnconfiguredPoolStats`. Narrow with `if (stats.configured)`; when the
 * side is known to exist, `service.pool.stats` is the core snapshot itself.
 */
export type ClientPoolServiceStats = (ClientPoolStats & { configured: true }) | UnconfiguredPoolStats;
export type ServerPoolServiceStats = (ServerPoolStats & { configured: true }) | UnconfiguredPoolStats;

export function unconfiguredStats(role: 'client' | 'server', name: string): UnconfiguredPoolStats {
  return { role, name, configured: false, state: 'unconfigured', ready: false, active: 0, message: unconfiguredMessage(role, name) };
}
