import { describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { ClientPoolService, InjectServerPool, PoolModule, ServerPoolService } from '../../lib/index.js';
import { useTestScope } from '../support/scope.js';
import { compile } from './support/nest.js';

const scope = useTestScope();

@Injectable()
class UsesDefaultPool {
  constructor(readonly pool: ServerPoolService) {}
}

@Injectable()
class UsesNamedPool {
  constructor(@InjectServerPool('edge') readonly pool: ServerPoolService) {}
}

/** The README's two ways for feature modules to reach a pool registered once. */
describe('feature modules reach a pool registered once', () => {
  it('isGlobal: true — any module injects it without importing anything', async () => {
    @Module({ providers: [UsesDefaultPool] })
    class FeatureModule {}
    const moduleRef = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 }, isGlobal: true }), FeatureModule] });
    scope.defer(() => moduleRef.close());
    await moduleRef.init();
    expect(moduleRef.get(UsesDefaultPool).pool.ready).toBe(true);
  });

  it('a module of your own that imports the registration and exports PoolModule', async () => {
    @Module({
      imports: [PoolModule.forRoot({ server: { port: 0 } }), PoolModule.forRoot({ name: 'edge', server: { port: 0 } })],
      exports: [PoolModule],
    })
    class TunnelPoolsModule {}
    @Module({ imports: [TunnelPoolsModule], providers: [UsesDefaultPool, UsesNamedPool] })
    class FeatureModule {}
    @Module({ imports: [TunnelPoolsModule], providers: [{ provide: 'other', useFactory: (pool: ClientPoolService) => pool, inject: [ClientPoolService] }] })
    class OtherFeatureModule {}
    const moduleRef = await compile({ imports: [FeatureModule, OtherFeatureModule] });
    scope.defer(() => moduleRef.close());
    await moduleRef.init();
    const [first, named] = [moduleRef.get(UsesDefaultPool).pool, moduleRef.get(UsesNamedPool).pool];
    expect([first.ready, named.ready]).toEqual([true, true]);
    expect(first.address()!.port).not.toBe(named.address()!.port);
  });
});
