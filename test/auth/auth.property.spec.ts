import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { PeerCertificate } from 'node:tls';
import {
  AuthHandshakeError, HeaderClientAuth, HeaderServerAuth, TCP_AUTH_MAGIC, TcpAuthType, TcpClientAuth, TcpServerAuth, encodeAuthRequestHeader,
  encodeAuthResponseHeader, parseAuthRequestHeader, parseAuthResponseHeader, parseTcpAuthMessage, resolveClientAuth, resolveServerAuth,
} from '../../lib/auth/index.js';
import { createPinnedIdentityCheck, createSelfSignedCertificate, parseFingerprint } from '../../lib/certs/index.js';
import { chunk, runs } from '../properties/fc.js';
import { KEY_A } from './auth-support.js';

const KEY = KEY_A;
const clientAuth = resolveClientAuth({ key: KEY })!;
const serverAuth = resolveServerAuth({ key: KEY })!;
const CHALLENGE_HEAD = Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([1, TcpAuthType.CHALLENGE])]);
const PROOF_HEAD = Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([1, TcpAuthType.PROOF])]);

/** Bytes that look like an auth message more often than noise: a real header (or a near miss) and anything after it. */
const messageLike = (head: Buffer) =>
  fc.oneof(
    fc.uint8Array({ maxLength: 120 }),
    fc.tuple(fc.nat({ max: head.length }), fc.uint8Array({ maxLength: 100 })).map(([keep, tail]) => new Uint8Array(Buffer.concat([head.subarray(0, keep), tail]))),
    fc.tuple(fc.nat({ max: head.length - 1 }), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 100 })).map(([at, byte, tail]) => {
      const bytes = Buffer.concat([head, tail]);
      bytes[at] = byte;
      return new Uint8Array(bytes);
    }),
  );
const cuts = fc.array(fc.nat({ max: 200 }), { maxLength: 6 });

describe('auth parsers never crash and never authenticate arbitrary bytes', () => {
  it('parseTcpAuthMessage: any bytes, any type → need / message / invalid, never a throw', () => {
    fc.assert(
      fc.property(messageLike(PROOF_HEAD), fc.constantFrom(TcpAuthType.CHALLENGE, TcpAuthType.PROOF, TcpAuthType.ACCEPT), (bytes, type) => {
        const parsed = parseTcpAuthMessage(bytes, type);
        expect(['need', 'message', 'invalid']).toContain(parsed.kind);
      }),
      runs(500),
    );
  });

  it('tcp server: arbitrary bytes in arbitrary pieces are never accepted and never throw', () => {
    fc.assert(
      fc.property(messageLike(PROOF_HEAD), cuts, (bytes, at) => {
        const server = new TcpServerAuth(serverAuth, 'raw4');
        let kind = 'need';
        for (const piece of chunk(bytes, at)) {
          kind = server.push(piece).kind;
          if (kind !== 'need') break;
        }
        expect(kind).not.toBe('accepted');
      }),
      runs(500),
    );
  });

  it('tcp server: a real proof with one byte changed, cut short or followed by garbage is accepted only when intact', () => {
    fc.assert(
      fc.property(fc.nat({ max: 69 }), fc.integer({ min: 1, max: 255 }), fc.constantFrom('flip', 'truncate', 'extend'), fc.uint8Array({ minLength: 1, maxLength: 8 }), (at, delta, how, extra) => {
        const server = new TcpServerAuth(serverAuth, 'raw4');
        const step = new TcpClientAuth(clientAuth, 'raw4').push(server.challenge);
        if (step.kind !== 'send') throw new Error('no proof');
        const bytes = Buffer.from(step.bytes);
        if (how === 'flip') bytes[at] = (bytes[at]! + delta) & 0xff;
        const sent = how === 'truncate' ? bytes.subarray(0, at) : how === 'extend' ? Buffer.concat([bytes, extra]) : bytes;
        const verdict = server.push(sent);
        // Extra bytes after an intact proof are the stream's first bytes: accepted, and handed back.
        if (how === 'extend') expect(verdict).toMatchObject({ kind: 'accepted', rest: Buffer.from(extra) });
        else expect(verdict.kind).not.toBe('accepted');
      }),
      runs(300),
    );
  });

  it('tcp client: arbitrary server bytes give need, a proof (only for a real challenge header), or an AuthHandshakeError; never done', () => {
    fc.assert(
      fc.property(messageLike(CHALLENGE_HEAD), messageLike(Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([1, TcpAuthType.ACCEPT])])), cuts, (first, second, at) => {
        const c = new TcpClientAuth(clientAuth, 'raw4');
        try {
          for (const piece of chunk(new Uint8Array(Buffer.concat([first, second])), at)) {
            const step = c.push(piece);
            expect(step.kind).not.toBe('done');
            if (step.kind === 'send') expect(Buffer.from(first).subarray(0, 6).equals(CHALLENGE_HEAD)).toBe(true);
          }
        } catch (error) {
          expect(error).toBeInstanceOf(AuthHandshakeError);
        }
      }),
      runs(500),
    );
  });

  it('header parsers: any value → undefined or a canonical parse that encodes back to the same text', () => {
    const headerLike = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.string({ unit: fc.constantFrom(...'v1.0123456789-_AZaz=+/ '), maxLength: 100 }),
      fc.tuple(fc.nat(), fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ minLength: 32, maxLength: 32 })).map(([seq, nonce, proof]) =>
        encodeAuthRequestHeader({ seq, nonce: Buffer.from(nonce), proof: Buffer.from(proof) })),
      fc.anything(),
    );
    fc.assert(
      fc.property(headerLike, (value) => {
        const request = parseAuthRequestHeader(value);
        if (request) expect(encodeAuthRequestHeader(request)).toBe(value);
        const response = parseAuthResponseHeader(value);
        if (response) expect(encodeAuthResponseHeader(response)).toBe(value);
      }),
      runs(1000),
    );
  });

  it('header check: arbitrary values and edited real headers never authenticate', () => {
    const server = new HeaderServerAuth(serverAuth, 'ws');
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 120 }), fc.anything()), fc.nat({ max: 95 }), fc.constantFrom(...'0123456789-_Aa.'), (noise, at, char) => {
        expect(server.connection().check(noise).ok).toBe(false);
        const header = new HeaderClientAuth(clientAuth, 'ws').proof().header;
        const edited = header.slice(0, at % header.length) + char + header.slice((at % header.length) + 1);
        const check = server.connection().check(edited);
        if (edited !== header) expect(check.ok).toBe(false);
      }),
      runs(500),
    );
  });

  it('parseFingerprint: any string → 32 bytes or an InvalidOptionsError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 130 }), fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF:'), maxLength: 100 }), fc.anything()), (text) => {
        try {
          expect(parseFingerprint(text)).toHaveLength(32);
        } catch (error) {
          expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS' });
        }
      }),
      runs(1000),
    );
  });

  it('a pinned check on arbitrary certificate bytes returns an error, never throws, never accepts', () => {
    const check = createPinnedIdentityCheck(createSelfSignedCertificate().fingerprint.certificate.hex);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (raw) => {
        expect(check('localhost', { raw: Buffer.from(raw) } as PeerCertificate)).toBeInstanceOf(Error);
      }),
      runs(300),
    );
  });
});
