import { describe, expect, it } from '@jest/globals';
import type { Duplex } from 'node:stream';
import { getClientPoolToken, getServerPoolToken, PoolModule, type ClientPoolService, type ServerPoolService } from '../../lib/index.js';
import { useTestScope } from '../support/scope.js';
import { compile, fastClient, loopback } from './support/nest.js';

const scope = useTestScope();

describe('several registrations close together', () => {
  it('Nest destroys modules one by one, but every registration starts closing at once (one shutdownTimeout, not N)', async () => {
    const names = ['a', 'b', 'c'];
    const loops = names.map(() => loopback());
    const moduleRef = await compile({
      imports: names.map((name, i) =>
        PoolModule.forRoot({ name, server: { port: 0 }, client: fastClient(loops[i]!.addressResolver, 1), shutdownTimeout: 60_000 }),
      ),
    });
    scope.defer(() => moduleRef.close());
    names.forEach((name, i) => loops[i]!.bind(() => moduleRef.get(getServerPoolToken(name))));
    await moduleRef.init();

    // Each registration hands out a pair the application keeps open: each
    // close then waits (up to its shutdownTimeout) for those streams.
    const held: Duplex[][] = [];
    for (const name of names) {
      const server = moduleRef.get<ServerPoolService>(getServerPoolToken(name));
      const client = moduleRef.get<ClientPoolService>(getClientPoolToken(name));
      const [id, serverSide] = await server.incomingGet(5000);
      const clientSide = await client.outgoingGet(id, 5000);
      held.push([serverSide, clientSide]);
    }
    scope.defer(() => held.flat().forEach((stream) => stream.destroy()));
    const states = () => names.map((name) => moduleRef.get<ServerPoolService>(getServerPoolToken(name)).stats.state);

    let closed = false;
    const shutdown = moduleRef.close().then(() => (closed = true));
    // The first registration Nest destroys waits for its open streams; the
    // others must already be closing, not waiting their turn.
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    expect(states()).toEqual(['closing', 'closing', 'closing']);

    for (const pair of held) for (const stream of pair) stream.destroy();
    await shutdown;
    expect(states()).toEqual(['closed', 'closed', 'closed']);
  });
});
