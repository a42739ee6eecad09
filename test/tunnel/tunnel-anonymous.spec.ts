/**
 * A tunnel over a pool pair without authentication (one anonymous client):
 * the control channel still comes up, and a reverse route carries an HTTP
 * request (its streams have no identity, so the server takes them with no
 * client filter).
 */
import { expect, it, jest } from '@jest/globals';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { TunnelClient } from '../../lib/tunnel/tunnel-client.js';
import { TunnelServer } from '../../lib/tunnel/tunnel-server.js';
import { KIND_NAMES, kindSpec } from '../support/kinds.js';
import { freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { get, httpTarget } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

it('an anonymous client\'s reverse route carries an HTTP request', async () => {
  const [publicPort] = await freePorts(1);
  const target = await httpTarget(scope, 'anonymous');
  const serverPool = createServerPool({ transport: 'tcp', host: '127.0.0.1', port: 0, closeTimeout: 2000 } as ServerPoolConfig);
  const server = new TunnelServer({ pool: serverPool, allow: { rules: [{ clients: 'anonymous', names: 'web', directions: ['reverse'], ports: [publicPort!] }] }, openTimeout: 3000 });
  scope.defer(() => serverPool.close());
  scope.defer(() => server.close());
  await server.start();
  const clientPool = createClientPool({ transport: 'tcp', address: `127.0.0.1:${serverPool.address()!.port}`, minCap: 2, maxCap: 4, minIvl: 50, maxIvl: 100, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => clientPool.close());
  const client = new TunnelClient({ pool: clientPool, routes: [{ name: 'web', serverPort: publicPort, target: `127.0.0.1:${target}` }] });
  scope.defer(() => client.close());
  const routes = await client.start();
  expect(routes.map((r) => r.status)).toEqual(['accepted']);
  expect(server.clients).toEqual(['anonymous']);
  expect((await get(publicPort!, '/anon')).body).toBe('anonymous GET /anon');
});

it.each(KIND_NAMES)('an anonymous client\'s forward route over %s: its stream header waits on the idle stream for the server, never dropped as unexpected bytes', async (kind) => {
  const [listenPort] = await freePorts(1);
  const target = await httpTarget(scope, `anonymous ${kind}`);
  const serverPool = createServerPool({ ...kindSpec(kind).server, host: '127.0.0.1', port: 0, closeTimeout: 2000 } as ServerPoolConfig);
  const server = new TunnelServer({ pool: serverPool, allow: { rules: [{ clients: 'anonymous', names: 'db', directions: ['forward'], targets: [`127.0.0.1:${target}`] }] }, openTimeout: 3000 });
  scope.defer(() => serverPool.close());
  scope.defer(() => server.close());
  await server.start();
  const clientPool = createClientPool({ ...kindSpec(kind).client, address: `127.0.0.1:${serverPool.address()!.port}`, minCap: 2, maxCap: 4, minIvl: 50, maxIvl: 100, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => clientPool.close());
  const client = new TunnelClient({ pool: clientPool, routes: [{ name: 'db', direction: 'forward', listen: `127.0.0.1:${listenPort}`, target: `127.0.0.1:${target}` }] });
  scope.defer(() => client.close());
  expect((await client.start()).map((r) => r.status)).toEqual(['accepted']);
  const replies = await Promise.all([get(listenPort!, '/a'), get(listenPort!, '/b'), get(listenPort!, '/c')]);
  expect(replies.map((r) => r.body)).toEqual([`anonymous ${kind} GET /a`, `anonymous ${kind} GET /b`, `anonymous ${kind} GET /c`]);
  expect(serverPool.stats.drops).toEqual({});
});
