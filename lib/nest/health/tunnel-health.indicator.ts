import { Injectable, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import { OptionReader } from '../../core/validate.js';
import { DEFAULT_POOL_NAME } from '../pool.constants.js';
import type { TunnelClientService } from '../tunnel/tunnel-client.service.js';
import type { TunnelServerService } from '../tunnel/tunnel-server.service.js';
import { getTunnelClientToken, getTunnelServerToken } from '../tunnel/tunnel.constants.js';
import { requireTerminus } from './require-terminus.js';

export type TunnelSide = 'client' | 'server';

export interface TunnelHealthCheckOptions {
  /** The tunnel's name (its TunnelModule registration); the default tunnel when omitted. */
  name?: string;
  /** Check one end only; by default every end the registration configures. */
  side?: TunnelSide;
}

interface Verdict {
  down: string[];
  details: Record<string, unknown>;
}

/**
 * A Terminus indicator for the tunnel: `down` (HTTP 503) whenever the tunnel
 * cannot carry a connection.
 * - client end: its control channel is not up (not started, refused, the
 *   server gone), or its pool has no ready stream while its dials keep
 *   failing (the server speaks another transport or TLS mode, a wrong key);
 * - server end: no client has a control channel, a client that had one lost
 *   it, or a client with a control channel has no ready pooled stream.
 * The details say per end what it sees (control channel, ready streams,
 * routes, the pool's failures by code), with a `message` when down; never a
 * key nor a stream ID. It never throws: a failure to check is `down`.
 */
@Injectable()
export class TunnelHealthIndicator {
  private readonly healthIndicatorService: HealthIndicatorService;

  constructor(
    private readonly moduleRef: ModuleRef,
    @Optional() healthIndicatorService?: HealthIndicatorService,
  ) {
    this.healthIndicatorService = requireTerminus('TunnelHealthIndicator', healthIndicatorService);
  }

  async isHealthy<const Key extends string>(key: Key, options: TunnelHealthCheckOptions = {}): Promise<HealthIndicatorResult<Key>> {
    const indicator = this.healthIndicatorService.check(key);
    try {
      const { name, side } = readOptions(options);
      const services = this.resolve(name);
      if (!services) return indicator.down({ message: `no tunnel '${name}' is registered: import TunnelModule.forRoot({ ${name === DEFAULT_POOL_NAME ? '' : `name: '${name}', `}... }) in the application` });
      const sides: TunnelSide[] = side ? [side] : (['client', 'server'] as const).filter((s) => services[s].configured);
      const down: string[] = [];
      const details: Record<string, unknown> = {};
      for (const s of sides) {
        const verdict = s === 'client' ? judgeClient(services.client) : judgeServer(services.server);
        down.push(...verdict.down);
        details[s] = verdict.details;
      }
      if (down.length === 0) return indicator.up(details);
      return indicator.down({ ...details, message: down.join('; ') });
    } catch (error) {
      return indicator.down({ message: error instanceof Error ? error.message : String(error) });
    }
  }

  private resolve(name: string): { client: TunnelClientService; server: TunnelServerService } | undefined {
    try {
      return {
        client: this.moduleRef.get<TunnelClientService>(getTunnelClientToken(name), { strict: false }),
        server: this.moduleRef.get<TunnelServerService>(getTunnelServerToken(name), { strict: false }),
      };
    } catch {
      return undefined;
    }
  }
}

function readOptions(options: TunnelHealthCheckOptions): { name: string; side?: TunnelSide } {
  const read = new OptionReader(options as Record<string, unknown>, 'isHealthy');
  const name = read.string('name') ?? DEFAULT_POOL_NAME;
  const side = read.raw('side') === undefined ? undefined : read.oneOf<TunnelSide>('side', ['client', 'server'], 'client');
  read.rejectUnknown();
  return { name, ...(side ? { side } : {}) };
}

function judgeClient(service: TunnelClientService): Verdict {
  if (!service.configured) return { down: [`no tunnel client is configured for tunnel '${service.name}'`], details: { configured: false } };
  let pool;
  try {
    pool = service.tunnel.pool.stats;
  } catch (error) {
    return { down: [error instanceof Error ? error.message : String(error)], details: { control: 'down' } };
  }
  const down: string[] = [];
  const failing = pool.active === 0 && pool.failedRounds > 0;
  const failures = Object.entries(pool.failures).map(([code, count]) => `${code} ×${count}`).join(', ');
  if (failing) down.push(`the tunnel client's pool has no ready stream and its last ${pool.failedRounds} dial round${pool.failedRounds === 1 ? '' : 's'} failed (${failures || 'no dial succeeded'})`);
  if (!service.connected) {
    const why = service.lastError ? `: ${service.lastError.message}` : '';
    down.push(`the tunnel client has no control channel${why}`);
  }
  return {
    down,
    details: {
      control: service.connected ? 'up' : 'down',
      ready: pool.active,
      failedRounds: pool.failedRounds,
      failures: pool.failures,
      routes: service.routeStates.map((r) => ({ name: r.name, status: r.status, ...(r.port ? { port: r.port } : {}) })),
    },
  };
}

function judgeServer(service: TunnelServerService): Verdict {
  if (!service.configured) return { down: [`no tunnel server is configured for tunnel '${service.name}'`], details: { configured: false } };
  let tunnel;
  try {
    tunnel = service.tunnel;
  } catch (error) {
    return { down: [error instanceof Error ? error.message : String(error)], details: {} };
  }
  const pool = tunnel.pool.stats;
  const down: string[] = [];
  const clients: Record<string, unknown> = {};
  for (const [client, up] of service.knownClients) {
    // Without authentication there is one anonymous client, and the pool's idle streams are its.
    const ready = client === 'anonymous' ? pool.active : (pool.clients?.[client]?.idle ?? 0);
    const routes = service.routesOf(client).map((r) => ({ name: r.name, port: r.port }));
    clients[client] = { control: up ? 'up' : 'down', ready, routes };
    if (!up) down.push(`client ${client} has no control channel`);
    else if (ready === 0) down.push(`client ${client} has no ready pooled stream`);
  }
  if (service.knownClients.size === 0) down.push('no tunnel client has a control channel');
  return { down, details: { ready: pool.ready, clients, refusals: pool.refusals } };
}

// As PoolHealthIndicator: Nest's "can't resolve dependencies" error then names the module to import.
Object.defineProperty(TunnelHealthIndicator, 'name', {
  value: "TunnelHealthIndicator (import PoolHealthModule from 'nestjs-tunnel-pool/health')",
});
