import { afterEach, describe, expect, it } from '@jest/globals';
import net from 'node:net';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { PoolLogger } from '../../lib/core/logger.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, freePorts } from '../support/net.js';

/** A logger whose lines a test can wait for, event-driven. */
function waitableLogger(): PoolLogger & { lines: Array<{ level: string; message: string }>; next(match: RegExp, ms?: number): Promise<string> } {
  const lines: Array<{ level: string; message: string }> = [];
  const waiters = new Set<{ match: RegExp; resolve: (line: string) => void }>();
  const at = (level: string) => (message: string) => {
    lines.push({ level, message });
    for (const waiter of [...waiters]) if (waiter.match.test(message)) {
      waiters.delete(waiter);
      waiter.resolve(message);
    }
  };
  return {
    lines,
    log: at('log'),
    warn: at('warn'),
    error: at('error'),
    next(match, ms = 20_000) {
      const seen = lines.find((line) => match.test(line.message));
      if (seen) return Promise.resolve(seen.message);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no log line matching ${match} within ${ms} ms; got ${JSON.stringify(lines)}`));
        }, ms);
        const waiter = { match, resolve: (line: string) => { clearTimeout(timer); resolve(line); } };
        waiters.add(waiter);
      });
    },
  };
}

let client: ClientPool | undefined;
let server: ServerPool | undefined;
afterEach(async () => {
  await Promise.all([client?.close(0), server?.close(0)]);
  client = server = undefined;
});

describe('logging of background failures (real sockets)', () => {
  it('a client dialing a closed port logs the first failure, a summary, and the recovery once the server is up', async () => {
    const [port] = (await freePorts(1)) as [number];
    const logger = waitableLogger();
    client = createClientPool({ address: `127.0.0.1:${port}`, minIvl: 20, maxIvl: 20, maxBackoff: 40, dialTimeout: 2000, logger, logInterval: 400, name: 'edge' });
    client.start();

    const first = await logger.next(/dialing failed/);
    expect(first).toMatch(/^client pool 'edge': dialing failed \(POOL_ERR_DIAL\): .*ECONNREFUSED/);
    const summary = await logger.next(/dialing failed .* in the last/);
    expect(summary).toMatch(/POOL_ERR_DIAL ×\d+.*still failing/);
    // Rate-limited: a few lines, not one per failed dial. On a loaded machine the summary may come after only two
    // failures; failures then keep coming (every 20-40 ms) while lines come once per logInterval: waiting for five
    // more failures than lines holds only when the lines are rate-limited (one line per failure never gets there).
    await eventually(() => (client!.stats.failures['POOL_ERR_DIAL'] ?? 0) >= logger.lines.length + 5, 10_000, 'failures outnumber log lines');
    expect(logger.lines.filter((line) => /dialing failed/.test(line.message)).length).toBeLessThan(client.stats.failures['POOL_ERR_DIAL']!);

    server = createServerPool({ host: '127.0.0.1', port });
    await server.start();
    const recovered = await logger.next(/works again/);
    expect(recovered).toMatch(/^client pool 'edge': dialing works again after \d+ failures over/);
    expect(logger.lines.find((line) => /works again/.test(line.message))!.level).toBe('log');
    expect(logger.lines.filter((line) => /works again/.test(line.message))).toHaveLength(1);
    await client.waitForActive(1, 10_000);
  }, 30_000);

  it('a server logs failed handshakes of its clients (a peer that never does TLS), rate-limited', async () => {
    const logger = waitableLogger();
    server = createServerPool({ host: '127.0.0.1', port: 0, tls: 'self-signed', handshakeTimeout: 200, logger, logInterval: 60_000, name: 'edge' });
    await server.start();
    const { port } = server.address()!;
    const sockets = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<net.Socket>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
        socket.on('error', () => undefined);
      })),
    );
    const line = await logger.next(/accepting clients failed/);
    expect(line).toMatch(/^server pool 'edge': accepting clients failed/);
    await new Promise<void>((resolve) => {
      let open = sockets.length;
      for (const socket of sockets) socket.once('close', () => --open === 0 && resolve());
    });
    expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  }, 30_000);
});
