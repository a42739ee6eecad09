/**
 * The 8-byte header a tunnel client writes first on every tunnelled stream
 * (NTPR/NTPF and the conn): exact bytes, and a reader fed arbitrary bytes in
 * arbitrary chunks never crashes, accepts exactly the valid headers, and
 * leaves every byte after the header for the forwarding.
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { PassThrough } from 'node:stream';
import { decodeStreamHeader, encodeStreamHeader, readStreamHeader } from '../../lib/tunnel/stream-header.js';
import { runs } from '../properties/fc.js';

describe('tunnel stream header', () => {
  it('exact bytes: NTPR / NTPF, then the conn as u32 big-endian', () => {
    expect(encodeStreamHeader({ direction: 'reverse', conn: 7 }).toString('hex')).toBe('4e545052' + '00000007');
    expect(encodeStreamHeader({ direction: 'forward', conn: 0xffff_ffff }).toString('hex')).toBe('4e545046' + 'ffffffff');
    expect(decodeStreamHeader(Buffer.from('4e54504600000102', 'hex'))).toEqual({ direction: 'forward', conn: 258 });
  });

  it('the reader: arbitrary bytes in arbitrary chunks: a valid header and everything after it intact, or a typed error', async () => {
    const valid = fc.record({ direction: fc.constantFrom('reverse' as const, 'forward' as const), conn: fc.integer({ min: 0, max: 0xffff_ffff }) }).map((h) => encodeStreamHeader(h));
    const start = fc.oneof(valid, fc.uint8Array({ maxLength: 12 }).map((bytes) => Buffer.from(bytes)));
    await fc.assert(
      fc.asyncProperty(start, fc.uint8Array({ maxLength: 40 }), fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 8 }), fc.boolean(), async (head, tail, cuts, end) => {
        const bytes = Buffer.concat([head, Buffer.from(tail)]);
        const stream = new PassThrough();
        const reading = readStreamHeader(stream, 2000).then(
          (header) => ({ header }),
          (error: { code?: string }) => ({ code: error.code }),
        );
        let offset = 0;
        for (const size of cuts) {
          if (offset >= bytes.length) break;
          stream.write(bytes.subarray(offset, offset + size));
          offset += size;
        }
        if (offset < bytes.length) stream.write(bytes.subarray(offset));
        if (end) stream.end();
        else if (bytes.length < 8) stream.destroy();
        const outcome = await reading;
        let expected: ReturnType<typeof decodeStreamHeader> | undefined;
        try {
          expected = bytes.length >= 8 ? decodeStreamHeader(bytes.subarray(0, 8)) : undefined;
        } catch {
          expected = undefined;
        }
        if (expected) {
          expect(outcome).toEqual({ header: expected });
          // Every byte after the header is still there for the forwarding.
          const rest: Buffer[] = [];
          stream.on('data', (chunk: Buffer) => rest.push(chunk));
          if (!end) stream.end();
          await new Promise((resolve) => stream.once('end', resolve));
          expect(Buffer.concat(rest).equals(bytes.subarray(8))).toBe(true);
        } else {
          expect(['POOL_ERR_CONTROL_PROTOCOL', 'ECONNRESET']).toContain((outcome as { code?: string }).code);
          stream.destroy();
        }
      }),
      runs(300),
    );
  });

  it('the reader gives up at its deadline, or when its signal aborts', async () => {
    const silent = new PassThrough();
    await expect(readStreamHeader(silent, 50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    const controller = new AbortController();
    const reading = readStreamHeader(new PassThrough(), 10_000, controller.signal);
    controller.abort(new Error('given up'));
    await expect(reading).rejects.toThrow('given up');
  });
});
