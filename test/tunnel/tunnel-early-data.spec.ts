/**
 * `earlyData` (TunnelServer option, on by default): for a client with no
 * accepted forward route, the server sends a reverse connection's first
 * bytes into the pooled stream right after its OPEN, without waiting for the
 * client's stream header. Forced with a router that says an OPEN was
 * delivered but hands it to the client only on `release()` (`HoldingRouter`,
 * 'at once').
 */
import { createHash, randomBytes } from 'node:crypto';
import { expect, it, jest } from '@jest/globals';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { TunnelServer } from '../../lib/tunnel/tunnel-server.js';
import { eventually, freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { HoldingRouter, startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

/** A target that answers, once the peer ended, with the SHA-256 of everything it got. */
async function hashingTarget(): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    const hash = createHash('sha256');
    socket.on('data', (chunk: Buffer) => hash.update(chunk));
    socket.on('end', () => socket.end(hash.digest('hex')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

async function tunnel(earlyData: boolean | undefined, router: HoldingRouter): Promise<{ server: TunnelServer; publicPort: number; client: ReturnType<typeof startTunnelClient> }> {
  const [publicPort] = (await freePorts(1)) as [number];
  const target = await hashingTarget();
  const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'up', directions: ['reverse'], ports: [publicPort] }], 'tcp', { router, ...(earlyData === undefined ? {} : { earlyData }) });
  const client = startTunnelClient(scope, server, 'site-a', [{ name: 'up', serverPort: publicPort, target: `127.0.0.1:${target}` }]);
  await client.start();
  return { server, publicPort, client };
}

/**
 * Holds the OPEN of a public connection that wrote 'first bytes', then takes
 * the stream it names from the client's pool here (the client was not told):
 * what the server wrote into it before any header.
 */
async function streamOfHeldOpen(router: HoldingRouter, publicPort: number, pool: ClientPool): Promise<Duplex> {
  router.hold();
  const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort, allowHalfOpen: true }));
  socket.on('error', () => undefined);
  socket.write('first bytes');
  await eventually(() => router.held.length === 1, 10_000, 'the OPEN is held');
  const { id } = router.held[0] as { id: string };
  return scope.track(await pool.outgoingGet(id, 5000));
}

it.each([
  ['by default', undefined],
  ['with earlyData: true', true],
])('%s, the public side\'s bytes are in the pooled stream before the client even got the OPEN', async (_, earlyData) => {
  const router = new HoldingRouter('at once');
  const { publicPort, client } = await tunnel(earlyData, router);
  const stream = await streamOfHeldOpen(router, publicPort, client.pool);
  expect((await readBytes(stream, 11, 5000)).toString()).toBe('first bytes');
  stream.destroy();
  router.release();
});

it('with earlyData, bytes and a FIN sent before the client\'s header all arrive, in order, and are accounted', async () => {
  const router = new HoldingRouter('at once');
  const { server, publicPort } = await tunnel(true, router);
  const accounted = new Promise<{ complete: boolean }>((resolve) => server.once('accounted', (event: { complete: boolean }) => resolve(event)));
  router.hold();
  const payload = randomBytes(256 * 1024);
  const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort, allowHalfOpen: true }));
  const reply = new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.once('end', () => resolve(Buffer.concat(chunks).toString()));
    socket.once('error', reject);
  });
  await new Promise<void>((resolve) => socket.end(payload, () => resolve()));
  await eventually(() => router.held.length === 1, 10_000, 'the OPEN is held');
  router.release();
  expect(await reply).toBe(createHash('sha256').update(payload).digest('hex'));
  expect((await accounted).complete).toBe(true);
});

it('a client with an accepted forward route gets no early bytes: the server waits for its header as without earlyData', async () => {
  const router = new HoldingRouter('at once');
  const [publicPort, listenPort] = (await freePorts(2)) as [number, number];
  const target = await hashingTarget();
  const server = await startTunnelServer(
    scope,
    [
      { clients: 'key:site-a', names: 'up', directions: ['reverse'], ports: [publicPort] },
      { clients: 'key:site-a', names: 'out', directions: ['forward'], targets: [`127.0.0.1:${target}`] },
    ],
    'tcp',
    { router, earlyData: true },
  );
  const client = startTunnelClient(scope, server, 'site-a', [
    { name: 'up', serverPort: publicPort, target: `127.0.0.1:${target}` },
    { name: 'out', direction: 'forward', listen: `127.0.0.1:${listenPort}`, target: `127.0.0.1:${target}` },
  ]);
  await client.start();
  const stream = await streamOfHeldOpen(router, publicPort, client.pool);
  // The same read that finds the bytes at once with earlyData (above) finds nothing here.
  await expect(readBytes(stream, 1, 1000)).rejects.toThrow();
  stream.destroy();
  router.release();
});

it('with earlyData: false, the server writes nothing into the stream before the client\'s header', async () => {
  const router = new HoldingRouter('at once');
  const { publicPort, client } = await tunnel(false, router);
  const stream = await streamOfHeldOpen(router, publicPort, client.pool);
  await expect(readBytes(stream, 1, 1000)).rejects.toThrow();
  stream.destroy();
  router.release();
});
