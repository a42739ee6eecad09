import { describe, expect, it } from '@jest/globals';
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { getServerPoolToken, InjectServerPool, PoolModule, SERVER_POOL, ServerPoolService } from '../../lib/index.js';
import { CapturingLogger } from './support/nest.js';

@Injectable()
class Entry {
  constructor(readonly pool: ServerPoolService) {}
  async take(): Promise<string> {
    const [id] = await this.pool.incomingGet(1000);
    return id;
  }
}

@Injectable()
class NamedEntry {
  constructor(@InjectServerPool('edge') readonly pool: ServerPoolService) {}
}

/** The application as written, with real pool registrations on a fixed port (here: one that is taken). */
function appModule(port: number): DynamicModule {
  @Module({})
  class AppModule {}
  return {
    module: AppModule,
    imports: [PoolModule.forRoot({ server: { host: '127.0.0.1', port } }), PoolModule.forRoot({ name: 'edge', server: { host: '127.0.0.1', port } })],
    providers: [Entry, NamedEntry],
  };
}

async function takenPort(): Promise<{ port: number; close(): Promise<void> }> {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  return { port: (blocker.address() as net.AddressInfo).port, close: () => new Promise<void>((resolve) => blocker.close(() => resolve())) };
}

/** What the README's Testing section says about replacing a pool in a whole application. */
describe('overriding a pool token in a testing module', () => {
  it('(control) without the override, the real pool fails to listen on the taken port', async () => {
    const blocker = await takenPort();
    const moduleRef = await Test.createTestingModule({ imports: [appModule(blocker.port)] }).setLogger(new CapturingLogger()).compile();
    await expect(moduleRef.init()).rejects.toMatchObject({ code: 'POOL_ERR_LISTEN' });
    await moduleRef.close();
    await blocker.close();
  });

  it('replaces the pool for everything that injects it, and nothing listens', async () => {
    const blocker = await takenPort();
    const fake = { incomingGet: async () => ['0badc0de', new PassThrough()] as const, close: async () => undefined };
    const logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({ imports: [appModule(blocker.port)] })
      .overrideProvider(SERVER_POOL).useValue(fake)
      .overrideProvider(getServerPoolToken('edge')).useValue(fake)
      .setLogger(logger)
      .compile();
    await moduleRef.init(); // a real pool would fail here: its port is taken

    expect(await moduleRef.get(Entry).take()).toBe('0badc0de');
    expect(moduleRef.get(NamedEntry).pool).toBe(fake);
    await moduleRef.close();
    expect(logger.messages('error')).toEqual([]);
    await blocker.close();
  });
});
