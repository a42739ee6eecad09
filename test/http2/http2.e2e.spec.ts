import { describe, expect, it } from '@jest/globals';
import type { ClientHttp2Stream, ServerHttp2Stream } from 'node:http2';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes, readToEnd, sleep } from '../support/net.js';
import { h2Stats, startH2Pair, testCertificate } from './h2-support.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startH2Pair>) => scope.pair(startH2Pair, ...args);
const { track } = scope;
const { handOff } = scope;

describe('http2 transport, end to end', () => {
  it('hands out the HTTP/2 streams themselves; data echoes both ways; 00000000 first', async () => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    const { id, server, client } = await handOff(p);
    expect(id).toBe('00000000');
    // Nothing sits between the application and the wire.
    expect((client as ClientHttp2Stream).session).toBeDefined();
    expect((server as ServerHttp2Stream).session).toBeDefined();
    client.write('ping from client');
    expect((await readBytes(server, 16)).toString()).toBe('ping from client');
    server.write('pong from server');
    expect((await readBytes(client, 16)).toString()).toBe('pong from server');
    expect(p.client.stats.transport).toBe('http2');
    expect(p.server.stats.transport).toBe('http2');
    const second = await handOff(p);
    expect(second.id).toMatch(/^[0-9a-f]{8}$/);
    expect(second.id).not.toBe('00000000');
  });

  it('half-close works both ways: ending one side ends that direction only', async () => {
    const p = await pair({}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    // Client ends first: the server sees the end and still answers.
    const a = await handOff(p);
    a.client.end('last words');
    expect((await readToEnd(a.server, 5000)).toString()).toBe('last words');
    a.server.end('answer after client end');
    expect((await readToEnd(a.client, 5000)).toString()).toBe('answer after client end');
    await eventually(() => a.client.destroyed && a.server.destroyed, 5000, 'both ends closed');
    // Server ends first: the client sees the end and still sends.
    const b = await handOff(p);
    b.server.end('server done');
    expect((await readToEnd(b.client, 5000)).toString()).toBe('server done');
    b.client.end('client still talking');
    expect((await readToEnd(b.server, 5000)).toString()).toBe('client still talking');
    await eventually(() => b.client.destroyed && b.server.destroyed, 5000, 'both ends closed');
    // Graceful ends cost no resets.
    expect(h2Stats(p.client).resets).toBe(0);
    expect(h2Stats(p.server).resets).toBe(0);
  });

  it('keeps bytes the server sends before outgoingGet, in order', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const [id, server] = await p.server.incomingGet(5000);
    track(server);
    server.write('first|');
    server.write('second|');
    server.write('third');
    await sleep(100);
    const client = track(await p.client.outgoingGet(id, 1000));
    expect((await readBytes(client, 18)).toString()).toBe('first|second|third');
  });

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

  it('404 when the server pool is full (POOL_ERR_REFUSED), 403 for a peer address not allowed (POOL_ERR_IP_NOT_ALLOWED), each naming the status', async () => {
    const full = await pair({ maxCap: 1 }, { minCap: 2, maxCap: 2 });
    await eventually(() => (full.client.stats.failures.POOL_ERR_REFUSED ?? 0) >= 1, 5000, 'a refused dial');
    expect(full.client.active).toBe(1);
    expect(full.server.stats.refusals.full).toBeGreaterThanOrEqual(1);
    await expect(full.client.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_REFUSED',
      message: expect.stringMatching(/status 404.*not found/),
    });

    const denied = await pair({ allowedIps: '10.9.9.9' }, { minCap: 1, maxCap: 1 });
    await eventually(() => (denied.client.stats.failures.POOL_ERR_IP_NOT_ALLOWED ?? 0) >= 1, 5000, 'a refused dial');
    expect(denied.client.active).toBe(0);
    expect(denied.server.stats.refusals.ip).toBeGreaterThanOrEqual(1);
    await expect(denied.client.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_IP_NOT_ALLOWED',
      name: 'IpNotAllowedError',
      message: expect.stringMatching(/status 403.*unauthorized/),
    });
  });

  it('mode "2": verified against hostname with a CA', async () => {
    const { createCertificateAuthority } = await import('../../lib/certs/index.js');
    const authority = createCertificateAuthority();
    const leaf = authority.issue({ commonName: 'tunnel.test', altNames: ['tunnel.test'] });
    const p = await pair({ tls: { key: leaf.key, cert: leaf.cert } }, { tls: '2', hostname: 'tunnel.test', ca: authority.cert, minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    client.write('verified');
    expect((await readBytes(server, 8)).toString()).toBe('verified');
    const wrong = await pair({ tls: { key: leaf.key, cert: leaf.cert } }, { tls: '2', hostname: 'other.test', ca: authority.cert, minCap: 1, maxCap: 1 });
    await eventually(() => (wrong.client.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 1, 5000, 'a handshake failure');
    expect(wrong.client.active).toBe(0);
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

  it('server close cuts what is still open after closeTimeout: the client side hears a reset', async () => {
    const p = await pair({ closeTimeout: 300 }, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    const cut = new Promise<{ code?: string }>((resolve) => server.once('error', resolve));
    const failed = new Promise<{ code?: string }>((resolve) => client.once('error', resolve));
    await p.server.close();
    expect(await cut).toMatchObject({ code: 'POOL_ERR_CLOSED' });
    // RST_STREAM(CANCEL): what destroy() sends on a pooled stream.
    expect(await failed).toMatchObject({ code: 'ECONNRESET', reason: 'reset', rstCode: 8 });
    expect(client.destroyed).toBe(true);
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
