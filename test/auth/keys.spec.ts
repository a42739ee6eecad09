import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import {
  AuthHandshakeError, AuthRefusedError, MAX_KEYS, deriveKeyId, estimateEntropyBits, generateAuthKey, resolveClientAuth, resolveServerAuth,
} from '../../lib/auth/index.js';
import { KEY_A, KEY_B } from './auth-support.js';

const [KEY, OTHER] = [KEY_A, KEY_B];

/** The error `fn` throws, with everything a log could show of it. */
function failure(fn: () => unknown): { code?: string; option?: string; text: string } {
  try {
    fn();
  } catch (error) {
    const e = error as { code?: string; option?: string; message: string; stack?: string };
    return { code: e.code, option: e.option, text: `${e.message}\n${e.stack ?? ''}\n${inspect(error)}\n${JSON.stringify(error)}` };
  }
  throw new Error('expected a throw');
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'h13e-keys-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('key material', () => {
  it('no auth option is no authentication (the default wire)', () => {
    expect(resolveClientAuth(undefined)).toBeUndefined();
    expect(resolveServerAuth(undefined)).toBeUndefined();
  });

  it('a key from the option, an env var or a file (trimmed) is the same key with the same derived id', () => {
    const file = path.join(dir, 'key');
    writeFileSync(file, `  ${KEY}\n`);
    const ids = [
      resolveClientAuth({ key: KEY })!.key.id,
      resolveClientAuth({ key: Buffer.from(KEY) })!.key.id,
      resolveClientAuth({ key: { env: 'TUNNEL_KEY' } }, 'auth', { TUNNEL_KEY: `${KEY}\n` })!.key.id,
      resolveClientAuth({ key: { file } })!.key.id,
      resolveClientAuth({ key: { key: KEY } })!.key.id,
    ];
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).toBe(deriveKeyId(Buffer.from(KEY)));
    expect(ids[0]).toMatch(/^k-[0-9a-f]{12}$/);
    expect(ids[0]).not.toContain(KEY.slice(0, 6));
    expect(resolveClientAuth({ key: { id: 'edge-2026', key: KEY } })!.key.id).toBe('edge-2026');
  });

  it('defaults: channel binding on; server clock skew 120 s, replay cache 65 536', () => {
    expect(resolveClientAuth({ key: KEY })!.channelBinding).toBe(true);
    const server = resolveServerAuth({ key: KEY })!;
    expect(server).toMatchObject({ channelBinding: true, maxClockSkew: 120_000, replayCacheSize: 65_536 });
    expect(resolveServerAuth({ key: KEY, channelBinding: false, maxClockSkew: 5_000, replayCacheSize: 100 })).toMatchObject({
      channelBinding: false, maxClockSkew: 5_000, replayCacheSize: 100,
    });
  });

  it('a server takes several keys for a rotation, ids derived or explicit, each distinct', () => {
    const server = resolveServerAuth({ key: [KEY, { id: 'next', key: OTHER }] })!;
    expect(server.keys.map((k) => k.id)).toEqual([deriveKeyId(Buffer.from(KEY)), 'next']);
  });

  it.each([
    ['a short key', { key: 'short-key' }, 'auth.key', /has 9 bytes, expected at least 16/],
    ['a repetitive key', { key: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' }, 'auth.key', /too predictable/],
    ['a placeholder', { key: 'changemechangeme' }, 'auth.key', /too predictable/],
    ['an empty Buffer', { key: Buffer.alloc(0) }, 'auth.key', /empty/],
    ['no key', {}, 'auth.key', /set the shared key/],
    ['a number', { key: 42 }, 'auth.key', /expected a key/],
    ['two sources', { key: { key: KEY, env: 'X' } }, 'auth.key', /exactly one of key, env or file/],
    ['an unknown key field', { key: { key: KEY, secret: 1 } }, 'auth.key.secret', /unknown option/],
    ['a bad id', { key: { id: 'has space', key: KEY } }, 'auth.key.id', /1 to 64 characters/],
    ['an unset env var', { key: { env: 'H13E_NOT_SET_ANYWHERE' } }, 'auth.key.env', /H13E_NOT_SET_ANYWHERE is not set/],
    ['a missing file', { key: { file: '/nonexistent/h13e/key' } }, 'auth.key.file', /cannot read "\/nonexistent\/h13e\/key": ENOENT/],
    ['an array on a client', { key: [KEY, OTHER] }, 'auth.key', /one key/],
    ['a typo', { key: KEY, chanelBinding: false }, 'auth.chanelBinding', /did you mean "channelBinding"/],
    ['not an object', 'just-a-string-key-here', 'auth', /expected \{ key \}/],
  ])('client: %s is an InvalidOptionsError naming the option', (_name, input, option, message) => {
    const error = failure(() => resolveClientAuth(input, 'auth', {}));
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option });
    expect(error.text).toMatch(message);
  });

  it.each([
    ['no keys', { key: [] }, 'auth.key', /1 to 16/],
    ['too many keys', { key: Array.from({ length: MAX_KEYS + 1 }, () => generateAuthKey()) }, 'auth.key', /1 to 16/],
    ['one key twice', { key: [KEY, KEY] }, 'auth.key[1]', /used twice/],
    ['one id twice', { key: [{ id: 'a', key: KEY }, { id: 'a', key: OTHER }] }, 'auth.key[1]', /used twice/],
    ['one key under two ids', { key: [{ id: 'a', key: KEY }, { id: 'b', key: KEY }] }, 'auth.key[1]', /the same key as auth.key\[0\]/],
    ['a weak second key', { key: [KEY, 'x'.repeat(40)] }, 'auth.key[1]', /too predictable/],
    ['a tiny clock skew', { key: KEY, maxClockSkew: 10 }, 'auth.maxClockSkew', /integer from 1000/],
  ])('server: %s is an InvalidOptionsError naming the option', (_name, input, option, message) => {
    const error = failure(() => resolveServerAuth(input, 'auth', {}));
    expect(error).toMatchObject({ code: 'POOL_ERR_INVALID_OPTIONS', option });
    expect(error.text).toMatch(message);
  });

  it('an error about a key never shows the key, wherever it came from', () => {
    const weak = 'abababababababababab-secret-ish'.replace(/[^ab]/g, 'a'); // long, predictable
    const file = path.join(dir, 'weak');
    writeFileSync(file, weak);
    for (const input of [{ key: weak }, { key: { env: 'WEAK' } }, { key: { file } }, { key: [KEY, weak] }]) {
      const error = failure(() => resolveServerAuth(input, 'auth', { WEAK: weak }));
      expect(error.code).toBe('POOL_ERR_INVALID_OPTIONS');
      expect(error.text).not.toContain(weak);
    }
    const short = failure(() => resolveClientAuth({ key: 'hunter2' }));
    expect(short.text).not.toContain('hunter2');
  });

  it('resolved options and keys never show the key in JSON.stringify, util.inspect or String()', () => {
    const client = resolveClientAuth({ key: KEY })!;
    const server = resolveServerAuth({ key: [KEY, { id: 'next', key: OTHER }] })!;
    for (const shown of [JSON.stringify(client), JSON.stringify(server), inspect(client, { depth: 10, showHidden: true }), inspect(server, { depth: 10, showHidden: true }), String(client.key), `${server.keys[1]}`, JSON.stringify({ pool: { auth: server } })]) {
      expect(shown).not.toContain(KEY);
      expect(shown).not.toContain(OTHER);
      expect(shown).not.toContain(Buffer.from(KEY).toString('hex'));
      expect(shown).not.toContain(Buffer.from(KEY).toString('base64'));
    }
    expect(JSON.parse(JSON.stringify(server))).toEqual({
      keys: [{ id: deriveKeyId(Buffer.from(KEY)), key: '[redacted]' }, { id: 'next', key: '[redacted]' }],
      channelBinding: true, maxClockSkew: 120_000, replayCacheSize: 65_536,
    });
    expect(Object.keys(client.key)).toEqual(['id']);
  });

  it('the auth errors have stable codes and say what to check, not the key', () => {
    expect(new AuthRefusedError()).toMatchObject({ code: 'POOL_ERR_AUTH_REFUSED', name: 'AuthRefusedError' });
    expect(new AuthHandshakeError('required')).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'required', name: 'AuthHandshakeError' });
    expect(new AuthHandshakeError('required').message).toMatch(/set auth.key/);
  });

  it('generateAuthKey: 32 random bytes as base64url, accepted as a key, never twice the same', () => {
    const a = generateAuthKey();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a, 'base64url')).toHaveLength(32);
    expect(generateAuthKey()).not.toBe(a);
    expect(resolveClientAuth({ key: a })).toBeDefined();
    expect(resolveClientAuth({ key: Buffer.from(a, 'base64url') })).toBeDefined(); // 16+ random bytes pass the entropy check
  });

  it('generateAuthKey never starts with "-", which a command line would read as a flag (`--key $(... keygen)`)', () => {
    // One base64url key in 64 would: 2000 of them hold one with odds of 1 - (63/64)^2000, all but certain.
    const keys = Array.from({ length: 2000 }, () => generateAuthKey());
    expect(keys.filter((key) => key.startsWith('-'))).toEqual([]);
    expect(new Set(keys.map((key) => key[0])).size).toBeGreaterThan(32); // still spread over the alphabet
  });

  it('entropy estimate: none for one repeated byte, about 8 bits a byte for a spread', () => {
    expect(estimateEntropyBits(Buffer.alloc(64, 0x61))).toBe(0);
    expect(estimateEntropyBits(Buffer.from(Array.from({ length: 256 }, (_, i) => i)))).toBeCloseTo(2048);
    expect(estimateEntropyBits(Buffer.alloc(0))).toBe(0);
  });
});
