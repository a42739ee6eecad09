import { describe, expect, it } from '@jest/globals';
import { Controller, Get, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { PoolModule } from '../../lib/index.js';
import { PoolHealthIndicator, PoolHealthModule } from '../../lib/nest/health/index.js';
import { useTestScope } from '../support/scope.js';
import { CapturingLogger, compile, errorOf } from './support/nest.js';

const scope = useTestScope();

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly pools: PoolHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.pools.isHealthy('tunnel')]);
  }
}

/** Compiles and, when that works, closes the module after the test. */
async function tryCompile(imports: Parameters<typeof compile>[0]): Promise<void> {
  const moduleRef = await compile(imports, new CapturingLogger());
  scope.defer(() => moduleRef.close());
  await moduleRef.init();
}

describe('health set-up mistakes get an error that names the fix', () => {
  it('a controller injecting PoolHealthIndicator without PoolHealthModule: the DI error says to import PoolHealthModule', async () => {
    @Module({ imports: [TerminusModule], controllers: [HealthController] })
    class HealthModule {}
    const error = await errorOf(() => tryCompile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), HealthModule] }));
    expect(error.message).toContain("import PoolHealthModule from 'nestjs-tunnel-pool/health'");
    expect(error.message).toContain('HealthModule');
  });

  it('PoolHealthIndicator listed in providers without Terminus: POOL_ERR_MISSING_MODULE naming PoolHealthModule', async () => {
    @Controller('health')
    class PlainController {
      constructor(private readonly pools: PoolHealthIndicator) {}
    }
    @Module({ controllers: [PlainController], providers: [PoolHealthIndicator] })
    class HealthModule {}
    const error = await errorOf(() => tryCompile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), HealthModule] }));
    expect(error).toMatchObject({ code: 'POOL_ERR_MISSING_MODULE' });
    expect(error.message).toContain('import PoolHealthModule');
  });

  it('importing PoolHealthModule alone is enough: it brings HealthCheckService (TerminusModule)', async () => {
    @Module({ imports: [PoolHealthModule], controllers: [HealthController] })
    class HealthModule {}
    const moduleRef = await compile({ imports: [PoolModule.forRoot({ server: { port: 0 } }), HealthModule] }, new CapturingLogger());
    scope.defer(() => moduleRef.close());
    await moduleRef.init();
    const result = await moduleRef.get(HealthController).check();
    // A server with no client yet: ready, nothing idle.
    expect(result.details).toMatchObject({ tunnel: { status: 'degraded' } });
  });
});
