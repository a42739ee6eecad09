/**
 * Forward routes end to end over real tcp pools with shared-key
 * authentication on 127.0.0.1: the client listens, takes one of its ready
 * streams for each connection and names it to the server (OPEN), which
 * takes exactly that stream of that client and connects the target its
 * allowlist permits.
 */
import { describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import type { AllowRuleOptions } from '../../lib/tunnel/routes.js';
import { get, httpTarget, startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

const allowForward = (client: string, name: string, target: string): AllowRuleOptions => ({ clients: client, names: name, directions: ['forward'], targets: [target] });

describe('tunnel over tcp with a key: forward routes', () => {
  it('an HTTP request to the client\'s listener reaches a target the server connects to', async () => {
    const target = await httpTarget(scope, 'reached from the server');
    const [listenPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [allowForward('key:site-a', 'db', `127.0.0.1:${target}`)]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'db', direction: 'forward', listen: `127.0.0.1:${listenPort}`, target: `127.0.0.1:${target}` }]);
    const routes = await client.start();
    expect(routes.map((r) => [r.name, r.status])).toEqual([['db', 'accepted']]);
    expect(client.addressOf('db')?.port).toBe(listenPort);
    const replies = await Promise.all([get(listenPort!, '/a'), get(listenPort!, '/b')]);
    expect(replies.map((r) => r.body)).toEqual(['reached from the server GET /a', 'reached from the server GET /b']);
    expect(server.stats.routes.db?.total).toBe(2);
  });

  it('64 KiB+ each way with SHA-256 through a forward route, "request, FIN, reply"', async () => {
    const reply = randomBytes(128 * 1024 + 3);
    const request = randomBytes(96 * 1024);
    let targetSaw = '';
    const target = net.createServer({ allowHalfOpen: true }, (socket) => {
      const hash = createHash('sha256');
      socket.on('data', (chunk: Buffer) => hash.update(chunk));
      socket.on('end', () => {
        targetSaw = hash.digest('hex');
        socket.end(reply);
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const targetPort = (target.address() as net.AddressInfo).port;
    const [listenPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [allowForward('key:site-a', 'bulk', `127.0.0.1:${targetPort}`)]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'bulk', direction: 'forward', listen: listenPort!, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: listenPort!, allowHalfOpen: true }));
    const received = createHash('sha256');
    let length = 0;
    const done = new Promise<void>((resolve, reject) => {
      socket.on('data', (chunk: Buffer) => {
        received.update(chunk);
        length += chunk.length;
      });
      socket.on('end', resolve);
      socket.on('error', reject);
    });
    socket.end(request);
    await done;
    expect(length).toBe(reply.length);
    expect(received.digest('hex')).toBe(createHash('sha256').update(reply).digest('hex'));
    expect(targetSaw).toBe(createHash('sha256').update(request).digest('hex'));
  });

  it('a forward target the allowlist does not name is refused explicitly (target-not-allowed); nothing listens for it', async () => {
    const [listenPort, other] = await freePorts(2);
    const server = await startTunnelServer(scope, [allowForward('key:site-a', 'db', '127.0.0.1:5432')]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'db', direction: 'forward', listen: listenPort!, target: `127.0.0.1:${other}` }]);
    const routes = await client.start();
    expect(routes.map((r) => [r.name, r.status])).toEqual([['db', 'target-not-allowed']]);
    expect(client.addressOf('db')).toBeUndefined();
    const refused = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ host: '127.0.0.1', port: listenPort! }).on('error', resolve));
    expect(refused.code).toBe('ECONNREFUSED');
  });

  it('a forward target that refuses: FAIL from the server, the client\'s public side is reset', async () => {
    const [listenPort, deadPort] = await freePorts(2);
    const server = await startTunnelServer(scope, [allowForward('key:site-a', 'dead', `127.0.0.1:${deadPort}`)]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'dead', direction: 'forward', listen: listenPort!, target: `127.0.0.1:${deadPort}` }]);
    await client.start();
    const failed = new Promise<Error>((resolve) => server.once('open-failed', ({ error }) => resolve(error)));
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: listenPort! }));
    let error: NodeJS.ErrnoException | undefined;
    socket.on('error', (e) => (error = e));
    await new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.write('hello');
    });
    expect(error?.code).toBe('ECONNRESET');
    expect(await failed).toMatchObject({ code: 'POOL_ERR_TARGET_CONNECT', reason: 'refused' });
  });

  it('bytes on a forward connection that start with the control preamble are data, not a second control channel', async () => {
    const echo = net.createServer((socket) => socket.pipe(socket).on('error', () => undefined));
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => echo.close(() => resolve())));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const [listenPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [allowForward('key:site-a', 'echo', `127.0.0.1:${echoPort}`)]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'echo', direction: 'forward', listen: listenPort!, target: `127.0.0.1:${echoPort}` }]);
    await client.start();
    let duplicates = 0;
    server.on('duplicate', () => duplicates++);
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: listenPort! }));
    socket.write('NTPC is just text here');
    expect((await readBytes(socket, 22)).toString()).toBe('NTPC is just text here');
    expect(duplicates).toBe(0);
  });
});
