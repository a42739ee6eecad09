import { describe, expect, it } from '@jest/globals';
import { getEventListeners } from 'node:events';
import { PoolClosedError } from '../../lib/core/errors.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { eventually, listenRaw } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

/**
 * The signal a client transport gets with every dial is the pool's own
 * lifecycle, shared by every dial in flight; a single-mode pool dials once
 * per get, so there may be hundreds. Each dial used to add an 'abort'
 * listener of its own to it: past maxConcurrentDials + 16 Node printed
 * "MaxListenersExceededWarning: 49 abort listeners added to [AbortSignal]",
 * and the close walked a list as long as the dials. Now the dials share one
 * listener, and the pool's close fails each with POOL_ERR_CLOSED (not the
 * POOL_ERR_ABORTED of a caller's own signal).
 */
const scope = useTestScope();
const DIALS = 60;

/** A TCP server that accepts and never answers: each dial waits in its first phase after connect. */
async function silentServer() {
  const raw = await listenRaw((socket) => socket.resume());
  scope.defer(() => raw.close());
  return raw;
}

describe.each([
  ['tcp', { transport: 'tcp' }, 'in the ID read'],
  ['tls', { transport: 'tcp', tls: '1' }, 'in the TLS handshake'],
  ['ws', { transport: 'ws' }, 'in the upgrade'],
  ['http2', { transport: 'http2', tls: '1' }, 'waiting for the one session being opened'],
])('%s client: dials in flight on one pool signal', (name, options, phase) => {
  it(`${DIALS} dials ${phase} add one 'abort' listener to it, and its abort fails each with PoolClosedError`, async () => {
    const server = await silentServer();
    const transport = createClientPool({ ...options, address: `127.0.0.1:${server.port}`, handshakeTimeout: 60_000, ...(options.transport === 'ws' ? {} : { dialTimeout: 60_000 }) } as never).transport;
    const controller = new AbortController();
    const warnings: string[] = [];
    const onWarning = (warning: Error): void => {
      if (warning.name === 'MaxListenersExceededWarning') warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    scope.defer(async () => void process.off('warning', onWarning));
    const dials = Array.from({ length: DIALS }, () => transport.dial({ signal: controller.signal, readId: true }).then(
      (result) => {
        result.stream.destroy();
        return 'dialed';
      },
      (error: unknown) => error,
    ));
    // Every dial (http2: the one session) has connected and waits for the silent server.
    const connections = options.transport === 'http2' ? 1 : DIALS;
    await eventually(() => server.sockets.length === connections, 10_000, `${connections} connections`);
    expect(getEventListeners(controller.signal, 'abort').length).toBeLessThanOrEqual(1);
    controller.abort();
    for (const outcome of await Promise.all(dials)) expect(outcome).toBeInstanceOf(PoolClosedError);
    await transport.close(0);
    await eventually(() => server.sockets.every((socket) => socket.destroyed || socket.readableEnded), 5000, 'every connection closed');
    expect(warnings).toEqual([]);
  });

  it('a dial whose pool closes while it resolves the address fails at once with PoolClosedError, not at its timeout', async () => {
    const server = await silentServer();
    let resolveAddress!: (address: string) => void;
    const address = new Promise<string>((resolve) => (resolveAddress = resolve));
    const transport = createClientPool({ ...options, addressResolver: () => address, handshakeTimeout: 60_000 } as never).transport;
    scope.defer(() => transport.close(0));
    const controller = new AbortController();
    const dial = transport.dial({ signal: controller.signal, readId: true }).then(
      (result) => {
        result.stream.destroy();
        return 'dialed';
      },
      (error: unknown) => error,
    );
    controller.abort();
    resolveAddress(`127.0.0.1:${server.port}`);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting after 5 s'), 5000)));
    const outcome = await Promise.race([dial, late]);
    clearTimeout(timer);
    expect(outcome).toBeInstanceOf(PoolClosedError);
  });

  // Plain tcp in single mode has nothing to wait for after the connect (no ID): its dial is done at once.
  if (name === 'tcp') return;
  it('single mode: a get waiting on its own dial when the pool closes rejects with PoolClosedError, counted as no failure', async () => {
    const server = await silentServer();
    const pool = createClientPool({ ...options, address: `127.0.0.1:${server.port}`, isSingle: true, handshakeTimeout: 60_000 } as never);
    pool.start();
    const get = pool.outgoingGet('', 60_000).then(
      (stream) => {
        stream.destroy();
        return 'taken';
      },
      (error: unknown) => error,
    );
    await eventually(() => server.sockets.length >= 1, 10_000, 'the dial to connect');
    await pool.close(0);
    expect(await get).toMatchObject({ code: 'POOL_ERR_CLOSED', name: 'PoolClosedError' });
    expect(pool.stats.failures).toEqual({});
  });
});
