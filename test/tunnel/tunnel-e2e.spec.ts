/**
 * The tunnel end to end on real sockets over EVERY transport kind of the one
 * table (tcp, tls, http2, ws, wss), each with a shared key: 200 concurrent
 * tunnelled connections on a reverse route each echoing its own bytes, bulk
 * bytes both ways with SHA-256 as "request, FIN, reply" (BULK bytes per
 * kind, kept small enough for the whole file to stay well under a minute
 * on a loaded 2-core machine), the same through a forward route (16 MiB),
 * a drain on server close, and a control channel lost and back (the route
 * works again).
 */
import { describe, expect, it, jest } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { ControlChannel } from '../../lib/tunnel/control/channel.js';
import { KIND_NAMES } from '../support/kinds.js';
import { eventually, freePorts } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(90_000);
const scope = useTestScope();

/** Bytes each way of the bulk test, per kind: the 64 MiB of the issue. */
const BULK = 64 * 1024 * 1024;
/** Bytes each way through a forward route, per kind. */
const FORWARD_BULK = 16 * 1024 * 1024;
const CONCURRENT = 200;

async function listenTarget(onSocket: (socket: net.Socket) => void): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  scope.defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

/** Connects to the public port, writes `payload` then FIN, and resolves with everything read up to the end. */
function roundTrip(port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = scope.track(net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => {
      socket.end();
      resolve(Buffer.concat(chunks));
    });
    socket.on('error', reject);
    socket.end(payload);
  });
}

const sha = (data: Buffer | Buffer[]): string => {
  const hash = createHash('sha256');
  for (const part of Array.isArray(data) ? data : [data]) hash.update(part);
  return hash.digest('hex');
};

/** A target that hashes what it reads until the FIN, then answers `reply` and ends ("request, FIN, reply"). */
async function hashingTarget(reply: Buffer): Promise<{ port: number; saw: () => string }> {
  let digest = '';
  const port = await listenTarget((socket) => {
    const hash = createHash('sha256');
    socket.on('data', (chunk: Buffer) => hash.update(chunk));
    socket.on('end', () => {
      digest = hash.digest('hex');
      socket.end(reply);
    });
  });
  return { port, saw: () => digest };
}

describe.each(KIND_NAMES)('tunnel end to end over %s with a key', (kind) => {
  it(`${CONCURRENT} concurrent connections on a reverse route, each echoing its own bytes`, async () => {
    const targetPort = await listenTarget((socket) => socket.pipe(socket));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const payloads = Array.from({ length: CONCURRENT }, (_, i) => Buffer.concat([Buffer.from(`conn-${i}:`), randomBytes(1024 + i)]));
    const replies = await Promise.all(payloads.map((payload) => roundTrip(publicPort!, payload)));
    let same = 0;
    replies.forEach((reply, i) => (same += reply.equals(payloads[i]!) ? 1 : 0));
    expect(same).toBe(CONCURRENT);
  });

  it(`${BULK / 1024 / 1024} MiB each way with SHA-256 through a reverse route, as "request, FIN, reply"`, async () => {
    const reply = randomBytes(BULK);
    const { port: targetPort, saw } = await hashingTarget(reply);
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'bulk', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'bulk', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const request = randomBytes(BULK + 13);
    const got = await roundTrip(publicPort!, request);
    expect(got.length).toBe(reply.length);
    expect(sha(got)).toBe(sha(reply));
    expect(saw()).toBe(sha(request));
  });

  it(`${FORWARD_BULK / 1024 / 1024} MiB each way with SHA-256 through a forward route, as "request, FIN, reply"`, async () => {
    const reply = randomBytes(FORWARD_BULK);
    const { port: targetPort, saw } = await hashingTarget(reply);
    const [listenPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'up', directions: ['forward'], targets: [`127.0.0.1:${targetPort}`] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'up', direction: 'forward', listen: listenPort!, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const request = randomBytes(FORWARD_BULK + 5);
    const got = await roundTrip(listenPort!, request);
    expect(got.length).toBe(reply.length);
    expect(sha(got)).toBe(sha(reply));
    expect(saw()).toBe(sha(request));
  });

  it('server close drains: the connection in flight finishes cleanly, new ones are refused', async () => {
    let answer!: () => void;
    const mayAnswer = new Promise<void>((resolve) => (answer = resolve));
    let asked!: () => void;
    const targetAsked = new Promise<void>((resolve) => (asked = resolve));
    const targetPort = await listenTarget((socket) => {
      socket.once('data', () => {
        asked();
        void mayAnswer.then(() => socket.end('late answer'));
      });
    });
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'slow', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'slow', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort!, allowHalfOpen: true }));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const ended = new Promise<void>((resolve, reject) => {
      socket.once('end', resolve);
      socket.once('error', reject);
    });
    socket.write('question');
    await targetAsked;
    const drained = new Promise<void>((resolve) => client.once('drain', resolve));
    const closed = server.close();
    await drained;
    await eventually(() => server.routesOf('key:site-a').length === 0, 10_000, 'the public listener closed');
    const refused = await new Promise<NodeJS.ErrnoException>((resolve) => net.connect({ host: '127.0.0.1', port: publicPort! }).on('error', resolve));
    expect(refused.code).toBe('ECONNREFUSED');
    answer();
    await ended;
    expect(Buffer.concat(chunks).toString()).toBe('late answer');
    socket.end();
    await closed;
  });

  it('a control channel lost and back: the route works again', async () => {
    const targetPort = await listenTarget((socket) => socket.pipe(socket));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${targetPort}` }]);
    await client.start();
    expect((await roundTrip(publicPort!, Buffer.from('before'))).toString()).toBe('before');
    const gone = new Promise<string>((resolve) => server.once('client-gone', (label) => resolve(label)));
    const down = new Promise<void>((resolve) => client.once('down', () => resolve()));
    const back = new Promise<void>((resolve) => client.once('up', () => resolve()));
    (client as unknown as { channel: ControlChannel }).channel.destroy();
    expect(await gone).toBe('key:site-a');
    await down;
    await back;
    expect(client.connected).toBe(true);
    expect(server.routesOf('key:site-a')).toEqual([{ name: 'echo', direction: 'reverse', port: publicPort }]);
    expect((await roundTrip(publicPort!, Buffer.from('after'))).toString()).toBe('after');
  });
});
