import { describe, expect, it } from '@jest/globals';
import { InvalidIdError } from '../../lib/core/errors.js';
import { decodeId, encodeId, FIRST_ID, IdAllocator, isValidId, randomId } from '../../lib/core/ids.js';

describe('IDs', () => {
  it('draws 8 lowercase hex characters', () => {
    const ids = new Set(Array.from({ length: 1000 }, randomId));
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{8}$/);
    expect(ids.size).toBeGreaterThan(990);
  });

  it('issues 00000000 first when asked, then random IDs', () => {
    const held = new Set<string>();
    const allocator = new IdAllocator((id) => held.has(id), true);
    expect(allocator.next()).toBe(FIRST_ID);
    const second = allocator.next();
    expect(second).not.toBe(FIRST_ID);
    expect(isValidId(second)).toBe(true);
  });

  it('never issues 00000000 when not first-is-zero', () => {
    const draws = [FIRST_ID, 'aaaaaaaa'];
    const allocator = new IdAllocator(() => false, false, () => draws.shift()!);
    expect(allocator.next()).toBe('aaaaaaaa');
  });

  it('draws again on a collision with a held ID', () => {
    const held = new Set(['11111111', '22222222']);
    const draws = ['11111111', '22222222', '33333333'];
    const allocator = new IdAllocator((id) => held.has(id), false, () => draws.shift()!);
    expect(allocator.next()).toBe('33333333');
  });

  it('skips the pinned first ID if it is somehow held', () => {
    const allocator = new IdAllocator((id) => id === FIRST_ID, true, () => 'abcdef01');
    expect(allocator.next()).toBe('abcdef01');
  });

  it('gives up with a typed error when the source only repeats held IDs', () => {
    const allocator = new IdAllocator(() => true, false, () => '12345678');
    expect(() => allocator.next()).toThrow(InvalidIdError);
  });

  describe('wire forms', () => {
    it('hex8 round-trips as 8 ASCII bytes', () => {
      const bytes = encodeId('edc60f09', 'hex8');
      expect(bytes.toString('hex')).toBe('6564633630663039'); // as in wire-traces/pool-v105.txt
      expect(decodeId(bytes, 'hex8')).toBe('edc60f09');
    });

    it('raw4 round-trips as 4 raw bytes', () => {
      const bytes = encodeId('062bff90', 'raw4');
      expect(bytes).toEqual(Buffer.from([0x06, 0x2b, 0xff, 0x90])); // as in wire-traces/pool-latest.txt
      expect(decodeId(bytes, 'raw4')).toBe('062bff90');
    });

    it.each([
      ['uppercase hex', Buffer.from('EDC60F09')],
      ['non-hex ASCII', Buffer.from('edc60g09')],
      ['binary', Buffer.from([0, 1, 2, 3, 4, 5, 6, 7])],
      ['too short', Buffer.from('edc60f0')],
      ['too long', Buffer.from('edc60f091')],
    ])('hex8 rejects %s', (_what, bytes) => {
      expect(() => decodeId(bytes, 'hex8')).toThrow(InvalidIdError);
    });

    it('raw4 rejects a wrong length', () => {
      expect(() => decodeId(Buffer.from([1, 2, 3]), 'raw4')).toThrow(InvalidIdError);
    });
  });
});
