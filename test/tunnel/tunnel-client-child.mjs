// A tunnel client in its own process, for the killed-client spec: built lib from dist/.
// argv[2]: JSON { pool: ClientPoolConfig, routes: RouteOptions[] }. Prints "up" once its routes are accepted.
import { createClientPool } from '../../dist/lib/pool-factory.js';
import { TunnelClient } from '../../dist/lib/tunnel/tunnel-client.js';

const { pool: poolConfig, routes } = JSON.parse(process.argv[2]);
const client = new TunnelClient({ pool: createClientPool(poolConfig), routes });
const answers = await client.start();
process.stdout.write(answers.every((a) => a.accepted) ? 'up\n' : `refused ${JSON.stringify(answers)}\n`);
