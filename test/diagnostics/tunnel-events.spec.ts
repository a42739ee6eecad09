/**
 * The tunnel's diagnostics_channel events over a real tunnel (tcp with a
 * key on 127.0.0.1): one `tunnel:connection:open` and one
 * `tunnel:connection:close` per tunnelled connection on each end, naming the
 * same pooled stream, with the bytes each way.
 */
import { expect, it, jest } from '@jest/globals';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { TunnelConnectionCloseMessage, TunnelConnectionOpenMessage } from '../../lib/diagnostics/channels.js';
import { eventually, freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { get, httpTarget, startTunnelClient, startTunnelServer } from '../tunnel/tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

it('a tunnelled HTTP request publishes open and close on both ends, for the same stream, with its bytes', async () => {
  const opened: TunnelConnectionOpenMessage[] = [];
  const closed: TunnelConnectionCloseMessage[] = [];
  const onOpen = (message: unknown): void => void opened.push(message as TunnelConnectionOpenMessage);
  const onClose = (message: unknown): void => void closed.push(message as TunnelConnectionCloseMessage);
  diagnosticsChannel.subscribe('nestjs-tunnel-pool:tunnel:connection:open', onOpen);
  diagnosticsChannel.subscribe('nestjs-tunnel-pool:tunnel:connection:close', onClose);
  scope.defer(() => {
    diagnosticsChannel.unsubscribe('nestjs-tunnel-pool:tunnel:connection:open', onOpen);
    diagnosticsChannel.unsubscribe('nestjs-tunnel-pool:tunnel:connection:close', onClose);
  });

  const [publicPort] = await freePorts(1);
  const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'web', directions: ['reverse'], ports: [publicPort!] }]);
  const target = await httpTarget(scope, 'events');
  const client = startTunnelClient(scope, server, 'site-a', [{ name: 'web', serverPort: publicPort, target: `127.0.0.1:${target}` }]);
  await client.start();
  expect(await get(publicPort!, '/x')).toEqual({ status: 200, body: 'events GET /x' });
  await eventually(() => closed.length === 2, 10_000, 'both ends closed');

  const ofServer = opened.find((m) => m.role === 'server')!;
  const ofClient = opened.find((m) => m.role === 'client')!;
  expect(ofServer).toMatchObject({ route: 'web', pool: server.pool.name, client: 'key:site-a', connection: 1 });
  expect(ofServer.openLatencyMs).toBeGreaterThanOrEqual(0);
  expect(ofClient).toMatchObject({ route: 'web', pool: client.pool.name, connection: 1 });
  expect(ofClient.client).toBeUndefined();
  expect(ofServer.id).toMatch(/^[0-9a-f]{8}$/);
  expect(ofClient.id).toBe(ofServer.id);

  const serverClose = closed.find((m) => m.role === 'server')!;
  const clientClose = closed.find((m) => m.role === 'client')!;
  expect(serverClose).toMatchObject({ ...ofServer });
  expect(serverClose.error).toBeUndefined();
  // The request went in and the reply came out, and both ends saw the same bytes each way.
  expect(serverClose.bytesIn).toBeGreaterThan(0);
  expect(serverClose.bytesOut).toBeGreaterThan(0);
  // In = from the public side on both ends (the client's forwarding runs target → stream, and counts it as out).
  expect(serverClose.bytesIn).not.toBe(serverClose.bytesOut);
  expect({ in: clientClose.bytesIn, out: clientClose.bytesOut }).toEqual({ in: serverClose.bytesIn, out: serverClose.bytesOut });
  expect(serverClose.durationMs).toBeGreaterThanOrEqual(0);
});
