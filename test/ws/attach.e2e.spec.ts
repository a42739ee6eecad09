import 'reflect-metadata';
import { describe, expect, it } from '@jest/globals';
import { Controller, Get, Module, type INestApplication } from '@nestjs/common';
import { HttpAdapterHost, NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { ServerPoolService } from '../../lib/nest/server-pool.service.js';
import { PoolModule } from '../../lib/nest/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

// The server side attached to an HTTP server that serves other routes: a
// Nest app (which listens only at app.listen(), after module init) and a
// plain http.Server.

const scope = useTestScope();
const { track } = scope;

/** One GET on its own connection. */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (body += chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

/**
 * Dials `path` with a client pool, takes a stream on both sides, echoes both
 * ways and destroys the pair (a pool's close() would wait for it); returns
 * the client pool.
 */
async function tunnelThrough(port: number, path: string, take: () => Promise<[string, Duplex]>): Promise<ClientPool> {
  const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, path, minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20 });
  scope.defer(() => client.close());
  client.start();
  await client.waitForActive(2, 5000);
  const [id, theirs] = await take();
  track(theirs);
  expect(id).toBe('00000000');
  const mine = track(await client.outgoingGet(id, 1000));
  mine.write('through the app');
  expect((await readBytes(theirs, 15)).toString()).toBe('through the app');
  theirs.write('and back');
  expect((await readBytes(mine, 8)).toString()).toBe('and back');
  mine.destroy();
  theirs.destroy();
  return client;
}

@Controller()
class HealthController {
  @Get('health')
  health(): { status: string } {
    return { status: 'ok' };
  }
}

/** The registration a Nest app uses to serve the tunnel beside its routes. */
const tunnelPool = () =>
  PoolModule.forRootAsync({
    inject: [HttpAdapterHost],
    useFactory: (host: HttpAdapterHost) => ({ server: { transport: 'ws', server: host, path: '/tunnel' } }),
  });

@Module({ imports: [tunnelPool()], controllers: [HealthController] })
class AppModule {}

describe('ws server attached to an existing HTTP server', () => {
  it('a Nest app made by NestFactory.create (the production path): the same registration works', async () => {
    const app = await NestFactory.create(AppModule, { logger: false });
    scope.defer(() => app.close());
    await app.listen(0, '127.0.0.1');
    const port = (app.getHttpServer().address() as net.AddressInfo).port;
    const pool = app.get(ServerPoolService);
    expect(await get(port, '/health')).toEqual({ status: 200, body: '{"status":"ok"}' });
    await tunnelThrough(port, '/tunnel', () => pool.incomingGet(5000));
  });

  it('a Nest app: PoolModule.forRootAsync with HttpAdapterHost, /tunnel beside /health, listening only at app.listen()', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        PoolModule.forRootAsync({
          inject: [HttpAdapterHost],
          // Not host.httpAdapter.getHttpServer(): the HTTP server does not exist yet when this
          // runs (and under @nestjs/testing neither does the adapter); the pool asks the host when it starts.
          useFactory: (host: HttpAdapterHost) => ({
            server: { transport: 'ws', server: host, path: '/tunnel' },
          }),
        }),
      ],
      controllers: [HealthController],
    }).compile();
    const app: INestApplication = moduleRef.createNestApplication({ logger: false });
    scope.defer(() => app.close());
    await app.init();
    // The pool started on module init, before the server listens.
    const pool = app.get(ServerPoolService);
    expect(pool.ready).toBe(true);
    expect(pool.address()).toBeNull();
    await app.listen(0, '127.0.0.1');
    const port = (app.getHttpServer().address() as net.AddressInfo).port;
    expect(pool.address()?.port).toBe(port);

    expect(await get(port, '/health')).toEqual({ status: 200, body: '{"status":"ok"}' });
    await tunnelThrough(port, '/tunnel', () => pool.incomingGet(5000));
    expect(await get(port, '/health')).toEqual({ status: 200, body: '{"status":"ok"}' });
    expect(pool.pool.stats.transport).toBe('ws');
  });

  it('a plain http.Server not yet listening: upgrades at path, other upgrades 404 when nobody else takes them; never listens or closes it', async () => {
    const web = http.createServer((request, response) => {
      response.writeHead(request.url === '/health' ? 200 : 404, { 'Content-Type': 'text/plain' });
      response.end(request.url === '/health' ? 'ok\n' : 'nope\n');
    });
    scope.defer(() => new Promise<void>((resolve) => web.close(() => resolve())));
    scope.defer(() => web.closeAllConnections());
    const pool: ServerPool = createServerPool({ transport: 'ws', server: web, path: '/tunnel' });
    await pool.start();
    scope.defer(() => pool.close());
    expect(web.listening).toBe(false);
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    const port = (web.address() as net.AddressInfo).port;
    expect(await get(port, '/health')).toEqual({ status: 200, body: 'ok\n' });
    const tunnel = await tunnelThrough(port, '/tunnel', () => pool.incomingGet(5000));

    const wrong = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, path: '/elsewhere' });
    scope.defer(() => wrong.close());
    await expect(wrong.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_REFUSED',
      message: expect.stringMatching(/404/),
    });

    // Another upgrade listener owns other paths: the pool leaves them alone.
    const others: string[] = [];
    const teapot = (request: http.IncomingMessage, socket: Duplex): void => {
      if (request.url === '/tunnel') return;
      others.push(request.url!);
      socket.end('HTTP/1.1 418 I\'m a teapot\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      socket.once('finish', () => socket.destroy());
    };
    web.on('upgrade', teapot);
    await expect(wrong.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({ message: expect.stringMatching(/418/) });
    expect(others).toEqual(['/elsewhere']);
    web.off('upgrade', teapot);

    // Closing the pool detaches it; the server stays the application's. (The client
    // first: its redials to /tunnel would find no one to answer them.)
    await tunnel.close();
    await pool.close();
    expect(web.listening).toBe(true);
    expect(web.listenerCount('upgrade')).toBe(0);
    expect(await get(port, '/health')).toEqual({ status: 200, body: 'ok\n' });
    await eventually(() => pool.stats.state === 'closed', 1000, 'the pool to close');
  });
});
