import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { Disposers, listen } from '../../lib/core/listeners.js';

describe('listen()', () => {
  it('adds every handler and its disposer removes exactly those, once', () => {
    const emitter = new EventEmitter();
    const other = (): void => undefined;
    emitter.on('close', other);
    const seen: string[] = [];
    const stop = listen(emitter, { data: (chunk: string) => seen.push(chunk), close: () => seen.push('close') });
    emitter.emit('data', 'a');
    emitter.emit('close');
    stop();
    stop();
    emitter.emit('data', 'b');
    expect(seen).toEqual(['a', 'close']);
    expect(emitter.listenerCount('data')).toBe(0);
    expect(emitter.listeners('close')).toEqual([other]);
  });

  it('Disposers undoes in reverse order, each once', () => {
    const order: number[] = [];
    const all = new Disposers();
    all.add(() => order.push(1));
    all.add(() => order.push(2));
    all.dispose();
    all.dispose();
    expect(order).toEqual([2, 1]);
  });
});
