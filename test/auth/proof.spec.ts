import { describe, expect, it } from '@jest/globals';
import net from 'node:net';
import {
  EXPORTER_LABEL, channelBinding, clientProof, matchClientProof, newNonce, resolveServerAuth, sameBytes, serverProof, transcript, type ProofInput,
} from '../../lib/auth/index.js';
import { KEY_A, KEY_B } from './auth-support.js';

const auth = resolveServerAuth({ key: [KEY_A, { id: 'second', key: KEY_B }] })!;
const [keyA, keyB] = auth.keys as [typeof auth.keys[0], typeof auth.keys[0]];
const input = (over: Partial<ProofInput> = {}): ProofInput => ({ context: 'tcp/raw4', serverNonce: Buffer.alloc(32, 1), clientNonce: Buffer.alloc(32, 2), ...over });

describe('proofs', () => {
  it('the transcript: label, role, context, server nonce, client nonce, seq, binding, each as a u16 length and its bytes', () => {
    const bytes = transcript('client', input({ seq: '7', binding: Buffer.alloc(32, 3) }));
    const expected = Buffer.concat([
      Buffer.from('001a', 'hex'), Buffer.from('nestjs-tunnel-pool auth v1'),
      Buffer.from('0006', 'hex'), Buffer.from('client'),
      Buffer.from('0008', 'hex'), Buffer.from('tcp/raw4'),
      Buffer.from('0020', 'hex'), Buffer.alloc(32, 1),
      Buffer.from('0020', 'hex'), Buffer.alloc(32, 2),
      Buffer.from('0001', 'hex'), Buffer.from('7'),
      Buffer.from('0020', 'hex'), Buffer.alloc(32, 3),
    ]);
    expect(bytes).toEqual(expected);
  });

  it('every field changes the proof; client and server proofs differ; moving bytes between fields does too', () => {
    const base = clientProof(keyA, input());
    const variants = [
      clientProof(keyA, input({ context: 'tcp/hex8' })),
      clientProof(keyA, input({ serverNonce: Buffer.alloc(32, 9) })),
      clientProof(keyA, input({ clientNonce: Buffer.alloc(32, 9) })),
      clientProof(keyA, input({ seq: '0' })),
      clientProof(keyA, input({ binding: Buffer.alloc(32, 0) })),
      clientProof(keyB, input()),
      serverProof(keyA, input()),
      clientProof(keyA, input({ serverNonce: Buffer.alloc(31, 1), clientNonce: Buffer.concat([Buffer.from([1]), Buffer.alloc(32, 2)]) })),
    ];
    expect(new Set([base, ...variants].map((p) => p.toString('hex'))).size).toBe(variants.length + 1);
  });

  it('matching: the key that made the proof, by id; none for another proof, a short or long one (no throw)', () => {
    expect(matchClientProof(auth.keys, input(), clientProof(keyA, input()))?.id).toBe(keyA.id);
    expect(matchClientProof(auth.keys, input(), clientProof(keyB, input()))?.id).toBe('second');
    expect(matchClientProof(auth.keys, input(), serverProof(keyA, input()))).toBeUndefined();
    expect(matchClientProof(auth.keys, input(), clientProof(keyA, input()).subarray(0, 31))).toBeUndefined();
    expect(matchClientProof(auth.keys, input(), Buffer.concat([clientProof(keyA, input()), Buffer.from([0])]))).toBeUndefined();
    expect(matchClientProof([], input(), clientProof(keyA, input()))).toBeUndefined();
  });

  it('sameBytes: equal content only, lengths may differ without throwing (timingSafeEqual alone would throw)', () => {
    expect(sameBytes(Buffer.from('abc'), Buffer.from('abc'))).toBe(true);
    expect(sameBytes(Buffer.from('abc'), Buffer.from('abd'))).toBe(false);
    expect(sameBytes(Buffer.from('abc'), Buffer.from('abcd'))).toBe(false);
  });

  it('nonces are 32 fresh bytes', () => {
    expect(newNonce()).toHaveLength(32);
    expect(newNonce().equals(newNonce())).toBe(false);
  });

  it('no channel binding without TLS: a plain socket, nothing, or something else', async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    expect(channelBinding(socket)).toBeUndefined();
    expect(channelBinding(undefined)).toBeUndefined();
    expect(channelBinding({ exportKeyingMaterial: () => Buffer.alloc(32) })).toBeUndefined(); // not an encrypted TLSSocket
    socket.destroy();
    await new Promise((resolve) => server.close(resolve));
    expect(EXPORTER_LABEL).toBe('EXPORTER-nestjs-tunnel-pool-auth');
  });
});
