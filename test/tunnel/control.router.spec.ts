import { describe, expect, it } from '@jest/globals';
import { InvalidOptionsError } from '../../lib/core/errors.js';
import { LocalBus, LocalControlRouter, type Envelope } from '../../lib/tunnel/router.js';

describe('LocalControlRouter: "client C: open stream X" between instances', () => {
  it('routes an OPEN from the instance that took the public connection to the one holding the channel, and the answer back', async () => {
    const bus = new LocalBus();
    const a = new LocalControlRouter(bus, 'a');
    const b = new LocalControlRouter(bus, 'b');
    const onChannel: Envelope[] = [];
    const answers: Envelope[] = [];
    const attached = await b.attach('key:alice', (envelope) => void onChannel.push(envelope));
    expect(attached.attached).toBe(true);
    a.onAnswer((envelope) => void answers.push(envelope));
    expect(await a.toClient('key:alice', { type: 'open', conn: 1, id: 'a1b2c3d4', route: 'web' })).toBe(true);
    expect(onChannel).toEqual([{ from: 'a', client: 'key:alice', message: { type: 'open', conn: 1, id: 'a1b2c3d4', route: 'web' } }]);
    expect(await b.toInstance('a', 'key:alice', { type: 'end', conn: 1, id: 'a1b2c3d4', sent: 5, received: 3, how: 'end' })).toBe(true);
    expect(answers).toEqual([{ from: 'b', client: 'key:alice', message: { type: 'end', conn: 1, id: 'a1b2c3d4', sent: 5, received: 3, how: 'end' } }]);
    await Promise.all([a.close(), b.close()]);
  });

  it('says false when no instance holds the client, or the answering instance is gone', async () => {
    const bus = new LocalBus();
    const a = new LocalControlRouter(bus, 'a');
    expect(await a.toClient('key:nobody', { type: 'flush' })).toBe(false);
    expect(await a.toInstance('gone', 'key:x', { type: 'flush' })).toBe(false);
    const attached = await a.attach('key:x', () => undefined);
    if (attached.attached) attached.detach();
    expect(await a.toClient('key:x', { type: 'flush' })).toBe(false);
    await a.close();
  });

  it('one holder per client: a second attach is refused, or takes over and tells the first', async () => {
    const bus = new LocalBus();
    const a = new LocalControlRouter(bus, 'a');
    const b = new LocalControlRouter(bus, 'b');
    const taken: string[] = [];
    await a.attach('key:alice', () => undefined, { onTakenOver: (by) => taken.push(by) });
    expect(await b.attach('key:alice', () => undefined)).toEqual({ attached: false, holder: 'a' });
    const delivered: string[] = [];
    expect((await b.attach('key:alice', (e) => void delivered.push(e.from), { policy: 'takeover' })).attached).toBe(true);
    expect(taken).toEqual(['b']);
    await a.toClient('key:alice', { type: 'flush' });
    expect(delivered).toEqual(['a']);
    await b.close(); // gives its clients up
    expect(await a.toClient('key:alice', { type: 'flush' })).toBe(false);
    await a.close();
    expect(() => new LocalControlRouter(bus, 'a')).not.toThrow();
    expect(() => new LocalControlRouter(bus, 'a')).toThrow(InvalidOptionsError);
  });
});
