import { Inject, Injectable, Module } from '@nestjs/common';
import { ClientPoolService, InjectClientPool, InjectServerPool, ServerPoolService, type PoolModuleOptions, type PoolOptionsFactory } from '../../../lib/index.js';

/** The settings a config module hands to the pool options, one async style per fixture below. */
export const POOL_SETTINGS = 'TEST_POOL_SETTINGS';
export interface PoolSettings {
  serverMaxCap: number;
}

@Module({
  providers: [{ provide: POOL_SETTINGS, useValue: { serverMaxCap: 7 } satisfies PoolSettings }],
  exports: [POOL_SETTINGS],
})
export class ConfigModule {}

export function optionsFrom(settings: PoolSettings): PoolModuleOptions {
  return { server: { port: 0, maxCap: settings.serverMaxCap } };
}

/** For useClass (built inside the pool module) and useExisting (taken from PoolConfigModule). */
@Injectable()
export class PoolConfigService implements PoolOptionsFactory {
  static created = 0;
  constructor(@Inject(POOL_SETTINGS) private readonly settings: PoolSettings) {
    PoolConfigService.created++;
  }
  async createPoolOptions(): Promise<PoolModuleOptions> {
    return optionsFrom(this.settings);
  }
}

@Module({ imports: [ConfigModule], providers: [PoolConfigService], exports: [PoolConfigService] })
export class PoolConfigModule {}

/** A consumer that injects the default pool by class and by token decorator. */
@Injectable()
export class DefaultPoolConsumer {
  constructor(
    readonly client: ClientPoolService,
    readonly server: ServerPoolService,
    @InjectClientPool() readonly clientByToken: ClientPoolService,
    @InjectServerPool() readonly serverByToken: ServerPoolService,
  ) {}
}

/** A feature module that does not import PoolModule: it sees the pools only when they are global. */
@Module({ providers: [DefaultPoolConsumer], exports: [DefaultPoolConsumer] })
export class FeatureModule {}

/** Injects two named pools. */
@Injectable()
export class NamedPoolConsumer {
  constructor(
    @InjectClientPool('a') readonly clientA: ClientPoolService,
    @InjectServerPool('a') readonly serverA: ServerPoolService,
    @InjectServerPool('b') readonly serverB: ServerPoolService,
    @InjectClientPool('b') readonly clientB: ClientPoolService,
  ) {}
}
