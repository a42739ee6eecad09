/**
 * The tunnel end to end over real tcp pools with shared-key authentication
 * on 127.0.0.1: a TunnelServer over a ServerPool, TunnelClients over
 * ClientPools. The control channel comes up on a pooled stream the client
 * names by writing first; reverse routes carry an HTTP request, bulk bytes
 * both ways with SHA-256, "request, FIN, reply"; a refusing target resets
 * the public side; the allowlist refuses explicitly; two clients (two keys)
 * each get their own route; a second control channel for a client is
 * refused.
 */
import { describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import { ControlRefusedError, TargetConnectError } from '../../lib/core/errors.js';
import { freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import type { AllowRuleOptions } from '../../lib/tunnel/routes.js';
import type { AccountedEvent } from '../../lib/tunnel/tunnel-server.js';
import { get, httpTarget, startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

const allowReverse = (client: string, name: string, port: number): AllowRuleOptions => ({ clients: client, names: name, directions: ['reverse'], ports: [port] });

describe('tunnel over tcp with a key: reverse routes', () => {
  it('the control channel comes up on a claimed stream; an HTTP request crosses a reverse route', async () => {
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'web', publicPort!)]);
    const target = await httpTarget(scope, 'hello from behind NAT');
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'web', serverPort: publicPort, target: `127.0.0.1:${target}` }]);
    const seen = new Promise<string>((resolve) => server.once('client', (label) => resolve(label)));
    const routes = await client.start();
    expect(routes).toEqual([expect.objectContaining({ name: 'web', status: 'accepted', accepted: true, port: publicPort })]);
    expect(await seen).toBe('key:site-a');
    expect(server.routesOf('key:site-a')).toEqual([{ name: 'web', direction: 'reverse', port: publicPort }]);
    const reply = await get(publicPort!, '/path?q=1');
    expect(reply).toEqual({ status: 200, body: 'hello from behind NAT GET /path?q=1' });
    // The control stream was taken out of the server pool as claimed, never as a data stream.
    expect(server.pool.stats.totals.taken).toBe(2);
  });

  it('256 KiB each way with SHA-256, as "request, FIN, reply"', async () => {
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'bulk', publicPort!)]);
    const reply = randomBytes(256 * 1024);
    const request = randomBytes(256 * 1024 + 7);
    let targetSaw = '';
    const target = net.createServer({ allowHalfOpen: true }, (socket) => {
      const hash = createHash('sha256');
      socket.on('data', (chunk: Buffer) => hash.update(chunk));
      // Only after the request's FIN does the target answer: the half-close crossed the tunnel.
      socket.on('end', () => {
        targetSaw = hash.digest('hex');
        socket.end(reply);
      });
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'bulk', serverPort: publicPort, target: `127.0.0.1:${(target.address() as net.AddressInfo).port}` }]);
    await client.start();
    const accounted = new Promise<AccountedEvent>((resolve) => server.once('accounted', resolve));
    const socket = net.connect({ host: '127.0.0.1', port: publicPort!, allowHalfOpen: true });
    scope.track(socket);
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
    // Both ENDs agree: what the server wrote into the stream the client read, and back.
    const ends = await accounted;
    expect(ends).toMatchObject({ client: 'key:site-a', route: 'bulk', complete: true });
    expect([ends.mine.sent, ends.mine.received, ends.peer.sent, ends.peer.received]).toEqual([request.length, reply.length, reply.length, request.length]);
  });

  it('a target that refuses: FAIL to the server, the public side is reset (ECONNRESET), not ended', async () => {
    const [publicPort, deadPort] = await freePorts(2);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'dead', publicPort!)]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'dead', serverPort: publicPort, target: `127.0.0.1:${deadPort}` }]);
    await client.start();
    const failed = new Promise<Error>((resolve) => client.once('open-failed', ({ error }) => resolve(error)));
    const socket = net.connect({ host: '127.0.0.1', port: publicPort! });
    scope.track(socket);
    let ended = false;
    socket.on('end', () => (ended = true));
    let error: NodeJS.ErrnoException | undefined;
    socket.on('error', (e) => (error = e));
    // Wait for the close, however it comes: a clean end must fail the test, not hang it.
    await new Promise<void>((resolve) => {
      socket.on('close', () => resolve());
      socket.write('GET / HTTP/1.1\r\n\r\n');
    });
    expect(error?.code).toBe('ECONNRESET');
    expect(ended).toBe(false);
    const clientError = await failed;
    expect(clientError).toBeInstanceOf(TargetConnectError);
    expect(clientError).toMatchObject({ reason: 'refused' });
    expect(client.stats.routes.dead?.failures).toEqual({ 'target-refused': 1 });
  });

  it('the client claims its stream before it connects the target: the server holds the connection at once, and a target that refuses is that connection\'s failure, no END owed', async () => {
    const [publicPort, deadPort] = await freePorts(2);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'dead', publicPort!)], 'tcp', { accountingTimeout: 300 });
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'dead', serverPort: publicPort, target: `127.0.0.1:${deadPort}` }]);
    await client.start();
    const events: string[] = [];
    server.on('opened', () => events.push('opened'));
    server.on('unaccounted', () => events.push('unaccounted'));
    const ended = new Promise<void>((resolve) => {
      server.once('connection', ({ result }) => {
        events.push(`connection ${result.error ? 'failed' : 'ended'}`);
        resolve();
      });
      server.once('open-failed', () => {
        events.push('open-failed');
        resolve();
      });
    });
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    const error = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      let failure: NodeJS.ErrnoException | undefined;
      socket.on('error', (e) => (failure = e));
      socket.on('close', () => resolve(failure));
      socket.write('GET / HTTP/1.1\r\n\r\n');
    });
    expect(error?.code).toBe('ECONNRESET');
    await ended;
    expect(server.stats.routes.dead).toMatchObject({ total: 1, open: 0, failures: { 'target-refused': 1 } });
    // Three accounting timeouts later, still no 'unaccounted': the FAIL settled the connection.
    await new Promise((resolve) => setTimeout(resolve, 900));
    expect(events).toEqual(['opened', 'connection failed']);
  });

  it('a route the server does not allow is refused explicitly on both sides; no public listener for it', async () => {
    const [allowedPort, askedPort] = await freePorts(2);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'web', allowedPort!)]);
    const target = await httpTarget(scope, 'x');
    const client = startTunnelClient(scope, server, 'site-a', [
      { name: 'web', serverPort: allowedPort, target: `127.0.0.1:${target}` },
      { name: 'admin', serverPort: askedPort, target: `127.0.0.1:${target}` },
    ]);
    const serverRefused = new Promise<string>((resolve) => server.once('refused', (_label, answer) => resolve(`${answer.name}:${answer.status}`)));
    const clientRefused = new Promise<string>((resolve) => client.once('refused', (answer) => resolve(`${answer.name}:${answer.status}`)));
    const routes = await client.start();
    expect(routes.map((r) => [r.name, r.status])).toEqual([
      ['web', 'accepted'],
      ['admin', 'not-allowed'],
    ]);
    expect(routes[1]!.text).toMatch(/no allowlist rule lets client key:site-a serve route admin/);
    expect(await serverRefused).toBe('admin:not-allowed');
    expect(await clientRefused).toBe('admin:not-allowed');
    const refused = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ host: '127.0.0.1', port: askedPort! }).on('error', resolve));
    expect(refused.code).toBe('ECONNREFUSED');
  });

  it('two clients (two keys) on one server, each with its own route and its own streams', async () => {
    const [portA, portB] = await freePorts(2);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'a-web', portA!), allowReverse('key:site-b', 'b-web', portB!)]);
    const targetA = await httpTarget(scope, 'site A');
    const targetB = await httpTarget(scope, 'site B');
    const a = startTunnelClient(scope, server, 'site-a', [{ name: 'a-web', serverPort: portA, target: `127.0.0.1:${targetA}` }]);
    const b = startTunnelClient(scope, server, 'site-b', [{ name: 'b-web', serverPort: portB, target: `127.0.0.1:${targetB}` }]);
    await Promise.all([a.start(), b.start()]);
    expect(server.clients.sort()).toEqual(['key:site-a', 'key:site-b']);
    const replies = await Promise.all([get(portA!, '/1'), get(portB!, '/2'), get(portA!, '/3'), get(portB!, '/4')]);
    expect(replies.map((r) => r.body)).toEqual(['site A GET /1', 'site B GET /2', 'site A GET /3', 'site B GET /4']);
    expect(server.stats.clients['key:site-a']?.total).toBe(2);
    expect(server.stats.clients['key:site-b']?.total).toBe(2);
  });

  it('a second control channel for a client that has one is refused (ControlRefusedError, duplicate); the first keeps working', async () => {
    const [port] = await freePorts(1);
    const server = await startTunnelServer(scope, [allowReverse('key:site-a', 'web', port!)]);
    const target = await httpTarget(scope, 'first');
    const first = startTunnelClient(scope, server, 'site-a', [{ name: 'web', serverPort: port, target: `127.0.0.1:${target}` }]);
    await first.start();
    const second = startTunnelClient(scope, server, 'site-a', [{ name: 'web', serverPort: port, target: `127.0.0.1:${target}` }]);
    const duplicate = new Promise<string>((resolve) => server.once('duplicate', resolve));
    const error = await second.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ControlRefusedError);
    expect(error).toMatchObject({ reason: 'duplicate' });
    expect(await duplicate).toBe('key:site-a');
    expect((await get(port!, '/still')).body).toBe('first GET /still');
  });
});
