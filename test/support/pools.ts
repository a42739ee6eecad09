import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';

export interface PoolPair {
  server: ServerPool;
  client: ClientPool;
  port: number;
  close(): Promise<void>;
}

/** Options of one transport, without the `transport` key. */
export type ServerConfigOf<T extends string> = Omit<Extract<ServerPoolConfig, { transport?: T }>, 'transport'>;
export type ClientConfigOf<T extends string> = Omit<Extract<ClientPoolConfig, { transport?: T }>, 'transport'>;

/**
 * A started server pool on 127.0.0.1:0 and a started client pool dialing it
 * (through the port `via` returns, e.g. a test proxy, when given).
 */
export async function startPair(
  server: ServerPoolConfig = {},
  client: Partial<ClientPoolConfig> = {},
  via?: (port: number) => number,
): Promise<PoolPair> {
  const serverPool = createServerPool({ host: '127.0.0.1', port: 0, ...server } as ServerPoolConfig);
  await serverPool.start();
  const port = serverPool.address()!.port;
  const clientPool = createClientPool({
    ...(server.transport ? { transport: server.transport } : {}),
    address: `127.0.0.1:${via ? via(port) : port}`,
    minIvl: 50,
    maxIvl: 50,
    ...client,
  } as ClientPoolConfig);
  clientPool.start();
  return {
    server: serverPool,
    client: clientPool,
    port,
    // Both at once (the client first, so it stops dialing before the
    // listener goes): each close() waits for its own taken streams, and a
    // client waiting for its streams must not keep the server listening.
    close: async () => {
      await Promise.all([clientPool.close(), serverPool.close()]);
    },
  };
}
