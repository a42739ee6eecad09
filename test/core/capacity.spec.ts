import { afterEach, describe, expect, it } from '@jest/globals';
import { ClientPool } from '../../lib/core/client-pool.js';
import { randomId } from '../../lib/core/ids.js';
import { ManualTransport } from '../support/manual-transport.js';
import { eventually } from '../support/net.js';

let pool: ClientPool | undefined;
afterEach(async () => {
  await pool?.close(0);
  pool = undefined;
});

/** What the README says under Stats: `active` may exceed `capacity`, never `maxCap`. */
describe('client capacity against idle streams', () => {
  it('an idle, full pool shrinks its capacity but keeps its idle streams: active > capacity, active <= maxCap', async () => {
    const transport = new ManualTransport();
    pool = new ClientPool(transport, { minCap: 1, maxCap: 4, minIvl: 5, maxIvl: 5 });
    pool.start();
    const serve = (take: boolean): void => {
      while (transport.pending.length > 0) {
        const id = randomId();
        transport.complete(id);
        if (take) void pool!.outgoingGet(id, 1000).then((stream) => stream.destroy());
      }
    };
    // Busy: every stream is taken as it comes, so the capacity grows by one per round up to maxCap.
    await eventually(() => (serve(true), pool!.capacity === 4), 10_000, 'capacity at maxCap');
    // Quiet: nothing is taken any more; the pool fills to its capacity.
    await eventually(() => (serve(false), pool!.active === 4), 10_000, 'four idle streams');
    // Nothing is taken: rounds create nothing, the success ratio is 0, the capacity shrinks to minCap...
    await eventually(() => pool!.capacity === 1, 10_000, 'capacity back at minCap');
    // ...while the four idle streams stay, and no dial is made for them.
    expect(pool.active).toBe(4);
    expect(pool.active).toBeGreaterThan(pool.capacity);
    expect(pool.active).toBeLessThanOrEqual(pool.options.maxCap);
    expect(transport.pending).toHaveLength(0);
    expect(pool.stats.drops).toEqual({});
  });
});
