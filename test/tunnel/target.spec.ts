import { afterEach, describe, expect, it } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { InvalidOptionsError, RouteLimitError, TargetConnectError } from '../../lib/core/errors.js';
import { readProxyHeader } from '../../lib/tunnel/proxy-protocol.js';
import { ConnectionLimit, connectTarget } from '../../lib/tunnel/target.js';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(onSocket: (socket: net.Socket) => void = () => undefined): Promise<number> {
  const sockets: net.Socket[] = [];
  const listener = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        listener.close(() => resolve());
      }),
  );
  return (listener.address() as net.AddressInfo).port;
}

async function closedPort(): Promise<number> {
  const listener = net.createServer();
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => listener.close(() => resolve()));
  return port;
}

/**
 * A listener that never accepts: a child process listens with a backlog of
 * one and then blocks its event loop, so the kernel's accept queue fills and
 * every later SYN is dropped (Linux), as a firewall that drops would do.
 */
async function blackhole(): Promise<number> {
  const source = `
    const s = require('net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(s.address().port + '\\n');
      setTimeout(() => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120000), 50);
    });`;
  const child: ChildProcess = spawn(process.execPath, ['-e', source], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  const [line] = (await once(child.stdout!, 'data')) as [Buffer];
  const port = Number(line.toString().trim());
  await new Promise((resolve) => setTimeout(resolve, 200)); // the child is blocked by now
  const fillers: net.Socket[] = [];
  for (let i = 0; i < 6; i++) fillers.push(net.connect({ host: '127.0.0.1', port }).on('error', () => undefined));
  cleanups.push(() => fillers.forEach((socket) => socket.destroy()));
  return port;
}

describe('connectTarget', () => {
  it('connects with allowHalfOpen and no Nagle delay, and the socket carries data both ways', async () => {
    const port = await server((socket) => socket.pipe(socket));
    const socket = await connectTarget({ host: '127.0.0.1', port });
    cleanups.push(() => void socket.destroy());
    expect(socket.allowHalfOpen).toBe(true);
    socket.write('ping');
    const [echo] = (await once(socket, 'data')) as [Buffer];
    expect(echo.toString()).toBe('ping');
  });

  it('refused: a TargetConnectError with reason "refused", the target named', async () => {
    const port = await closedPort();
    const error = await connectTarget({ host: '127.0.0.1', port }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TargetConnectError);
    expect(error).toMatchObject({ code: 'POOL_ERR_TARGET_CONNECT', reason: 'refused', host: '127.0.0.1', port });
    expect((error as Error).message).toContain(`127.0.0.1:${port}`);
  });

  it('timeout: a target whose accept queue is full (SYNs dropped) fails after `timeout` with reason "timeout"', async () => {
    const port = await blackhole();
    const error = await connectTarget({ host: '127.0.0.1', port, timeout: 400 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'POOL_ERR_TARGET_CONNECT', reason: 'timeout' });
  }, 60_000);

  it('aborted: through the signal, before and during the connect', async () => {
    const port = await blackhole();
    const controller = new AbortController();
    const during = connectTarget({ host: '127.0.0.1', port, signal: controller.signal }).catch((e: unknown) => e);
    setTimeout(() => controller.abort(), 50);
    expect(await during).toMatchObject({ code: 'POOL_ERR_TARGET_CONNECT', reason: 'aborted' });
    expect(await connectTarget({ host: '127.0.0.1', port, signal: controller.signal }).catch((e: unknown) => e)).toMatchObject({ reason: 'aborted' });
  }, 60_000);

  it.each([
    [{ host: '', port: 1 }, 'target.host'],
    [{ host: '127.0.0.1', port: 0 }, 'target.port'],
    [{ host: '127.0.0.1', port: 70000 }, 'target.port'],
    [{ host: '127.0.0.1', port: 1, timeout: 0 }, 'target.timeout'],
    [{ host: '127.0.0.1', port: 1, proxyProtocol: 3 }, 'target.proxyProtocol'],
  ])('rejects invalid options at once, naming the option: %j', (options, option) => {
    expect(() => connectTarget(options as never)).toThrow(InvalidOptionsError);
    expect(() => connectTarget(options as never)).toThrow(expect.objectContaining({ option }) as never);
  });

  it.each([1, 2] as const)('PROXY v%i: the header comes first, with the public peer and the target address; the data follows intact', async (version) => {
    const seen: unknown[] = [];
    const port = await server((socket) => {
      void readProxyHeader(socket).then((header) => {
        seen.push(header);
        socket.pipe(socket);
      });
    });
    const socket = await connectTarget({ host: '127.0.0.1', port, proxyProtocol: version, source: { address: '203.0.113.7', port: 40000 } });
    cleanups.push(() => void socket.destroy());
    socket.write('after the header');
    const [echo] = (await once(socket, 'data')) as [Buffer];
    expect(echo.toString()).toBe('after the header');
    expect(seen).toEqual([
      expect.objectContaining({ version, command: 'proxy', family: 'tcp4', endpoints: { source: { address: '203.0.113.7', port: 40000 }, destination: { address: '127.0.0.1', port } } }),
    ]);
  });

  it('PROXY without a source: v1 UNKNOWN, v2 LOCAL; with a destination given, that destination', async () => {
    const seen: unknown[] = [];
    const port = await server((socket) => void readProxyHeader(socket).then((header) => seen.push(header)));
    const sockets = await Promise.all([
      connectTarget({ host: '127.0.0.1', port, proxyProtocol: 1 }),
      connectTarget({ host: '127.0.0.1', port, proxyProtocol: 2 }),
      connectTarget({ host: '127.0.0.1', port, proxyProtocol: 2, source: { address: '::1', port: 1 }, destination: { address: '::1', port: 443 } }),
    ]);
    cleanups.push(() => sockets.forEach((socket) => socket.destroy()));
    for (let i = 0; i < 100 && seen.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual(
      expect.arrayContaining([
        { version: 1, command: 'proxy', family: 'unknown' },
        { version: 2, command: 'local', family: 'unknown' },
        expect.objectContaining({ version: 2, family: 'tcp6', endpoints: { source: { address: '::1', port: 1 }, destination: { address: '::1', port: 443 } } }),
      ]),
    );
  });

  it('readProxyHeader: bytes that are no header reject with a typed error; an early end is "truncated"', async () => {
    const results: unknown[] = [];
    const port = await server((socket) => void readProxyHeader(socket, 5_000).catch((error: unknown) => results.push(error)));
    const bad = net.connect({ host: '127.0.0.1', port }).on('error', () => undefined);
    bad.end('GET / HTTP/1.1\r\n\r\n');
    const short = net.connect({ host: '127.0.0.1', port }).on('error', () => undefined);
    short.end('PROXY TCP4 1.2');
    cleanups.push(() => [bad, short].forEach((socket) => socket.destroy()));
    for (let i = 0; i < 100 && results.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(results).toEqual(expect.arrayContaining([expect.objectContaining({ code: 'POOL_ERR_PROXY_HEADER', reason: 'signature' }), expect.objectContaining({ reason: 'truncated' })]));
  });
});

describe('ConnectionLimit (a route\'s maxConnections)', () => {
  it('the (N+1)th is refused at once with RouteLimitError and counted; a release makes room; release is idempotent', () => {
    const limit = new ConnectionLimit(2);
    const first = limit.acquire();
    limit.acquire();
    expect(() => limit.acquire()).toThrow(RouteLimitError);
    expect(() => limit.acquire()).toThrow(expect.objectContaining({ code: 'POOL_ERR_ROUTE_LIMIT', limit: 2 }) as never);
    expect([limit.open, limit.refused]).toEqual([2, 2]);
    first();
    first();
    expect(limit.open).toBe(1);
    limit.acquire();
    expect(limit.open).toBe(2);
  });

  it('Infinity never refuses; anything else below 1 is an invalid option', () => {
    const unlimited = new ConnectionLimit(Infinity);
    for (let i = 0; i < 1000; i++) unlimited.acquire();
    expect(unlimited.refused).toBe(0);
    expect(() => new ConnectionLimit(0)).toThrow(InvalidOptionsError);
    expect(() => new ConnectionLimit(1.5)).toThrow(InvalidOptionsError);
  });
});
