/**
 * The tunnel over http2 (TLS) and ws with keys, end to end on 127.0.0.1:
 * the control channel found by its preamble, an HTTP request through a
 * reverse and a forward route, a refusing target resetting the public side.
 */
import { describe, expect, it, jest } from '@jest/globals';
import net from 'node:net';
import { freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { get, httpTarget, startTunnelClient, startTunnelServer, type TunnelKind } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();
const KINDS: TunnelKind[] = ['http2', 'ws'];

describe.each(KINDS)('tunnel over %s with a key', (kind) => {
  it('reverse and forward routes carry HTTP requests', async () => {
    const [publicPort, listenPort] = await freePorts(2);
    const behindClient = await httpTarget(scope, 'behind the client');
    const behindServer = await httpTarget(scope, 'behind the server');
    const server = await startTunnelServer(
      scope,
      [
        { clients: 'key:site-a', names: 'web', directions: ['reverse'], ports: [publicPort!] },
        { clients: 'key:site-a', names: 'api', directions: ['forward'], targets: [`127.0.0.1:${behindServer}`] },
      ],
      kind,
    );
    const client = startTunnelClient(scope, server, 'site-a', [
      { name: 'web', serverPort: publicPort, target: `127.0.0.1:${behindClient}` },
      { name: 'api', direction: 'forward', listen: listenPort!, target: `127.0.0.1:${behindServer}` },
    ]);
    const routes = await client.start();
    expect(routes.map((r) => r.status)).toEqual(['accepted', 'accepted']);
    const replies = await Promise.all([get(publicPort!, '/r'), get(listenPort!, '/f')]);
    expect(replies.map((r) => r.body)).toEqual(['behind the client GET /r', 'behind the server GET /f']);
  });

  it('a target that refuses resets the public side', async () => {
    const [publicPort, deadPort] = await freePorts(2);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'dead', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'dead', serverPort: publicPort, target: `127.0.0.1:${deadPort}` }]);
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    let error: NodeJS.ErrnoException | undefined;
    socket.on('error', (e) => (error = e));
    await new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.write('GET / HTTP/1.1\r\n\r\n');
    });
    expect(error?.code).toBe('ECONNRESET');
  });
});
