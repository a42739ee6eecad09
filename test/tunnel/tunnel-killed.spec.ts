/**
 * A tunnel client PROCESS killed (SIGKILL) while tunnelled connections are
 * in flight, on every kind with a key: the server reports the missing
 * accounting ('unaccounted') of each, and each public connection is reset
 * (never a clean end): over tcp and tls the dead process's kernel writes a
 * FIN that looks like a clean end, which the server passes on only with the
 * client's SHUT for it (none comes). The client runs from dist/ (npm run
 * build first) in test/tunnel/tunnel-client-child.mjs.
 */
import { describe, expect, it, jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { clientConfig, KIND_NAMES } from '../support/kinds.js';
import { freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { KEYS, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();
const CHILD = fileURLToPath(new URL('./tunnel-client-child.mjs', import.meta.url));
const BUILT = fileURLToPath(new URL('../../dist/lib/tunnel/tunnel-client.js', import.meta.url));
const IN_FLIGHT = 5;

describe.each(KIND_NAMES)('a killed tunnel client process over %s', (kind) => {
  it('in-flight public connections fail loudly; the server reports them unaccounted', async () => {
    if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run npm run build before this spec`);
    const target = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }], kind, { accountingTimeout: 500 });
    const config = {
      pool: { ...clientConfig(kind), address: `127.0.0.1:${server.pool.address()!.port}`, auth: { key: KEYS['site-a'] }, minCap: 8, maxCap: 16, minIvl: 50, maxIvl: 100 },
      routes: [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${(target.address() as net.AddressInfo).port}` }],
    };
    const child = spawn(process.execPath, [CHILD, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    scope.defer(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    });
    const line = await new Promise<string>((resolve, reject) => {
      child.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()));
      child.once('exit', (code) => reject(new Error(`the client process exited (${code})`)));
    });
    expect(line).toBe('up');
    const sockets = await Promise.all(
      Array.from({ length: IN_FLIGHT }, async (_, i) => {
        const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
        socket.write(`in flight ${i}`);
        expect((await readBytes(socket, `in flight ${i}`.length, 20_000)).toString()).toBe(`in flight ${i}`);
        return socket;
      }),
    );
    const unaccounted: string[] = [];
    const allReported = new Promise<void>((resolve) =>
      server.on('unaccounted', (event: { id: string }) => {
        unaccounted.push(event.id);
        if (unaccounted.length === IN_FLIGHT) resolve();
      }),
    );
    const outcomes = sockets.map(
      (socket) =>
        new Promise<{ ended: boolean; error?: string }>((resolve) => {
          let ended = false;
          let error: string | undefined;
          socket.on('end', () => (ended = true));
          socket.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
          socket.on('close', () => resolve({ ended, ...(error ? { error } : {}) }));
          socket.resume();
        }),
    );
    child.kill('SIGKILL');
    await exited;
    const seen = await Promise.all(outcomes);
    // http2 and ws see the session or socket die; tcp and tls see the dead process's kernel FIN, a clean end that no
    // SHUT confirms within accountingTimeout: every public connection is reset either way.
    for (const outcome of seen) expect(outcome).toEqual({ ended: false, error: 'ECONNRESET' });
    await allReported;
    expect(unaccounted).toHaveLength(IN_FLIGHT);
  });
});
