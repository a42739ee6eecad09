import { describe, expect, it, jest } from '@jest/globals';
import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { CHANNELS } from '../../lib/diagnostics/channels.js';
import { startKind } from '../support/kinds.js';
import { eventually } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

describe('pool events cost nothing while nobody subscribes', () => {
  it('a hand-off reads no clock without a subscriber, and does once one listens', async () => {
    const p = await scope.pair(startKind, 'tcp', { name: 'quiet' }, { name: 'quiet', minCap: 4, maxCap: 4 });
    await p.client.waitForActive(4, 10_000);
    await eventually(() => p.server.active >= 4, 10_000, 'four idle server streams');
    const clock = jest.spyOn(performance, 'now');
    scope.defer(() => clock.mockRestore());
    const takePair = async (): Promise<number> => {
      clock.mockClear();
      const [id, server] = await p.server.incomingGet(5000);
      const client = await p.client.outgoingGet(id, 5000);
      const reads = clock.mock.calls.length;
      scope.track(server);
      scope.track(client);
      return reads;
    };

    expect(await takePair()).toBe(0);

    const seen: unknown[] = [];
    const subscriber = (message: unknown): void => void seen.push(message);
    diagnosticsChannel.subscribe(CHANNELS.handOff, subscriber);
    scope.defer(() => void diagnosticsChannel.unsubscribe(CHANNELS.handOff, subscriber));
    expect(await takePair()).toBeGreaterThan(0);
    expect(seen).toHaveLength(2);

    diagnosticsChannel.unsubscribe(CHANNELS.handOff, subscriber);
    expect(await takePair()).toBe(0);
    expect(seen).toHaveLength(2);
  });
});
