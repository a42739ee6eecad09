/**
 * Issue 10, item 3: handshake slots and HTTP/2 sessions an attacker can take.
 *
 * - 300 stalled TLS / upgrade connections from an address outside
 *   allowedIps are refused at accept (bare close, counted 'ip') on every
 *   transport, so they take no handshake slot of the allowed peers, and the
 *   allowed client is served at once. On http2 and ws 4 of them (per
 *   address; 16 in all) go on through TLS / to their upgrade request, to
 *   get the 403 the Go pools answer with;
 * - one HTTP/2 connection that opens 256 `POST /stream` and never sends
 *   their first byte holds at most maxHandshakesPerConnection slots; another
 *   client gets its streams during the flood;
 * - a peer that sends half a frame and hangs up takes its session with it at
 *   once; a session that carries no stream is closed after
 *   handshakeTimeout; sessions are bounded per peer address.
 *
 * The attacker dials from 127.0.0.2, the real client from 127.0.0.1.
 */
import { describe, expect, it } from '@jest/globals';
import { ATTACKER_ADDRESS, h2HalfFrameFlood, h2StreamFlood, slowloris } from '../../bench/attacks.js';
import { createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { serverConfig, startKind, type Kind } from './support.js';

const scope = useTestScope();

function transportStats(stats: { transportStats: Record<string, unknown> }): Record<string, number> {
  return stats.transportStats as Record<string, number>;
}

describe.each<Kind>(['tls', 'http2', 'ws', 'wss'])('%s: 300 stalled connections from an address outside allowedIps', (kind) => {
  it('are refused at accept, before TLS or the upgrade: no slot of the allowed peers taken, the allowed client is served', async () => {
    // tcp/TLS refuses every one bare (as the Go pool does); http2 and ws let 4 through to answer 403.
    const heard = kind === 'tls' ? 0 : 4;
    const p = await scope.pair(startKind, kind, { allowedIps: '127.0.0.1', handshakeTimeout: 20_000 }, { minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20, maxBackoff: 200 });
    await p.client.waitForActive(2, 10_000);
    const stalled = await slowloris({ port: p.port, count: 300 });
    scope.defer(() => stalled.destroy());
    // The stalled connections are closed by the server at once, with nothing sent to them.
    await eventually(() => stalled.open === heard, 10_000, 'the server to close the connections from the refused address');
    expect({ opened: stalled.opened, bytesReceived: stalled.bytesReceived, ip: p.server.stats.refusals.ip ?? 0, handshaking: p.server.stats.handshaking }).toEqual({
      opened: 300,
      bytesReceived: 0,
      ip: 300 - heard,
      handshaking: heard,
    });
    // The allowed client still gets streams.
    for (let i = 0; i < 4; i++) {
      const { server, client } = await scope.handOff(p);
      client.write('x');
      expect((await readBytes(server, 1, 10_000)).toString()).toBe('x');
    }
  }, 60_000);
});

describe('http2: one connection opens 256 POST /stream and never sends their first byte', () => {
  it('holds at most maxHandshakesPerConnection slots; the rest are refused at once and another client is served during the flood', async () => {
    const p = await scope.pair(startKind, 'http2', { handshakeTimeout: 20_000 }, { minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20, maxBackoff: 200 });
    await p.client.waitForActive(2, 10_000);
    // Defaults: maxHandshakes 256, of which one connection may hold a quarter (64).
    const flood = await h2StreamFlood({ port: p.port, streams: 256 });
    scope.defer(() => flood.destroy());
    const refused = (): number => flood.statuses.filter((status) => status === 404).length;
    await eventually(() => refused() === 256 - 64, 10_000, 'the streams beyond the connection share to be refused');
    expect({ handshaking: p.server.stats.handshaking, connectionBusy: p.server.stats.refusals['connection-busy'] }).toEqual({ handshaking: 64, connectionBusy: 256 - 64 });
    // The flood still holds its 64 slots: a real client gets its streams all the same.
    for (let i = 0; i < 8; i++) {
      const { server, client } = await scope.handOff(p);
      client.write('y');
      expect((await readBytes(server, 1, 10_000)).toString()).toBe('y');
    }
    expect(flood.statuses.filter((status) => status === 0).length).toBe(64);
  }, 60_000);
});

describe('http2: sessions are counted and do not outlive their use', () => {
  it('a peer that sends half a frame and hangs up leaves no session behind (long before the idle timer)', async () => {
    const server = createServerPool(serverConfig('http2', { keepAlive: 30_000, handshakeTimeout: 20_000 }));
    await server.start();
    scope.defer(() => server.close());
    const port = server.address()!.port;
    const halfFrames = await h2HalfFrameFlood({ port, count: 100 });
    scope.defer(() => halfFrames.destroy());
    expect(halfFrames.opened).toBe(100);
    await eventually(() => transportStats(server.stats).sessions === 0 && transportStats(server.stats).connections === 0, 5000, 'every session to be gone');
    expect(transportStats(server.stats).sessionsOpened).toBeGreaterThan(0);
  }, 60_000);

  it('a session that carries no stream is closed after handshakeTimeout, counted "no-stream"', async () => {
    const HANDSHAKE_TIMEOUT = 1000;
    const server = createServerPool(serverConfig('http2', { keepAlive: 30_000, handshakeTimeout: HANDSHAKE_TIMEOUT }));
    await server.start();
    scope.defer(() => server.close());
    const flood = await h2StreamFlood({ port: server.address()!.port, streams: 0 });
    scope.defer(() => flood.destroy());
    await eventually(() => transportStats(server.stats).sessions === 1, 5000, 'the session to be up');
    await eventually(() => transportStats(server.stats).sessions === 0, HANDSHAKE_TIMEOUT + 5000, 'the idle session to be closed');
    expect(server.stats.refusals['no-stream']).toBe(1);
  }, 30_000);

  it('bounds sessions per peer address (maxSessionsPerPeer, 32 by default) while other addresses still connect', async () => {
    const p = await scope.pair(startKind, 'http2', { handshakeTimeout: 20_000 }, { minCap: 2, maxCap: 2, minIvl: 20, maxIvl: 20, maxBackoff: 200 });
    await p.client.waitForActive(2, 10_000);
    const idle = await slowloris({ port: p.port, count: 40, localAddress: ATTACKER_ADDRESS });
    scope.defer(() => idle.destroy());
    await eventually(() => idle.open === 32, 10_000, 'the connections beyond the share to be closed');
    expect(p.server.stats.refusals['peer-sessions']).toBe(8);
    const { server, client } = await scope.handOff(p);
    client.write('z');
    expect((await readBytes(server, 1, 10_000)).toString()).toBe('z');
  }, 60_000);
  it('a session from an address outside allowedIps gets its 403, then GOAWAY: it cannot sit on a session slot', async () => {
    const server = createServerPool(serverConfig('http2', { allowedIps: '127.0.0.1', handshakeTimeout: 20_000 }));
    await server.start();
    scope.defer(() => server.close());
    const flood = await h2StreamFlood({ port: server.address()!.port, streams: 1 });
    scope.defer(() => flood.destroy());
    await eventually(() => flood.statuses[0] === 403, 5000, 'the 403');
    await eventually(() => transportStats(server.stats).sessions === 0, 5000, `the session to be closed ${JSON.stringify(server.stats.transportStats)}`);
    expect({ ip: server.stats.refusals.ip, goawaysSent: transportStats(server.stats).goawaysSent }).toEqual({ ip: 1, goawaysSent: 1 });
  }, 30_000);

  it('bounds connections in total (maxSessions), from all addresses together', async () => {
    const server = createServerPool(serverConfig('http2', { maxSessions: 4, handshakeTimeout: 20_000 }));
    await server.start();
    scope.defer(() => server.close());
    const port = server.address()!.port;
    const first = await slowloris({ port, count: 3, localAddress: '127.0.0.2' });
    scope.defer(() => first.destroy());
    const second = await slowloris({ port, count: 3, localAddress: '127.0.0.3' });
    scope.defer(() => second.destroy());
    await eventually(() => first.open + second.open === 4, 10_000, 'the connections beyond maxSessions to be closed');
    expect({ sessions: server.stats.refusals.sessions, connections: transportStats(server.stats).connections }).toEqual({ sessions: 2, connections: 4 });
    expect(() => createServerPool(serverConfig('http2', { maxSessions: 4, maxSessionsPerPeer: 5 }))).toThrow(/maxSessionsPerPeer/);
  }, 30_000);
});
