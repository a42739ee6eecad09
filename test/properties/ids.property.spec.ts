import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { decodeId, encodeId, idWireLength, isValidId, type IdWireForm } from '../../lib/core/ids.js';

/** The pattern every accepted ID must match, written out again here on purpose. */
const ID = /^[0-9a-f]{8}$/;
const HEX = '0123456789abcdef';

/** What decodeId throws must be the typed refusal, nothing else. */
function outcome(bytes: Uint8Array, form: IdWireForm): { id: string } | { code: string } {
  try {
    return { id: decodeId(Buffer.from(bytes), form) };
  } catch (error) {
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_ID', name: 'InvalidIdError' });
    return { code: (error as { code: string }).code };
  }
}

/** Bytes that look like an ID more often than uniform noise would. */
const idLike = fc.oneof(
  fc.uint8Array({ minLength: 0, maxLength: 16 }),
  fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFgx \n\0'), minLength: 0, maxLength: 12 }).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
  fc.string({ unit: fc.constantFrom(...HEX), minLength: 8, maxLength: 8 }).map((s) => new Uint8Array(Buffer.from(s, 'latin1'))),
  // A valid ID with one byte swapped for anything (uppercase, non-ASCII, NUL...).
  fc
    .tuple(fc.string({ unit: fc.constantFrom(...HEX), minLength: 8, maxLength: 8 }), fc.nat({ max: 7 }), fc.integer({ min: 0, max: 255 }))
    .map(([s, at, byte]) => {
      const bytes = Buffer.from(s, 'latin1');
      bytes[at] = byte;
      return new Uint8Array(bytes);
    }),
);

describe('decodeId (property)', () => {
  it('hex8: accepts exactly 8 lowercase ASCII hex bytes; the ID round-trips through the wire form', () => {
    fc.assert(
      fc.property(idLike, (bytes) => {
        const result = outcome(bytes, 'hex8');
        const text = Buffer.from(bytes).toString('latin1');
        const valid = bytes.length === 8 && ID.test(text);
        if ('id' in result) {
          expect(valid).toBe(true);
          expect(result.id).toMatch(ID);
          expect(isValidId(result.id)).toBe(true);
          expect(encodeId(result.id, 'hex8').equals(Buffer.from(bytes))).toBe(true);
        } else {
          expect(valid).toBe(false);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it('raw4: accepts any 4 bytes and no other length; the ID round-trips through the wire form', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 12 }), (bytes) => {
        const result = outcome(bytes, 'raw4');
        if ('id' in result) {
          expect(bytes.length).toBe(4);
          expect(result.id).toMatch(ID);
          expect(encodeId(result.id, 'raw4').equals(Buffer.from(bytes))).toBe(true);
        } else {
          expect(bytes.length).not.toBe(4);
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('encodeId then decodeId is the identity on valid IDs, in both forms', () => {
    const validId = fc.string({ unit: fc.constantFrom(...HEX), minLength: 8, maxLength: 8 });
    fc.assert(
      fc.property(validId, fc.constantFrom<IdWireForm>('hex8', 'raw4'), (id, form) => {
        const wire = encodeId(id, form);
        expect(wire.length).toBe(idWireLength(form));
        expect(decodeId(wire, form)).toBe(id);
      }),
      { numRuns: 2000 },
    );
  });

  it.each([
    ['uppercase hex', Buffer.from('ABCDEF01', 'latin1')],
    ['a trailing newline inside the 8 bytes', Buffer.from('abcdef0\n', 'latin1')],
    ['NUL bytes', Buffer.alloc(8)],
    ['latin1 lookalikes of hex digits', Buffer.from([0xe0, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x30])],
    ['9 bytes', Buffer.from('abcdef012', 'latin1')],
    ['7 bytes', Buffer.from('abcdef0', 'latin1')],
  ])('hex8 refuses %s with POOL_ERR_INVALID_ID', (_what, bytes) => {
    expect(() => decodeId(bytes, 'hex8')).toThrow(expect.objectContaining({ code: 'POOL_ERR_INVALID_ID' }) as never);
  });
});
