import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { PoolModule, type ClientPoolConfig, type ServerPoolConfig } from '../lib/index.js';
import { PoolHealthModule } from '../lib/nest/health/index.js';
import { hasClientSide, hasServerSide, type SampleConfig } from './config.js';
import { TunnelEndpoints } from './endpoints.js';
import { HealthController } from './health.controller.js';
import { SAMPLE_CONFIG, SAMPLE_ENDPOINTS, SAMPLE_TLS } from './sample.constants.js';
import { TargetService } from './target.js';
import type { TunnelTlsMaterial } from './tls.js';
import { TunnelEntryService } from './tunnel-entry.service.js';
import { TunnelExitService } from './tunnel-exit.service.js';

/** The pool definitions for this process's role, straight from the config. */
export function poolOptions(config: SampleConfig, tls: TunnelTlsMaterial, endpoints: TunnelEndpoints): { client?: ClientPoolConfig; server?: ServerPoolConfig } {
  // TUNNEL_TRANSPORT goes through untouched: the library validates it (naming
  // the option), and a transport it adds later needs no change here.
  const transport = config.transport as ServerPoolConfig['transport'];
  const pools: { client?: ClientPoolConfig; server?: ServerPoolConfig } = {};
  // Every pooled connection proves the shared key (docs/extensions/auth.md).
  const auth = config.auth ? { auth: { key: config.auth.key } } : {};
  if (hasServerSide(config.role)) {
    pools.server = {
      transport,
      host: config.host,
      port: config.ports.pool,
      maxCap: config.pool.serverMaxCap,
      ...(tls.server ? { tls: { key: tls.server.key, cert: tls.server.cert } } : {}),
      ...auth,
    };
  }
  if (hasClientSide(config.role)) {
    pools.client = {
      transport,
      // Asked on every dial: in `both` on port 0 it returns the port the
      // server pool really bound.
      addressResolver: () => endpoints.dial('pool'),
      tls: config.tls,
      ...(config.tls === '2' ? { hostname: tls.hostname, ...(tls.ca ? { ca: tls.ca } : {}) } : {}),
      minCap: config.pool.minCap,
      maxCap: config.pool.maxCap,
      minIvl: config.pool.minIvl,
      maxIvl: config.pool.maxIvl,
      ...auth,
    };
  }
  return pools;
}

/**
 * One module, composed by role: the pools (server side first, so it listens
 * before the client dials), Terminus with the pool indicator, and the
 * entry, exit and target services the role needs.
 */
@Module({})
export class AppModule {
  static register(config: SampleConfig, tls: TunnelTlsMaterial): DynamicModule {
    const endpoints = new TunnelEndpoints(config);
    const providers: Provider[] = [
      { provide: SAMPLE_CONFIG, useValue: config },
      { provide: SAMPLE_TLS, useValue: tls },
      { provide: SAMPLE_ENDPOINTS, useValue: endpoints },
    ];
    if (hasServerSide(config.role)) providers.push(TunnelEntryService);
    if (hasClientSide(config.role)) providers.push(TargetService, TunnelExitService);
    return {
      module: AppModule,
      imports: [PoolModule.forRoot(poolOptions(config, tls, endpoints)), TerminusModule, PoolHealthModule],
      controllers: [HealthController],
      providers,
    };
  }
}
