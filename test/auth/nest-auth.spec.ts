// Authentication through Nest: `auth` reaches the pools through forRootAsync
// like any other option, on every transport; a wrong key shows up as a
// refusal in the logs and the stats, and no key ever reaches a log line,
// the stats or an error.
import { describe, expect, it } from '@jest/globals';
import { Injectable, Module } from '@nestjs/common';
import { inspect } from 'node:util';
import { ClientPoolService, PoolModule, ServerPoolService, streamIdentity } from '../../lib/index.js';
import { CapturingLogger, compile, errorOf, expectEcho, fastClient, loopback } from '../nest/support/nest.js';
import { KIND_NAMES, clientConfig, serverConfig } from '../support/kinds.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

const KEY = 'nest-auth-Key-7hQ2mXv9Lr4Tz8Wc';
const OTHER_KEY = 'nest-auth-Other-3kP8sZq1Vn6Yb2Rf';

/** Where the keys come from, as an application's config service would hand them over. */
@Injectable()
class SecretsService {
  readonly server = [{ id: 'current', key: KEY }];
  client = KEY;
}

@Module({ providers: [SecretsService], exports: [SecretsService] })
class SecretsModule {}

describe.each(KIND_NAMES)('auth through PoolModule.forRootAsync (%s)', (kind) => {
  async function start(clientKey: string) {
    const link = loopback();
    const logger = new CapturingLogger();
    const moduleRef = await compile(
      {
        imports: [
          PoolModule.forRootAsync({
            imports: [SecretsModule],
            inject: [SecretsService],
            useFactory: (secrets: SecretsService) => {
              secrets.client = clientKey;
              return {
                server: serverConfig(kind, { auth: { key: secrets.server } }),
                client: { ...clientConfig(kind, { auth: { key: secrets.client } }), ...fastClient(link.addressResolver, 2) },
              };
            },
          }),
        ],
      },
      logger,
    );
    link.bind(() => moduleRef.get(ServerPoolService));
    scope.defer(() => moduleRef.close());
    await moduleRef.init();
    return { moduleRef, logger, client: moduleRef.get(ClientPoolService), server: moduleRef.get(ServerPoolService) };
  }

  /** Everything an operator could see: log lines, stats, and the inspected services. */
  function visible(app: Awaited<ReturnType<typeof start>>, extra: unknown[] = []): string {
    return [
      ...app.logger.entries.map((entry) => entry.message),
      JSON.stringify(app.client.stats),
      JSON.stringify(app.server.stats),
      inspect(app.client, { depth: 6 }),
      inspect(app.server, { depth: 6 }),
      ...extra.map((value) => (value instanceof Error ? `${value.message} ${inspect(value, { depth: 6 })}` : inspect(value, { depth: 6 }))),
    ].join('\n');
  }

  it('the right key: streams pair, each carries the key id on the server, no key is visible anywhere', async () => {
    const app = await start(KEY);
    await app.client.waitForActive(1, 10_000);
    const [id, serverSide] = await app.server.incomingGet(10_000);
    const clientSide = await app.client.outgoingGet(id, 10_000);
    scope.defer(() => {
      clientSide.destroy();
      serverSide.destroy();
    });
    await expectEcho(clientSide, serverSide);
    expect(streamIdentity(serverSide)).toEqual({ kind: 'key', id: 'current' });
    expect(app.server.pool.stats.clients?.['key:current']?.taken).toBe(1);
    const text = visible(app);
    expect(text).not.toContain(KEY);
  }, 30_000);

  it('a wrong key: refused and counted `auth`, logged as POOL_ERR_AUTH_REFUSED, no stream, no key in sight', async () => {
    const app = await start(OTHER_KEY);
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 10_000;
      const poll = (): void => {
        if ((app.server.pool.stats.refusals.auth ?? 0) >= 1 && app.logger.messages('warn').some((line) => /POOL_ERR_AUTH_REFUSED/.test(line))) resolve();
        else if (Date.now() > deadline) reject(new Error(`no auth refusal within 10 s: ${JSON.stringify(app.server.pool.stats.refusals)} ${JSON.stringify(app.logger.entries)}`));
        else setTimeout(poll, 20);
      };
      poll();
    });
    expect(app.client.stats.active).toBe(0);
    expect(app.server.stats.active).toBe(0);
    const error = await errorOf(() => app.server.incomingGet(200));
    expect(error.code).toBe('POOL_ERR_TIMEOUT');
    const text = visible(app, [error]);
    expect(text).not.toContain(KEY);
    expect(text).not.toContain(OTHER_KEY);
  }, 30_000);
});
