/**
 * Both ends picking one stream at the same moment, forced: the server takes
 * a client's only ready stream for a reverse connection while its OPEN is
 * held back (a router that delays it), and the client takes that same
 * stream for a forward connection. The client's stream header (NTPF) tells
 * the server; the stream goes to the forward connection, the reverse one
 * picks another stream, and no byte of one connection reaches the other.
 */
import { expect, it, jest } from '@jest/globals';
import net from 'node:net';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { TunnelClient } from '../../lib/tunnel/tunnel-client.js';
import { TunnelServer } from '../../lib/tunnel/tunnel-server.js';
import { eventually, freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { HoldingRouter, KEYS, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

/** A target that answers each connection with `prefix` and every byte it got, once the peer ended. */
async function answering(prefix: string): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end(Buffer.concat([Buffer.from(prefix), ...chunks])));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** Everything a socket reads until its end, or its error's code. */
function replyOf(socket: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks).toString()));
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(`error ${error.code ?? error.message}: ${Buffer.concat(chunks).toString()}`));
  });
}

/** Records what reaches the stranger's one stream, taken on its side as soon as it is there: its ID and every byte. */
function watchStranger(stranger: ClientPool): { ids: string[]; bytes: Buffer[] } {
  const seen = { ids: [] as string[], bytes: [] as Buffer[] };
  void stranger.takeAny({ timeout: 10_000 }).then(([id, stream]) => {
    seen.ids.push(id);
    stream.on('data', (chunk: Buffer) => seen.bytes.push(chunk));
    stream.on('error', () => undefined);
  }, () => undefined);
  return seen;
}

/** Starts a tunnel client serving the reverse route 'rev' to `target`, with a short openTimeout (a stream it lacks is said at once); resolves with its open failures as they come. */
async function reverseClient(pool: ClientPool, publicPort: number, target: number): Promise<string[]> {
  const client = new TunnelClient({ pool, routes: [{ name: 'rev', serverPort: publicPort, target: `127.0.0.1:${target}` }], openTimeout: 300, closeTimeout: 2000 });
  scope.defer(() => client.close());
  const failures: string[] = [];
  client.on('open-failed', (event: { error: Error }) => failures.push(event.error.message));
  await client.start();
  return failures;
}

it('a stream both ends took at once goes to the forward connection; the reverse one gets another; no byte crosses', async () => {
  const reverseTarget = await answering('reverse target got: ');
  const forwardTarget = await answering('forward target got: ');
  const [publicPort, listenPort] = await freePorts(2);
  const router = new HoldingRouter();
  const server = await startTunnelServer(
    scope,
    [
      { clients: 'key:site-a', names: 'rev', directions: ['reverse'], ports: [publicPort!] },
      { clients: 'key:site-a', names: 'fwd', directions: ['forward'], targets: [`127.0.0.1:${forwardTarget}`] },
    ],
    'tcp',
    { router },
  );
  const collisions: string[] = [];
  server.on('collision', (event) => collisions.push(event.id));
  // One ready stream beside the control stream: both ends can only pick that one.
  const pool = createClientPool({ address: `127.0.0.1:${server.pool.address()!.port}`, auth: { key: KEYS['site-a'] }, minCap: 1, maxCap: 1, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => pool.close());
  const client = new TunnelClient({
    pool,
    routes: [
      { name: 'rev', serverPort: publicPort, target: `127.0.0.1:${reverseTarget}` },
      { name: 'fwd', direction: 'forward', listen: `127.0.0.1:${listenPort}`, target: `127.0.0.1:${forwardTarget}` },
    ],
    closeTimeout: 2000,
  });
  scope.defer(() => client.close());
  await client.start();
  await eventually(() => pool.active === 1 && server.pool.readyFor('key:site-a') === 1, 10_000, 'one ready stream on both ends');

  router.hold();
  const publicSocket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort!, allowHalfOpen: true }));
  const publicReply = replyOf(publicSocket);
  publicSocket.end('bytes of the public connection');
  // The server took the one stream and its OPEN waits: the client does not know yet.
  await eventually(() => router.held.length === 1, 10_000, 'the reverse OPEN is held');
  const held = router.held[0] as { id: string };
  const forwardOpened = new Promise<string>((resolve) => client.once('opened', (event: { id: string }) => resolve(event.id)));
  const forwardSocket = scope.track(net.connect({ host: '127.0.0.1', port: listenPort!, allowHalfOpen: true }));
  const forwardReply = replyOf(forwardSocket);
  forwardSocket.end('bytes of the forward connection');
  // The client took the same stream for its forward connection.
  expect(await forwardOpened).toBe(held.id);
  router.release();

  expect(await forwardReply).toBe('forward target got: bytes of the forward connection');
  expect(await publicReply).toBe('reverse target got: bytes of the public connection');
  expect(collisions).toEqual([held.id]);
});

it.each([
  ['with earlyData: false', false],
  ['with earlyData (the default)', undefined],
])('a stream the client does not have (another process with the same key), %s: the client says no-stream, the server picks another, the connection is whole', async (_, earlyData) => {
  const reverseTarget = await answering('reverse target got: ');
  const [publicPort] = await freePorts(1);
  const rules = [{ clients: 'key:site-a', names: 'rev', directions: ['reverse'] as const, ports: [publicPort!] }];
  const server = await startTunnelServer(scope, rules, 'tcp', earlyData === undefined ? {} : { earlyData });
  // A second process with the same key and no tunnel client: its one stream is the oldest ready one of key:site-a.
  const stranger = createClientPool({ address: `127.0.0.1:${server.pool.address()!.port}`, auth: { key: KEYS['site-a'] }, minCap: 1, maxCap: 1, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => stranger.close());
  stranger.start();
  await eventually(() => server.pool.readyFor('key:site-a') === 1, 10_000, 'the stranger stream is ready');
  const pool = createClientPool({ address: `127.0.0.1:${server.pool.address()!.port}`, auth: { key: KEYS['site-a'] }, minCap: 2, maxCap: 2, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => pool.close());
  const failures = await reverseClient(pool, publicPort!, reverseTarget);
  await eventually(() => server.pool.readyFor('key:site-a') === 3, 10_000, 'the client\'s streams are ready too');
  // Whatever reaches the stranger's stream is recorded.
  const strangerSaw = watchStranger(stranger);
  const opened: string[] = [];
  server.on('opened', (event: { id: string }) => opened.push(event.id));
  const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort!, allowHalfOpen: true }));
  const reply = replyOf(socket);
  socket.end('bytes of the public connection');
  expect(await reply).toBe('reverse target got: bytes of the public connection');
  // The client was asked for the stranger's stream first and could not take it; the server's second pick was its own.
  await eventually(() => failures.length === 1, 10_000, 'the client reported the stream it could not take');
  expect(opened).toHaveLength(1);
  expect(opened).not.toContain(strangerSaw.ids[0]);
  // Without earlyData nothing is written into a stream before its header confirmed it. With it, the first
  // bytes went into the stranger's stream too (no OPEN named it there: its holder drops them), and were
  // sent again into the stream the client took.
  expect(Buffer.concat(strangerSaw.bytes).toString()).toBe(earlyData === false ? '' : 'bytes of the public connection');
});

it('without authentication, a stranger\'s pooled stream gets no byte of a public connection, even with earlyData: true', async () => {
  const reverseTarget = await answering('reverse target got: ');
  const [publicPort] = await freePorts(1);
  const serverPool = createServerPool({ transport: 'tcp', host: '127.0.0.1', port: 0, closeTimeout: 2000 } as ServerPoolConfig);
  scope.defer(() => serverPool.close());
  const server = new TunnelServer({ pool: serverPool, earlyData: true, openTimeout: 300, allow: { rules: [{ clients: 'anonymous', names: 'rev', directions: ['reverse'], ports: [publicPort!] }] } });
  scope.defer(() => server.close());
  await server.start();
  const address = `127.0.0.1:${serverPool.address()!.port}`;
  // Anyone who reaches a pool without auth gets pooled streams: the stranger's one is the oldest ready one.
  const stranger = createClientPool({ address, minCap: 1, maxCap: 1, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => stranger.close());
  stranger.start();
  await eventually(() => serverPool.active === 1, 10_000, 'the stranger stream is ready');
  const strangerSaw = watchStranger(stranger);
  const pool = createClientPool({ address, minCap: 2, maxCap: 2, closeTimeout: 2000 } as ClientPoolConfig);
  scope.defer(() => pool.close());
  const failures = await reverseClient(pool, publicPort!, reverseTarget);
  await eventually(() => serverPool.active >= 2, 10_000, 'the client\'s streams are ready too');
  const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort!, allowHalfOpen: true }));
  const reply = replyOf(socket);
  socket.end('bytes of the public connection');
  expect(await reply).toBe('reverse target got: bytes of the public connection');
  // The stranger's stream was picked first (the client said no-stream), and got nothing.
  await eventually(() => failures.length === 1, 10_000, 'the client reported the stream it could not take');
  expect(Buffer.concat(strangerSaw.bytes).toString()).toBe('');
});
