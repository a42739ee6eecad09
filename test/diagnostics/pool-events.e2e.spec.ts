import { afterEach, describe, expect, it } from '@jest/globals';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { CHANNELS, type ChannelMessages, type ChannelName } from '../../lib/diagnostics/channels.js';
import { REFUSAL_REASONS } from '../../lib/core/transport.js';
import { KINDS, startKind, type Kind } from '../support/kinds.js';
import { eventually } from '../support/net.js';
import type { PoolPair } from '../support/pools.js';

/** The pool channels (the tunnel ones are not published yet). */
const POOL_CHANNELS = [
  CHANNELS.dialStart,
  CHANNELS.dialEnd,
  CHANNELS.dialError,
  CHANNELS.handshake,
  CHANNELS.handOff,
  CHANNELS.drop,
  CHANNELS.refusal,
  CHANNELS.sessionOpen,
  CHANNELS.sessionClose,
] as const;
type PoolChannel = (typeof POOL_CHANNELS)[number];
type Event = { [N in PoolChannel]: { channel: N; message: ChannelMessages[N] } }[PoolChannel];

const DROP_REASONS = ['error', 'end', 'close', 'stale', 'expired', 'duplicate', 'flush', 'shutdown', 'late', 'unexpected-data', 'tls-on-plain'];

/** Every pool channel subscribed; `until` resolves when the events seen so far pass a check (checked at each event). */
function record(pools: readonly string[]) {
  const events: Event[] = [];
  const checks = new Set<() => void>();
  const subscribers = POOL_CHANNELS.map((channel) => {
    const subscriber = (message: unknown): void => {
      if (!pools.includes((message as { pool: string }).pool)) return;
      events.push({ channel, message } as Event);
      for (const check of [...checks]) check();
    };
    diagnosticsChannel.subscribe(channel, subscriber);
    return () => diagnosticsChannel.unsubscribe(channel, subscriber);
  });
  return {
    events,
    of<N extends PoolChannel>(channel: N, role?: 'client' | 'server'): Array<ChannelMessages[N]> {
      return events.filter((e) => e.channel === channel && (role === undefined || e.message.role === role)).map((e) => e.message as ChannelMessages[N]);
    },
    until(what: string, check: () => boolean, timeout = 15_000): Promise<void> {
      if (check()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          checks.delete(run);
          reject(new Error(`timed out waiting for ${what}; events seen: ${events.map((e) => e.channel.slice(19)).join(', ')}`));
        }, timeout);
        const run = (): void => {
          if (!check()) return;
          clearTimeout(timer);
          checks.delete(run);
          resolve();
        };
        checks.add(run);
      });
    },
    stop(): void {
      for (const unsubscribe of subscribers) unsubscribe();
      checks.clear();
    },
  };
}

/** A connection that sends bytes no TLS server takes, and is closed by the server. */
function junk(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('this is not a TLS ClientHello\r\n\r\n'));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

const opened: Array<{ pair?: PoolPair; streams: Duplex[]; stop?: () => void }> = [];
afterEach(async () => {
  for (const { pair, streams, stop } of opened.splice(0)) {
    stop?.();
    for (const stream of streams) stream.destroy();
    await pair?.close();
  }
});

describe('diagnostics_channel events of the pools, over real sockets', () => {
  for (const kind of KINDS) {
    it(`${kind.name}: dials, handshakes, hand-offs, drops, refusals${kind.name === 'http2' ? ', sessions' : ''}, each with its payload; none once unsubscribed`, async () => {
      const name = kind.name;
      const names = [`server-${name}`, `client-${name}`];
      const recorder = record(names);
      const scope: (typeof opened)[number] = { streams: [], stop: () => recorder.stop() };
      opened.push(scope);
      // The server holds 2 streams at most; the client wants 3: its third dial is refused ('full').
      const pair = await startKind(name as Kind, { name: names[0], maxCap: 2 }, { name: names[1], minCap: 3, maxCap: 3 });
      scope.pair = pair;
      const { client, server } = pair;

      await recorder.until('a refused dial', () => recorder.of(CHANNELS.refusal).length > 0 && recorder.of(CHANNELS.dialError).length > 0);
      await client.waitForActive(2, 10_000);

      // Dials: each end or error pairs with its start, with a duration.
      const starts = recorder.of(CHANNELS.dialStart);
      const ends = recorder.of(CHANNELS.dialEnd);
      const errors = recorder.of(CHANNELS.dialError);
      expect(ends.length).toBeGreaterThanOrEqual(2);
      for (const end of [...ends, ...errors]) {
        expect(end).toMatchObject({ pool: names[1], role: 'client', transport: name });
        expect(starts.some((start) => start.dial === end.dial)).toBe(true);
        expect(end.durationMs).toBeGreaterThanOrEqual(0);
      }
      for (const end of ends) {
        expect(end.id).toMatch(/^[0-9a-f]{8}$/);
        // A ws stream does not expose its socket's peer.
        if (name !== 'ws' && name !== 'wss') expect(end.remoteAddress).toBe('127.0.0.1');
      }
      for (const error of errors) expect(error.code).toBe(error.error.code);

      // Refusals: the server's 'full', with the peer's address; a reason of the table.
      for (const refusal of recorder.of(CHANNELS.refusal)) {
        expect(refusal).toMatchObject({ pool: names[0], role: 'server', transport: name });
        expect(Object.keys(REFUSAL_REASONS)).toContain(refusal.reason);
      }
      expect(recorder.of(CHANNELS.refusal).find((r) => r.reason === 'full')).toMatchObject({ remoteAddress: '127.0.0.1' });

      // Handshakes (kinds whose connections have one in the front door): ok, timed; tcp/TLS name the stream's ID.
      const handshakes = recorder.of(CHANNELS.handshake);
      expect(handshakes.filter((h) => h.outcome === 'ok').length).toBeGreaterThanOrEqual(1);
      for (const handshake of handshakes) {
        expect(handshake).toMatchObject({ pool: names[0], role: 'server', transport: name, remoteAddress: '127.0.0.1' });
        expect(handshake.durationMs).toBeGreaterThanOrEqual(0);
      }
      if (name === 'tcp' || name === 'tls') {
        const endIds = ends.map((end) => end.id);
        for (const handshake of handshakes.filter((h) => h.outcome === 'ok')) expect(endIds).toContain(handshake.id);
      }

      // Hand-off: one event per side for the ID both took, with its waits.
      const [id, serverStream] = await server.incomingGet(10_000);
      scope.streams.push(serverStream);
      const clientStream = await client.outgoingGet(id, 10_000);
      scope.streams.push(clientStream);
      await recorder.until('both hand-offs', () => recorder.of(CHANNELS.handOff).length >= 2);
      const handOffs = recorder.of(CHANNELS.handOff);
      expect(handOffs.map((h) => [h.role, h.id, h.pool]).sort()).toEqual([['client', id, names[1]], ['server', id, names[0]]]);
      for (const handOff of handOffs) {
        expect(handOff.transport).toBe(name);
        expect(handOff.waitedMs).toBeGreaterThanOrEqual(0);
        expect(handOff.idleMs).toBeGreaterThanOrEqual(0);
      }

      // A get that waits: with nothing idle on the server, its get is served by the client's refill.
      while (server.stats.active > 0) scope.streams.push((await server.incomingGet(10_000))[1]);
      const served = recorder.of(CHANNELS.handOff, 'server').length;
      const [nextId, nextServer] = await server.incomingGet(10_000);
      scope.streams.push(nextServer);
      await recorder.until('the waiting get\'s hand-off', () => recorder.of(CHANNELS.handOff, 'server').length > served);
      expect(recorder.of(CHANNELS.handOff, 'server')[served]).toMatchObject({ id: nextId, pool: names[0] });

      // Drops: flushing the client closes its idle streams, each named with its reason and ID.
      const idle = client.stats.active;
      expect(client.flush()).toBe(idle);
      const drops = recorder.of(CHANNELS.drop, 'client').filter((d) => d.reason === 'flush');
      expect(drops.length).toBe(idle);
      for (const drop of recorder.of(CHANNELS.drop)) {
        expect(DROP_REASONS).toContain(drop.reason);
        expect(drop.transport).toBe(name);
      }
      for (const drop of drops) expect(drop.id).toMatch(/^[0-9a-f]{8}$/);

      // A failed handshake in the front door (TLS kinds: bytes that are not TLS).
      if (kind.tls) {
        await junk(pair.port);
        await recorder.until('a failed handshake', () => recorder.of(CHANNELS.handshake).some((h) => h.outcome === 'failed'));
        const failed = recorder.of(CHANNELS.handshake).find((h) => h.outcome === 'failed')!;
        expect(failed).toMatchObject({ reason: 'tls', remoteAddress: '127.0.0.1' });
        expect(failed.durationMs).toBeGreaterThanOrEqual(0);
        expect(recorder.of(CHANNELS.refusal).find((r) => r.reason === 'tls')).toMatchObject({ remoteAddress: '127.0.0.1' });
      }

      if (name === 'http2') {
        const opens = recorder.of(CHANNELS.sessionOpen);
        expect(opens.some((o) => o.role === 'client' && o.session === 1 && o.remoteAddress === '127.0.0.1')).toBe(true);
        expect(opens.some((o) => o.role === 'server' && o.remoteAddress === '127.0.0.1')).toBe(true);
      }

      // Unsubscribed: dials, drops, handshakes, refusals and a server take go on, and nothing more arrives.
      recorder.stop();
      const seen = recorder.events.length;
      const dials = client.stats.totals.dials;
      await client.waitForActive(1, 10_000);
      client.flush();
      await eventually(() => client.stats.totals.dials > dials + 1, 10_000, 'new dials');
      await client.waitForActive(1, 10_000);
      scope.streams.push((await server.incomingGet(10_000))[1]);
      expect(recorder.events.length).toBe(seen);
    });
  }

  it('a client get that waits for its ID: the hand-off says how long it waited, and that the stream was not idle', async () => {
    const names = ['server-wait', 'client-wait'];
    const recorder = record(names);
    const scope: (typeof opened)[number] = { streams: [], stop: () => recorder.stop() };
    opened.push(scope);
    // ws issues 00000000 first: the client asks for it before its first dial has even connected.
    const pair = await startKind('ws', { name: names[0] }, { name: names[1], minCap: 1, maxCap: 1 });
    scope.pair = pair;
    const asked = pair.client.outgoingGet('00000000', 10_000);
    expect(pair.client.active).toBe(0);
    scope.streams.push(await asked);
    await recorder.until('the client hand-off', () => recorder.of(CHANNELS.handOff, 'client').length === 1);
    const [handOff] = recorder.of(CHANNELS.handOff, 'client');
    const [end] = recorder.of(CHANNELS.dialEnd);
    expect(handOff).toMatchObject({ id: '00000000', pool: names[1], transport: 'ws' });
    // It waited about as long as the dial that brought its stream took (which started just before the get), and the stream was idle for next to nothing.
    expect(handOff!.waitedMs).toBeGreaterThan(0);
    expect(handOff!.waitedMs).toBeLessThanOrEqual(end!.durationMs + 1000);
    expect(handOff!.idleMs).toBeGreaterThanOrEqual(0);
    expect(handOff!.idleMs).toBeLessThan(handOff!.waitedMs);
  });

  it('http2: a session closes with its figures when its pools close', async () => {
    const names = ['server-h2-close', 'client-h2-close'];
    const recorder = record(names);
    const scope: (typeof opened)[number] = { streams: [], stop: () => recorder.stop() };
    opened.push(scope);
    const pair = await startKind('http2', { name: names[0] }, { name: names[1], minCap: 2, maxCap: 2 });
    await pair.client.waitForActive(2, 10_000);
    const [id, serverStream] = await pair.server.incomingGet(10_000);
    const clientStream = await pair.client.outgoingGet(id, 10_000);
    clientStream.destroy();
    serverStream.destroy();
    await pair.close();
    await recorder.until('both sessions closed', () => new Set(recorder.of(CHANNELS.sessionClose).map((c) => c.role)).size === 2);
    for (const close of recorder.of(CHANNELS.sessionClose)) {
      const open = recorder.of(CHANNELS.sessionOpen, close.role).find((o) => o.session === close.session);
      expect(open).toBeDefined();
      expect(close.streams).toBeGreaterThanOrEqual(2);
      expect(close.durationMs).toBeGreaterThanOrEqual(0);
      expect(typeof close.reason).toBe('string');
    }
  });
});

// Keeps the type import honest: every pool channel is a channel name.
const _names: readonly ChannelName[] = POOL_CHANNELS;
void _names;
