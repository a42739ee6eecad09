/** How the tunnel server tells a control stream from a data stream by its first bytes. */
import { describe, expect, it } from '@jest/globals';
import { encodeMessage } from '../../lib/tunnel/control/messages.js';
import { CONTROL_PREAMBLE } from '../../lib/tunnel/control/wire.js';
import { matchPreamble } from '../../lib/tunnel/tunnel-common.js';

const hello = Buffer.concat([CONTROL_PREAMBLE, encodeMessage({ type: 'hello', minVersion: 1, maxVersion: 1, name: '', routes: [] })]);

describe('matchPreamble', () => {
  it('claims the preamble followed by a HELLO frame header, and waits on every prefix of it', () => {
    expect(matchPreamble(hello)).toBe('claim');
    expect(matchPreamble(hello.subarray(0, 9))).toBe('claim');
    for (let n = 1; n < 9; n++) expect(matchPreamble(hello.subarray(0, n))).toBe('wait');
  });

  it('passes data that only starts like it: another frame type, an oversized length, other bytes', () => {
    expect(matchPreamble(Buffer.from('NTPC and then some text'))).toBe('pass');
    expect(matchPreamble(Buffer.concat([CONTROL_PREAMBLE, Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff])]))).toBe('pass');
    expect(matchPreamble(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('pass');
    expect(matchPreamble(Buffer.from('NTPX'))).toBe('pass');
    expect(matchPreamble(Buffer.from('NTPR\0\0\0\x01'))).toBe('pass'); // a reverse header is never written on an idle stream
  });

  it('keeps a forward connection\'s stream header (NTPF) and what follows for the taker; waits on its prefixes', () => {
    expect(matchPreamble(Buffer.from('NTPF\0\0\0\x07GET / HTTP/1.1'))).toBe('keep');
    expect(matchPreamble(Buffer.from('NTPF'))).toBe('keep');
    for (const prefix of ['N', 'NT', 'NTP']) expect(matchPreamble(Buffer.from(prefix))).toBe('wait');
  });
});
