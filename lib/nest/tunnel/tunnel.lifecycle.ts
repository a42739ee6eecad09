import { Logger, type OnApplicationBootstrap, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { InvalidOptionsError } from '../../core/errors.js';
import type { ClientPoolService } from '../client-pool.service.js';
import { getClientPoolToken, getServerPoolToken } from '../pool.constants.js';
import type { PoolShutdownGroup } from '../pool-shutdown-group.js';
import type { ServerPoolService } from '../server-pool.service.js';
import type { TunnelClientService } from './tunnel-client.service.js';
import type { TunnelRegistration } from './tunnel-registration.js';
import type { TunnelServerService } from './tunnel-server.service.js';
import { describe } from './tunnel-service.util.js';

/** The guard on a close fires this long after the ends' own close timeouts. */
const CLOSE_GUARD_MARGIN_MS = 500;

/**
 * Builds a registration's ends over its PoolModule registration at init,
 * starts them once the application has bootstrapped (the pools started in
 * their own init, before), and drains them on shutdown before any pool of
 * the application closes (it joins the pools' shutdown group as a 'before'
 * member).
 */
export class TunnelLifecycle implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('TunnelModule');

  constructor(
    private readonly registration: TunnelRegistration,
    private readonly server: TunnelServerService,
    private readonly client: TunnelClientService,
    private readonly moduleRef: ModuleRef,
    private readonly group: PoolShutdownGroup,
  ) {
    group.join(this, 'before');
  }

  /** Finds the pools by their PoolModule tokens and builds the ends over them. A missing pool fails the start-up, naming the fix. */
  onModuleInit(): void {
    const { pool } = this.registration;
    if (this.registration.server) {
      const service = this.poolService<ServerPoolService>(getServerPoolToken(pool), 'server');
      this.server.attach(service.pool);
    }
    if (this.registration.client) {
      const service = this.poolService<ClientPoolService>(getClientPoolToken(pool), 'client');
      this.client.attach(service.pool);
    }
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.registration.autoStart) return;
    if (this.server.configured) {
      await this.server.start();
      this.logger.log(`tunnel server '${this.registration.name}' is claiming control channels on pool '${this.registration.pool}'`);
    }
    if (this.client.configured) this.client.start();
  }

  onModuleDestroy(): Promise<void> {
    return this.group.close();
  }

  /** Closes both ends in parallel (called once, by the group, before the pools). Never throws. */
  async closeOwn(): Promise<void> {
    const bound = Math.max(this.registration.server?.closeTimeout ?? 5000, this.registration.client?.closeTimeout ?? 5000) * 2 + CLOSE_GUARD_MARGIN_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      const closing = Promise.allSettled([this.client.close(), this.server.close()]);
      const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), bound)));
      if ((await Promise.race([closing, late])) === 'timeout') {
        this.logger.warn(`tunnel '${this.registration.name}' did not close within ${bound} ms; the pools close now`);
      }
    } catch (error) {
      this.logger.error(`tunnel '${this.registration.name}' failed to close: ${describe(error)}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private poolService<T extends ClientPoolService | ServerPoolService>(token: string, role: 'client' | 'server'): T {
    const { name, pool } = this.registration;
    let service: T | undefined;
    try {
      service = this.moduleRef.get<T>(token, { strict: false });
    } catch {
      service = undefined;
    }
    const fix = `register it with PoolModule.forRoot({ ${pool === 'default' ? '' : `name: '${pool}', `}${role}: { ... } }) in the application, or set pool to the name of one`;
    if (!service) throw new InvalidOptionsError('pool', `the tunnel ${role} '${name}' runs over PoolModule registration '${pool}', which is not registered: ${fix}`);
    if (!service.configured) throw new InvalidOptionsError('pool', `the tunnel ${role} '${name}' needs a ${role} pool, and PoolModule registration '${pool}' has none: add ${role} to its options`);
    return service;
  }
}
