import { describe, expect, it } from '@jest/globals';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { h2Stats, startH2Pair, testCertificate } from './h2-support.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startH2Pair>) => scope.pair(startH2Pair, ...args);
const { handOff } = scope;

// What every transport does (echo, bytes before pick-up, half-close, rendezvous, unknown IDs,
// allowedIps, maxCap, dead server, idle death, close, single mode): test/conformance.
describe('http2 transport, end to end', () => {
  it('carries N pooled streams on one session', async () => {
    const p = await pair({}, { minCap: 24, maxCap: 24 });
    await p.client.waitForActive(24, 10_000);
    await eventually(() => p.server.active === 24, 5000, 'the server to hold 24');
    const client = h2Stats(p.client);
    expect(client.sessions).toBe(1);
    expect(client.sessionsOpened).toBe(1);
    expect(client.streamsOpened).toBe(24);
    expect(client.activeStreams).toBe(24);
    expect(client.peerMaxConcurrentStreams).toEqual([4096]); // the server pool's maxCap
    expect(h2Stats(p.server).sessions).toBe(1);
    expect(h2Stats(p.server).maxConcurrentStreams).toBe(4096);
  });

  it('opens more sessions when the capacity needs more streams than the peer allows on one, and never gets a stream refused', async () => {
    const p = await pair({ maxConcurrentStreams: 4, maxCap: 64 }, { minCap: 10, maxCap: 10 });
    await p.client.waitForActive(10, 10_000);
    const stats = h2Stats(p.client);
    expect(stats.sessions).toBe(3);
    expect(stats.peerMaxConcurrentStreams).toEqual([4, 4, 4]);
    expect(stats.activeStreams).toBe(10);
    expect(p.client.stats.failures).toEqual({});
    expect(p.server.stats.refusals).toEqual({});
    // Every stream works.
    for (let i = 0; i < 10; i++) {
      const { server, client } = await handOff(p);
      client.write(`#${i}`);
      expect((await readBytes(server, 2)).toString()).toBe(`#${i}`);
    }
  });

  it('never opens more than maxSessions; the dial past them fails (counted), nothing is refused by the server', async () => {
    const p = await pair({ maxConcurrentStreams: 2, maxCap: 64 }, { minCap: 6, maxCap: 6, maxSessions: 2 });
    await eventually(() => (p.client.stats.failures.POOL_ERR_DIAL ?? 0) >= 1, 5000, 'a dial past maxSessions to fail');
    await eventually(() => p.client.active === 4, 5000, 'both sessions full');
    expect(h2Stats(p.client).sessions).toBe(2);
    expect(p.server.stats.refusals).toEqual({});
  });

  it.each([
    ['a server pool without tls', 'tls', () => createServerPool({ transport: 'http2', port: 0 })],
    ['a client pool with tls "0"', 'tls', () => createClientPool({ transport: 'http2', address: '127.0.0.1:1', tls: '0' })],
    ['a client pool without tls', 'tls', () => createClientPool({ transport: 'http2', address: '127.0.0.1:1' })],
    ['mode "2" without hostname', 'hostname', () => createClientPool({ transport: 'http2', address: '127.0.0.1:1', tls: '2' })],
    ['a window below 64 KiB', 'initialWindowSize', () => createClientPool({ transport: 'http2', address: '127.0.0.1:1', tls: '1', initialWindowSize: 1000 })],
    ['maxSessions 0', 'maxSessions', () => createClientPool({ transport: 'http2', address: '127.0.0.1:1', tls: '1', maxSessions: 0 })],
    ['a tcp-only option', 'idFormat', () => createClientPool({ transport: 'http2', address: '127.0.0.1:1', tls: '1', idFormat: 'raw4' } as never)],
  ])('options: %s is an InvalidOptionsError naming %s', (_what, option, build) => {
    expect(build).toThrow(expect.objectContaining({ code: 'POOL_ERR_INVALID_OPTIONS', option }) as never);
  });

  it('client close does not kill a handed-out stream but waits for it; the session closes once it ends', async () => {
    const p = await pair({}, { minCap: 3, maxCap: 3 });
    await p.client.waitForActive(3, 5000);
    const { server, client } = await handOff(p);
    const started = Date.now();
    let closed = false;
    const closing = p.client.close().then(() => (closed = true));
    client.write('after close');
    expect((await readBytes(server, 11)).toString()).toBe('after close');
    server.write('still here');
    expect((await readBytes(client, 10)).toString()).toBe('still here');
    // The idle ones are gone, the session holds only the handed-out stream.
    await eventually(() => h2Stats(p.server).activeStreams === 1, 5000, 'idle streams gone on the server');
    expect(closed).toBe(false);
    expect(p.client.stats).toMatchObject({ state: 'closing', inUse: 1 });
    client.end();
    server.end();
    client.resume();
    server.resume();
    await closing;
    expect(p.client.stats.state).toBe('closed');
    expect(Date.now() - started).toBeLessThan(p.client.options.closeTimeout); // it resolved when the stream ended, not at the cut
    await eventually(() => h2Stats(p.client).sessions === 0, 5000, 'the client session to close');
  });

  it('server close sends GOAWAY and lets streams already handed out finish', async () => {
    const p = await pair({ closeTimeout: 10_000 }, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    const { server, client } = await handOff(p);
    let closed = false;
    const closing = p.server.close().then(() => (closed = true));
    await eventually(() => h2Stats(p.client).goaways >= 1, 5000, 'the client to see GOAWAY');
    expect(h2Stats(p.client).usableSessions).toBe(0);
    client.write('during shutdown');
    expect((await readBytes(server, 15)).toString()).toBe('during shutdown');
    expect(closed).toBe(false);
    client.end();
    server.end();
    client.resume();
    server.resume();
    await closing;
    expect(closed).toBe(true);
  });

  it('the server closes sessions with no stream for 2 x keepAlive', async () => {
    const { key, cert } = testCertificate();
    const server = createServerPool({ transport: 'http2', port: 0, tls: { key, cert }, keepAlive: 100 });
    await server.start();
    scope.defer(() => server.close());
    const http2 = await import('node:http2');
    const session = http2.connect(`https://127.0.0.1:${server.address()!.port}`, { rejectUnauthorized: false });
    scope.defer(() => void session.destroy());
    await new Promise((resolve) => session.once('remoteSettings', resolve));
    const goaway = new Promise((resolve) => session.once('goaway', resolve));
    await goaway;
    expect(h2Stats(server).goawaysSent).toBe(1);
  });
});
