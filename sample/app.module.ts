import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { PoolModule, TunnelModule, type ClientPoolConfig, type ServerPoolConfig, type TunnelModuleOptions } from '../lib/index.js';
import { PoolHealthModule } from '../lib/nest/health/index.js';
import { dialableHost, hasClientSide, hasServerSide, type SampleConfig } from './config.js';
import type { Endpoint } from './endpoints.js';
import { HealthController } from './health.controller.js';
import { SAMPLE_CONFIG, SAMPLE_TARGET } from './sample.constants.js';
import { TargetService, type DemoTarget } from './target.js';
import type { TunnelTlsMaterial } from './tls.js';

/** The one route of the sample: reverse, the server side's public port to the demo target next to the client side. */
export const ROUTE = 'web';

/** The pool definitions for this process's role, straight from the config. `poolAddress`: where the client pool dials, asked on every dial. */
export function poolOptions(config: SampleConfig, tls: TunnelTlsMaterial, poolAddress: () => Endpoint): { client?: ClientPoolConfig; server?: ServerPoolConfig } {
  // TUNNEL_TRANSPORT goes through untouched: the library validates it (naming
  // the option), and a transport it adds later needs no change here.
  const transport = config.transport as ServerPoolConfig['transport'];
  const pools: { client?: ClientPoolConfig; server?: ServerPoolConfig } = {};
  // Every pooled connection proves the shared key (docs/extensions/auth.md), the tunnel's control stream included.
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
      // In `both` on port 0 it returns the port the server pool really bound.
      addressResolver: poolAddress,
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
 * The tunnel over those pools: the server side opens the route on the public
 * port (its allowlist permits that one port, or any port from 1024 with
 * PUBLIC_PORT=0); the client side announces it and forwards each connection
 * to the demo target with a PROXY v1 header, so the target sees the real client.
 */
export function tunnelOptions(config: SampleConfig, publicPort: number, target: Endpoint | undefined): TunnelModuleOptions {
  const options: TunnelModuleOptions = {};
  if (hasServerSide(config.role)) {
    options.server = {
      host: config.host,
      allow: { rules: [{ names: ROUTE, directions: ['reverse'], ports: [publicPort === 0 ? '1024-65535' : publicPort] }] },
      openTimeout: config.handoffTimeout,
    };
  }
  if (target) {
    options.client = {
      routes: [{ name: ROUTE, serverPort: publicPort, target, proxyProtocol: 'v1' }],
      openTimeout: config.handoffTimeout,
      reconnect: { minDelay: config.reconnectDelay, maxDelay: Math.max(10_000, config.reconnectDelay) },
    };
  }
  return options;
}

/**
 * One module, composed by role: the pools, the tunnel over them, Terminus
 * with the pool and tunnel indicators, and (client side) the demo target.
 */
@Module({})
export class AppModule {
  static register(config: SampleConfig, tls: TunnelTlsMaterial, wiring: { poolAddress: () => Endpoint; publicPort: number; target?: DemoTarget }): DynamicModule {
    const providers: Provider[] = [{ provide: SAMPLE_CONFIG, useValue: config }];
    if (wiring.target) providers.push({ provide: SAMPLE_TARGET, useValue: wiring.target }, TargetService);
    const target = wiring.target ? { host: dialableHost(config.host), port: wiring.target.port } : undefined;
    return {
      module: AppModule,
      imports: [
        PoolModule.forRoot(poolOptions(config, tls, wiring.poolAddress)),
        TunnelModule.forRoot(tunnelOptions(config, wiring.publicPort, target)),
        PoolHealthModule,
      ],
      controllers: [HealthController],
      providers,
    };
  }
}
