import { afterEach } from '@jest/globals';
import type { Duplex } from 'node:stream';
import type { PoolPair } from './pools.js';

export interface TestScope {
  /** Runs `cleanup` after the test, in reverse order of registration. */
  defer(cleanup: () => Promise<void> | void): void;
  /** Destroys `stream` after the test, before any other cleanup runs; returns it. */
  track<T extends Duplex>(stream: T): T;
  /** Starts something with a `close()` (a pool pair) that is closed after the test. */
  pair<A extends unknown[], P extends { close(): Promise<void> }>(start: (...args: A) => Promise<P>, ...args: A): Promise<P>;
  /** Takes `[id, stream]` on the server side (of client `of`, an identity label, when given), then the matching stream on the client side; both tracked. */
  handOff(p: PoolPair, of?: string): Promise<{ id: string; server: Duplex; client: Duplex }>;
}

/**
 * Per-test cleanup for specs that open real sockets: everything registered
 * is closed after each test. Tracked streams are destroyed first: a pool's
 * close() waits (up to its close timeout) for the streams it handed out, so
 * closing pools before their taken streams would only make tests slow.
 */
export function useTestScope(): TestScope {
  const cleanups: Array<() => Promise<void> | void> = [];
  const streams = new Set<Duplex>();
  afterEach(async () => {
    for (const stream of [...streams]) stream.destroy();
    streams.clear();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const scope: TestScope = {
    defer: (cleanup) => {
      cleanups.push(cleanup);
    },
    track: (stream) => {
      streams.add(stream);
      return stream;
    },
    pair: async (start, ...args) => {
      const started = await start(...args);
      cleanups.push(() => started.close());
      return started;
    },
    handOff: async (p, of) => {
      const [id, server] = await p.server.incomingGet(of === undefined ? 5000 : { client: of, timeout: 5000 });
      const client = await p.client.outgoingGet(id, 5000);
      return { id, server: scope.track(server), client: scope.track(client) };
    },
  };
  return scope;
}
