/**
 * The tunnel's lifecycle over real tcp pools with keys on 127.0.0.1: the
 * server drains on close (DRAIN to the client, no new public connections,
 * the one in flight finishes), and a lost control channel leaves
 * tunnelled connections in flight running on their own streams.
 */
import { describe, expect, it, jest } from '@jest/globals';
import net from 'node:net';
import type { ControlChannel } from '../../lib/tunnel/control/channel.js';
import { TunnelClient } from '../../lib/tunnel/tunnel-client.js';
import { eventually, freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { KEYS, startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

async function target(onSocket: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined); // a cut connection resets the target's socket
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

describe('tunnel lifecycle over tcp with a key', () => {
  it('close() drains: the client hears DRAIN, new public connections are refused, the one in flight finishes cleanly', async () => {
    let asked!: () => void;
    const targetAsked = new Promise<void>((resolve) => (asked = resolve));
    let answer!: () => void;
    const mayAnswer = new Promise<void>((resolve) => (answer = resolve));
    const targetPort = await target((socket) => {
      socket.once('data', () => {
        asked();
        void mayAnswer.then(() => socket.end('late answer'));
      });
    });
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'slow', directions: ['reverse'], ports: [publicPort!] }]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'slow', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    const reply = readBytes(socket, 'late answer'.length, 20_000);
    const ended = new Promise<void>((resolve) => socket.once('end', resolve));
    socket.write('question');
    await targetAsked;
    const drained = new Promise<void>((resolve) => client.once('drain', resolve));
    const closed = server.close();
    await drained;
    // The public listener is gone: a new connection is refused.
    await eventually(() => server.routesOf('key:site-a').length === 0, 10_000, 'the public listener closed');
    const refused = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ host: '127.0.0.1', port: publicPort! }).on('error', resolve));
    expect(refused.code).toBe('ECONNREFUSED');
    // The connection in flight still gets its answer and a clean end.
    answer();
    expect((await reply).toString()).toBe('late answer');
    await ended;
    socket.end();
    await closed;
  });

  it('a lost control channel leaves tunnelled connections in flight running; their accounting is reported missing', async () => {
    const targetPort = await target((socket) => socket.pipe(socket));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }], 'tcp', { accountingTimeout: 300 });
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }], { reconnect: false, accountingTimeout: 300 });
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    socket.write('one');
    expect((await readBytes(socket, 3)).toString()).toBe('one');
    const gone = new Promise<string>((resolve) => server.once('client-gone', (label) => resolve(label)));
    const down = new Promise<void>((resolve) => client.once('down', () => resolve()));
    (client as unknown as { channel: ControlChannel }).channel.destroy();
    expect(await gone).toBe('key:site-a');
    await down;
    expect(client.connected).toBe(false);
    const two = readBytes(socket, 3);
    socket.resume(); // readBytes left it paused after the first read
    socket.write('two');
    expect((await two).toString()).toBe('two');
    // With no control channel neither end can confirm the other's end (SHUT): the connection's end is a cut, never a
    // clean end nobody vouched for, and the client cannot send its END: the server reports the connection unaccounted.
    const unaccounted = new Promise<{ route: string; mine: { sent: number; received: number } }>((resolve) => server.once('unaccounted', resolve));
    const reset = new Promise<NodeJS.ErrnoException>((resolve) => socket.once('error', resolve));
    socket.end();
    expect((await reset).code).toBe('ECONNRESET');
    expect(await unaccounted).toMatchObject({ route: 'echo', mine: { sent: 6, received: 6 } });
  });

  it('the client brings a lost control channel back by itself; the reverse route works again', async () => {
    const targetPort = await target((socket) => socket.pipe(socket));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }], { reconnect: { minDelay: 50, maxDelay: 500 } });
    await client.start();
    const upAgain = new Promise<void>((resolve) => client.once('up', () => resolve()));
    const back = new Promise<string>((resolve) => server.once('client', (label) => resolve(label)));
    (client as unknown as { channel: ControlChannel }).channel.destroy();
    await upAgain;
    expect(await back).toBe('key:site-a');
    expect(client.connected).toBe(true);
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    const echoed = readBytes(socket, 5);
    socket.write('again');
    expect((await echoed).toString()).toBe('again');
  });

  it('close() cuts a tunnelled connection still open after the close timeout: it never waits for it forever', async () => {
    const targetPort = await target((socket) => socket.pipe(socket));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'held', directions: ['reverse'], ports: [publicPort!] }]);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'held', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    socket.write('hold');
    expect((await readBytes(socket, 4)).toString()).toBe('hold');
    socket.resume();
    socket.on('error', () => undefined);
    const publicClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // closeTimeout is 2000 ms in the harness; the public peer never ends its side.
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([server.close().then(() => 'closed'), new Promise((resolve) => (timer = setTimeout(resolve, 15_000, 'hung')))]);
    clearTimeout(timer);
    expect(outcome).toBe('closed');
    await publicClosed;
  });

  it('connected stays false while the hello is unanswered: "up" means the server answered and its public listeners are bound', async () => {
    // A plain server pool with the keys, no tunnel server: the client's hello reaches it and is never answered.
    const pool = createServerPool({ host: '127.0.0.1', port: 0, maxCap: 8, closeTimeout: 2000, auth: { key: Object.entries(KEYS).map(([id, key]) => ({ id, key })) } } as ServerPoolConfig);
    scope.defer(() => pool.close());
    await pool.start();
    const clientPool = createClientPool({ address: `127.0.0.1:${pool.address()!.port}`, auth: { key: KEYS['site-a'] }, minCap: 2, maxCap: 2, closeTimeout: 2000 } as ClientPoolConfig);
    scope.defer(() => clientPool.close());
    const client = new TunnelClient({
      pool: clientPool,
      routes: [{ name: 'x', serverPort: 0, target: '127.0.0.1:9' }],
      helloTimeout: 1500,
      reconnect: false,
    });
    scope.defer(() => client.close());
    const started = client.start().then(() => 'up', (error: Error & { code?: string }) => error.code ?? error.message);
    // Every idle stream of the plain pool; the one that carries bytes carries the hello.
    const hello = new Promise<Buffer>((resolve) => {
      void (async () => {
        for (;;) {
          const [, stream] = await pool.incomingGet({ timeout: 5000 });
          stream.once('data', (chunk: Buffer) => resolve(chunk));
        }
      })().catch(() => undefined);
    });
    expect((await hello).length).toBeGreaterThan(0);
    expect(client.connected).toBe(false);
    expect(await started).not.toBe('up');
    expect(client.connected).toBe(false);
  });

  it('close() on both ends releases everything (the spec finishes without --forceExit)', async () => {
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'x', directions: ['reverse'], ports: [publicPort!] }]);
    const client: TunnelClient = startTunnelClient(scope, server, 'site-a', [{ name: 'x', serverPort: publicPort, target: '127.0.0.1:9' }]);
    await client.start();
    await client.close();
    await server.close();
    expect(server.clients).toEqual([]);
    expect(client.connected).toBe(false);
  });
});
