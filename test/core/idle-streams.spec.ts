import { describe, expect, it } from '@jest/globals';
import { PassThrough, type Duplex } from 'node:stream';
import { IdleStreams, type DropReason } from '../../lib/core/idle-streams.js';

describe('IdleStreams.destroyAll', () => {
  it('skips an idle stream that a drop handler took out while the others were being destroyed', () => {
    const dropped: Array<[string, DropReason]> = [];
    let rescued: Duplex | undefined;
    const idle: IdleStreams = new IdleStreams((id, reason) => {
      dropped.push([id, reason]);
      if (id === 'a') rescued = idle.take('b'); // a handler reacting to the drop by taking another stream
    });
    const a = new PassThrough();
    const b = new PassThrough();
    idle.add('a', a);
    idle.add('b', b);
    expect(() => idle.destroyAll('shutdown')).not.toThrow();
    expect(dropped).toEqual([['a', 'shutdown']]);
    expect(a.destroyed).toBe(true);
    expect(rescued).toBe(b);
    expect(b.destroyed).toBe(false);
    expect(idle.size).toBe(0);
    b.destroy();
  });
});
