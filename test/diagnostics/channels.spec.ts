import { describe, expect, it } from '@jest/globals';
import diagnosticsChannel from 'node:diagnostics_channel';
import { CHANNELS, channelOf, publish, type ChannelMessages, type ChannelName } from '../../lib/diagnostics/channels.js';

const pool = { pool: 'edge', transport: 'tcp' } as const;
const dial = { ...pool, role: 'client', dial: 1 } as const;
const session = { ...pool, role: 'client', session: 1 } as const;
const connection = { route: 'web', pool: 'edge', role: 'server', client: 'key:site-a', id: '7', connection: 1, openLatencyMs: 0.4 } as const;

/** One sample payload per channel: the table is typed by ChannelMessages, so a channel without a sample does not compile. */
const samples: { [N in ChannelName]: ChannelMessages[N] } = {
  'nestjs-tunnel-pool:dial:start': dial,
  'nestjs-tunnel-pool:dial:end': { ...dial, id: '1', durationMs: 2 },
  'nestjs-tunnel-pool:dial:error': { ...dial, error: Object.assign(new Error('refused'), { code: 'POOL_ERR_DIAL' }) as never, code: 'POOL_ERR_DIAL', durationMs: 1 },
  'nestjs-tunnel-pool:handshake': { ...pool, role: 'server', outcome: 'ok', id: '1', durationMs: 1 },
  'nestjs-tunnel-pool:hand-off': { ...pool, role: 'server', id: '1', waitedMs: 0, idleMs: 5 },
  'nestjs-tunnel-pool:drop': { ...pool, role: 'client', id: '1', reason: 'flush' },
  'nestjs-tunnel-pool:refusal': { ...pool, role: 'server', reason: 'full' },
  'nestjs-tunnel-pool:session:open': session,
  'nestjs-tunnel-pool:session:close': { ...session, streams: 3, durationMs: 10, reason: 'close' },
  'nestjs-tunnel-pool:tunnel:connection:open': connection,
  'nestjs-tunnel-pool:tunnel:connection:close': { ...connection, bytesIn: 10, bytesOut: 20, durationMs: 3 },
};

describe('diagnostics_channel events', () => {
  it('one named channel per event, each received by a plain diagnostics_channel subscriber with its payload', () => {
    const names = Object.values(CHANNELS);
    expect(new Set(names).size).toBe(names.length);
    expect(names.sort()).toEqual(Object.keys(samples).sort());
    for (const name of names) {
      expect(name).toMatch(/^nestjs-tunnel-pool:[a-z-]+(:[a-z-]+)*$/);
      expect(channelOf(name)).toBe(diagnosticsChannel.channel(name));
    }

    const received: Array<[string, unknown]> = [];
    const subscribers = names.map((name) => {
      const subscriber = (message: unknown, channel: string | symbol): void => void received.push([String(channel), message]);
      diagnosticsChannel.subscribe(name, subscriber);
      return () => diagnosticsChannel.unsubscribe(name, subscriber);
    });
    try {
      for (const name of names) publish(name, () => samples[name]);
    } finally {
      for (const unsubscribe of subscribers) unsubscribe();
    }
    expect(received).toEqual(names.map((name) => [name, samples[name]]));
  });

  it('builds no payload when nobody subscribes', () => {
    let built = 0;
    for (const name of Object.values(CHANNELS)) {
      expect(diagnosticsChannel.hasSubscribers(name)).toBe(false);
      publish(name, () => {
        built++;
        return samples[name];
      });
    }
    expect(built).toBe(0);
  });
});
