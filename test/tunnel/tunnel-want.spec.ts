/**
 * Demand from the server side (issue 18): public connections that find no
 * ready stream of their client make the server send WANT, and the client's
 * pool grows to cover them and dials at once, rather than refilling one
 * stream per take. Real tcp pools with a key on 127.0.0.1.
 */
import { expect, it, jest } from '@jest/globals';
import net from 'node:net';
import { eventually, freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { TunnelClient } from '../../lib/tunnel/tunnel-client.js';
import { KEYS, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(30_000);
const scope = useTestScope();

it('a burst of public connections with no ready stream makes the client pool grow to cover them (WANT)', async () => {
  const [publicPort] = await freePorts(1);
  const echo = net.createServer((socket) => socket.on('error', () => undefined).pipe(socket));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => echo.close(() => resolve())));
  const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }]);
  // Capacity 1 to start with (room for 8), a background round a minute away: anything more is dialed on demand.
  const pool = createClientPool({ address: `127.0.0.1:${server.pool.address()!.port}`, auth: { key: KEYS['site-a'] }, minCap: 1, maxCap: 8, minIvl: 60_000, maxIvl: 60_000, closeTimeout: 2000 });
  scope.defer(() => pool.close());
  const client = new TunnelClient({ pool, routes: [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${(echo.address() as net.AddressInfo).port}` }], closeTimeout: 2000 });
  scope.defer(() => client.close());
  await client.start();
  const before = pool.capacity;

  // Five public connections at once, each held open after its echo.
  const sockets = Array.from({ length: 5 }, () => scope.track(net.connect(publicPort!, '127.0.0.1')));
  for (const socket of sockets) socket.on('error', () => undefined);
  await Promise.all(sockets.map(async (socket, i) => {
    socket.write(`hello ${i}`);
    expect((await readBytes(socket, 7, 10_000)).toString()).toBe(`hello ${i}`);
  }));
  await eventually(() => server.stats.routes['echo']?.open === 5, 5000, 'five connections open');
  // The server asked for streams: the pool's capacity grew past what taking one at a time needs.
  expect(pool.capacity).toBeGreaterThan(before);
  expect(pool.capacity).toBeGreaterThanOrEqual(3);
});
