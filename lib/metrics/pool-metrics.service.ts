import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { register as defaultRegistry, type Registry } from 'prom-client';
import { ClientPoolService } from '../nest/client-pool.service.js';
import { ServerPoolService } from '../nest/server-pool.service.js';
import { TunnelClientService } from '../nest/tunnel/tunnel-client.service.js';
import { TunnelServerService } from '../nest/tunnel/tunnel-server.service.js';
import { registerPoolMetrics, type MetricsDisposer, type StatsSource } from './pool-metrics.js';
import { registerTunnelMetrics, type TunnelStatsSource } from './tunnel-metrics.js';
import { POOL_METRICS_OPTIONS, type PoolMetricsModuleOptions } from './pool-metrics.constants.js';

/**
 * Registers the pool metrics of every pool the application's `PoolModule`
 * registrations configure, and the tunnel metrics of every `TunnelModule`
 * end, in the registry of the options (prom-client's
 * default one otherwise), from module init to module destroy. The pools are
 * found at each scrape, by the services' classes, so a registration in a
 * feature module is found too. `scrape()` gives the exposition text for a
 * controller of your own.
 */
@Injectable()
export class PoolMetricsService implements OnModuleInit, OnModuleDestroy {
  readonly registry: Registry;
  private dispose: MetricsDisposer | undefined;
  private disposeTunnels: MetricsDisposer | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    @Inject(POOL_METRICS_OPTIONS) private readonly options: PoolMetricsModuleOptions,
  ) {
    this.registry = options.registry ?? defaultRegistry;
  }

  onModuleInit(): void {
    const options = this.options.prefix === undefined ? {} : { prefix: this.options.prefix };
    this.dispose = registerPoolMetrics(this.registry, () => this.pools(), options);
    this.disposeTunnels = registerTunnelMetrics(this.registry, () => this.tunnels(), options);
  }

  onModuleDestroy(): void {
    this.dispose?.();
    this.disposeTunnels?.();
    this.dispose = undefined;
    this.disposeTunnels = undefined;
  }

  /** The registry's whole exposition (the pools' metrics and whatever else it holds) and its content type. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** The configured core pools of every registration, once each (the default pool's services are aliased by class). */
  private pools(): StatsSource[] {
    const services = new Set<ClientPoolService | ServerPoolService>();
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if ((instance instanceof ClientPoolService || instance instanceof ServerPoolService) && instance.configured) services.add(instance);
    }
    return [...services].map((service) => service.pool);
  }

  /** The built tunnel ends of every TunnelModule registration (none before the application's init). */
  private tunnels(): TunnelStatsSource[] {
    const ends = new Set<TunnelStatsSource>();
    for (const wrapper of this.discovery.getProviders()) {
      const instance: unknown = wrapper.instance;
      if (!(instance instanceof TunnelServerService || instance instanceof TunnelClientService) || !instance.configured) continue;
      try {
        ends.add(instance.tunnel);
      } catch {
        // Not built yet: the application has not initialised.
      }
    }
    return [...ends];
  }
}
