import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';

export interface PoolPair {
  server: ServerPool;
  client: ClientPool;
  port: number;
  close(): Promise<void>;
}

/** A started server pool on 127.0.0.1:0 and a started client pool dialing it. */
export async function startPair(server: ServerPoolConfig = {}, client: Omit<ClientPoolConfig, 'address'> = {}): Promise<PoolPair> {
  const serverPool = createServerPool({ host: '127.0.0.1', port: 0, ...server });
  await serverPool.start();
  const port = serverPool.address()!.port;
  const clientPool = createClientPool({ address: `127.0.0.1:${port}`, minIvl: 50, maxIvl: 50, ...client });
  clientPool.start();
  return {
    server: serverPool,
    client: clientPool,
    port,
    close: async () => {
      await clientPool.close();
      await serverPool.close();
    },
  };
}
