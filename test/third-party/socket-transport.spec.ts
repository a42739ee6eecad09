/**
 * A transport from outside the library (socket-transport.ts) plugs in with
 * no edit inside lib/: the pool factories and the Nest module take its
 * factory object, check its options by their types and at run time (naming
 * the option with the caller's prefix, as for a built-in), and run it over a
 * Unix domain socket. The conformance suite runs the same transport over
 * TCP (test/conformance).
 */
import { describe, expect, it } from '@jest/globals';
import { Test } from '@nestjs/testing';
import { once } from 'node:events';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ClientPoolService,
  InvalidOptionsError,
  PoolModule,
  ServerPoolService,
  TcpClientTransport,
  createClientPool,
  createServerPool,
  isTransportFactory,
  tcpTransport,
} from '../../lib/index.js';
import { eventually, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { socketTransport } from './socket-transport.js';

const scope = useTestScope();
const here = path.dirname(fileURLToPath(import.meta.url));

let sockets = 0;
/** A fresh socket path in the temp folder, removed after the test. */
function socketPath(): string {
  const file = path.join(os.tmpdir(), `tunnel-pool-${process.pid}-${++sockets}.sock`);
  scope.defer(() => rmSync(file, { force: true }));
  return file;
}

const unixOnly = process.platform === 'win32' ? describe.skip : describe;

unixOnly('a third-party transport over a Unix domain socket', () => {
  it('pools streams both ways through createServerPool / createClientPool given the factory object', async () => {
    const file = socketPath();
    const server = createServerPool({ transport: socketTransport, path: file, maxCap: 4 });
    await server.start();
    scope.defer(() => server.close());
    expect(server.address()).toMatchObject({ address: file, family: 'unix' });
    const client = createClientPool({ transport: socketTransport, path: file, minCap: 2, maxCap: 2 });
    client.start();
    scope.defer(() => client.close());
    await client.waitForActive(2, 5000);
    const [id, serverSide] = await server.incomingGet(5000);
    scope.track(serverSide);
    expect(id).toBe('00000000');
    const clientSide = scope.track(await client.outgoingGet(id, 5000));
    clientSide.write('over a socket path');
    expect((await readBytes(serverSide, 18)).toString()).toBe('over a socket path');
    serverSide.write('and back');
    expect((await readBytes(clientSide, 8)).toString()).toBe('and back');
    expect(client.stats.transport).toBe('socket');
    expect(server.stats.transport).toBe('socket');
  });

  it('refuses beyond maxCap over the path (typed on the client), and close() frees the path', async () => {
    const file = socketPath();
    const server = createServerPool({ transport: socketTransport, path: file, maxCap: 1 });
    await server.start();
    scope.defer(() => server.close());
    const client = createClientPool({ transport: socketTransport, path: file, minCap: 3, maxCap: 3, minIvl: 50, maxIvl: 50 });
    client.start();
    scope.defer(() => client.close());
    await eventually(() => (server.stats.refusals.full ?? 0) >= 1 && (client.stats.failures.POOL_ERR_REFUSED ?? 0) >= 1, 5000, 'a full refusal on both sides');
    expect(client.active).toBe(1);
    await server.close();
    const probe = net.connect({ path: file });
    await expect(once(probe, 'connect')).rejects.toMatchObject({ code: expect.stringMatching(/ENOENT|ECONNREFUSED/) });
    probe.destroy();
  });

  it('runs under PoolModule.forRoot given the factory object', async () => {
    const file = socketPath();
    const app = await Test.createTestingModule({
      imports: [
        PoolModule.forRoot({
          server: { transport: socketTransport, path: file },
          client: { transport: socketTransport, path: file, minCap: 1, maxCap: 1 },
        }),
      ],
    }).compile();
    await app.init();
    scope.defer(() => app.close());
    const server = app.get(ServerPoolService);
    const client = app.get(ClientPoolService);
    const [id, serverSide] = await server.incomingGet(5000);
    scope.track(serverSide);
    const clientSide = scope.track(await client.outgoingGet(id, 5000));
    serverSide.write('through nest');
    expect((await readBytes(clientSide, 12)).toString()).toBe('through nest');
  });
});

describe('a third-party transport validates its options like a built-in', () => {
  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['a typo, with a hint', { adress: '127.0.0.1:1' }, 'client.adress', /unknown option \(did you mean "address"\?\)/],
    ['a bad value of its own', { path: '/tmp/x.sock', dialTimeout: -1 }, 'client.dialTimeout', /got -1, expected an integer/],
    ['a missing address', {}, 'client.address', /needs path or address/],
    ['a key of another transport', { address: '127.0.0.1:1', hostname: 'example.test' }, 'client.hostname', /unknown option/],
  ])('%s is named with the caller\'s prefix', (_what, options, option, message) => {
    const build = (): unknown => createClientPool({ transport: socketTransport, ...options } as never, 'client');
    expect(build).toThrow(InvalidOptionsError);
    expect(build).toThrow(expect.objectContaining({ option, message: expect.stringMatching(message) }));
  });

  it('type-checks the options of the factory it is given', () => {
    // These lines are compile errors (npm run typecheck fails if they are not) and fail at run time too.
    // @ts-expect-error path is a string
    expect(() => createClientPool({ transport: socketTransport, path: 42 })).toThrow(/invalid option path/);
    // @ts-expect-error hostname is a tcp client option, not one of this transport's
    expect(() => createClientPool({ transport: socketTransport, address: '127.0.0.1:1', hostname: 'x' })).toThrow(/invalid option hostname/);
    // @ts-expect-error port is a number
    expect(() => createServerPool({ transport: socketTransport, port: '1' })).toThrow(/invalid option port/);
    // @ts-expect-error bogus is no option of the pool or of this transport
    expect(() => createClientPool({ transport: socketTransport, path: '/tmp/x.sock', bogus: 1 })).toThrow(/invalid option bogus/);
    // The Nest module types each side by the factory it is given too (the options are read when Nest compiles).
    // @ts-expect-error path is a string
    expect(PoolModule.forRoot({ client: { transport: socketTransport, path: 42 } }).module).toBe(PoolModule);
    // @ts-expect-error the same through forRootAsync's factory
    expect(PoolModule.forRootAsync({ useFactory: () => ({ server: { transport: socketTransport, path: 42 } }) }).module).toBe(PoolModule);
  });

  it('rejects a transport that is neither a built-in name nor a factory object', () => {
    expect(isTransportFactory(socketTransport)).toBe(true);
    expect(isTransportFactory({ name: 'half', createClient: () => undefined })).toBe(false);
    expect(() => createClientPool({ transport: { name: 'half' }, address: '127.0.0.1:1' } as never)).toThrow(
      expect.objectContaining({ option: 'transport', message: expect.stringMatching(/one of "tcp", "http2", "ws", or a transport factory object/) }),
    );
  });
});

describe('building one side of a transport from the public API', () => {
  it('factory.client(options) / factory.server(options) validate and build, built-in or not', async () => {
    const tcp = tcpTransport.client({ address: '127.0.0.1:1' });
    expect(tcp).toBeInstanceOf(TcpClientTransport);
    expect(tcp.kind).toBe('tcp');
    expect(() => tcpTransport.client({ adress: '127.0.0.1:1' } as never, 'client')).toThrow(expect.objectContaining({ option: 'client.adress' }));
    const socketServer = socketTransport.server({ host: '127.0.0.1', port: 0 });
    expect(socketServer.kind).toBe('socket');
    expect(socketServer.address()).toBeNull();
    await socketServer.close(0);
  });
});

describe('the third-party folder uses public exports only', () => {
  it('imports from the library only through its entry points', () => {
    for (const file of readdirSync(here).filter((name) => name.endsWith('.ts'))) {
      const imports = [...readFileSync(path.join(here, file), 'utf8').matchAll(/from '([^']+)'/g)].map((match) => match[1]!);
      for (const source of imports.filter((name) => name.includes('/lib/'))) expect(source).toMatch(/\/lib\/(index|core-entry)\.js$/);
    }
  });
});
