import { Injectable, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { OptionReader } from '../../core/validate.js';
import type { ClientPoolService } from '../client-pool.service.js';
import { DEFAULT_POOL_NAME, getClientPoolToken, getServerPoolToken } from '../pool.constants.js';
import type { ServerPoolService } from '../server-pool.service.js';
import type { ClientPoolServiceStats, ServerPoolServiceStats } from '../pool-service-stats.js';
import { requireTerminus } from './require-terminus.js';

export type PoolRole = 'client' | 'server';

export interface PoolHealthCheckOptions {
  /** Check one side only; by default every side the registration configures. */
  pool?: PoolRole;
  /** The pool's name; the default pool when omitted. */
  name?: string;
  /** Fewer idle streams than this is `down` (default 0). */
  minActive?: number;
}

type Stats = ClientPoolServiceStats | ServerPoolServiceStats;
type Status = 'up' | 'degraded' | 'down';

/**
 * A Terminus indicator for the pools. Per checked side:
 * - `down`: not ready (not started, closing, closed, not configured, not
 *   registered), fewer than `minActive` idle streams, or (a client pool) no
 *   idle stream while its creation rounds keep failing (every dial fails:
 *   the server is gone, or speaks another transport or TLS mode);
 * - `degraded`: ready but no idle stream at all (still serving: a degraded
 *   check keeps HTTP 200);
 * - `up` otherwise.
 * The worst side wins. The details are the stats snapshot (for `pool`) or
 * `{ client, server }` snapshots of the configured sides, plus a `message`
 * unless up. It never throws: a failure to check is `down`.
 */
@Injectable()
export class PoolHealthIndicator {
  private readonly healthIndicatorService: HealthIndicatorService;

  constructor(
    private readonly moduleRef: ModuleRef,
    // Optional only to replace Nest's generic "can't resolve dependencies"
    // with an error that names the fix.
    @Optional() healthIndicatorService?: HealthIndicatorService,
  ) {
    this.healthIndicatorService = requireTerminus('PoolHealthIndicator', healthIndicatorService);
  }

  async isHealthy<const Key extends string>(key: Key, options: PoolHealthCheckOptions = {}): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.healthIndicatorService.check(key);
    try {
      const { pool, name, minActive } = readOptions(options);
      const services = this.resolve(name);
      if (!services) {
        return indicator.down({ message: `no pool '${name}' is registered: import PoolModule.forRoot({ name: '${name}', ... }) in the application` });
      }
      const roles: PoolRole[] = pool ? [pool] : (['client', 'server'] as const).filter((role) => services[role].configured);
      const checked = roles.map((role) => ({ role, stats: services[role].stats }));
      const verdicts = checked.map(({ role, stats }) => judge(role, stats, minActive));
      const status: Status = verdicts.some((v) => v.status === 'down') ? 'down' : verdicts.some((v) => v.status === 'degraded') ? 'degraded' : 'up';
      const details: Record<string, unknown> = pool
        ? { ...checked[0]!.stats }
        : Object.fromEntries(checked.map(({ role, stats }) => [role, stats]));
      const reasons = verdicts.flatMap((v) => (v.reason ? [v.reason] : []));
      if (status !== 'up') details['message'] = reasons.join('; ');
      if (status === 'up') return indicator.up(details);
      if (status === 'degraded') return indicator.degraded(details);
      return indicator.down(details);
    } catch (error) {
      return indicator.down({ message: error instanceof Error ? error.message : String(error) });
    }
  }

  private resolve(name: string): { client: ClientPoolService; server: ServerPoolService } | undefined {
    try {
      return {
        client: this.moduleRef.get<ClientPoolService>(getClientPoolToken(name), { strict: false }),
        server: this.moduleRef.get<ServerPoolService>(getServerPoolToken(name), { strict: false }),
      };
    } catch {
      return undefined;
    }
  }
}

function readOptions(options: PoolHealthCheckOptions): { pool?: PoolRole; name: string; minActive: number } {
  const read = new OptionReader(options as Record<string, unknown>, 'isHealthy');
  const pool = read.raw('pool') === undefined ? undefined : read.oneOf<PoolRole>('pool', ['client', 'server'], 'client');
  const name = read.string('name') ?? DEFAULT_POOL_NAME;
  const minActive = read.int('minActive', 0, 0);
  read.rejectUnknown();
  return { ...(pool ? { pool } : {}), name, minActive };
}

function judge(role: PoolRole, stats: Stats, minActive: number): { status: Status; reason?: string } {
  if (!stats.configured) return { status: 'down', reason: stats.message };
  if (!stats.ready) return { status: 'down', reason: `${role} pool is not ready (state ${stats.state})` };
  if (stats.active < minActive) return { status: 'down', reason: `${role} pool has ${stats.active} idle streams, fewer than minActive ${minActive}` };
  // No stream and its dials keep failing (the server is gone, or speaks another transport or TLS mode):
  // nothing can be carried until something changes, whatever minActive says.
  if (stats.role === 'client' && stats.active === 0 && stats.failedRounds > 0) {
    const failures = Object.entries(stats.failures).map(([code, count]) => `${code} ×${count}`).join(', ');
    return { status: 'down', reason: `client pool has no idle stream and its last ${stats.failedRounds} creation round${stats.failedRounds === 1 ? '' : 's'} failed (${failures || 'no dial succeeded'})` };
  }
  if (stats.active === 0) return { status: 'degraded', reason: `${role} pool is ready but has no idle stream` };
  return { status: 'up' };
}

// Nest names a missing dependency by its class name, and only says "is the
// module containing it imported?". This name makes that error name the
// module to import when a controller injects the indicator without it.
Object.defineProperty(PoolHealthIndicator, 'name', {
  value: "PoolHealthIndicator (import PoolHealthModule from 'nestjs-tunnel-pool/health')",
});
