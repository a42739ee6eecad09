import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import {
  AuthHandshakeError, AuthRefusedError, TcpClientAuth, TcpServerAuth, TcpAuthType, channelBinding, encodeAccept, encodeChallenge,
  encodeProof, looksLikeTcpChallenge, parseTcpAuthMessage, resolveClientAuth, resolveServerAuth, type TcpClientStep, type TcpServerStep,
} from '../../lib/auth/index.js';
import { createSelfSignedCertificate } from '../../lib/certs/index.js';
import { testCertificate } from '../support/certificate.js';
import { KEY_A, KEY_B, thrown } from './auth-support.js';
import { useTestScope } from '../support/scope.js';

const client = (key = KEY_A, channelBinding = true) => resolveClientAuth({ key, channelBinding })!;
const server = (key: string | string[] = KEY_A) => resolveServerAuth({ key })!;
const ID = Buffer.from([0xa1, 0xb2, 0xc3, 0xd4]);

/** Runs one exchange in memory, delivering each message in `chunk`-byte pieces. Returns both ends' last steps. */
function exchange(c: TcpClientAuth, s: TcpServerAuth, chunk = Infinity): { server: TcpServerStep; client?: TcpClientStep } {
  const pieces = (bytes: Buffer): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < bytes.length; i += Math.min(chunk, bytes.length)) out.push(bytes.subarray(i, i + Math.min(chunk, bytes.length)));
    return out;
  };
  let step: TcpClientStep = { kind: 'need' };
  for (const piece of pieces(s.challenge)) step = c.push(piece);
  if (step.kind !== 'send') throw new Error(`client did not answer the challenge: ${step.kind}`);
  let verdict: TcpServerStep = { kind: 'need' };
  for (const piece of pieces(step.bytes)) verdict = s.push(piece);
  if (verdict.kind !== 'accepted') return { server: verdict };
  // Once the client is done, what follows is the ID: the transport reads it, not the auth exchange.
  let last: TcpClientStep = { kind: 'need' };
  const after: Buffer[] = [];
  for (const piece of pieces(Buffer.concat([verdict.reply, ID]))) {
    if (last.kind === 'done') after.push(piece);
    else last = c.push(piece);
  }
  if (last.kind === 'done') last = { kind: 'done', rest: Buffer.concat([last.rest, ...after]) };
  return { server: verdict, client: last };
}

describe('tcp/TLS auth messages: byte layout', () => {
  it('challenge 38, proof 70, accept 38 bytes: "NTPA", version 1, type, body', () => {
    const nonce = Buffer.alloc(32, 0x11);
    const proof = Buffer.alloc(32, 0x22);
    expect(encodeChallenge(nonce).toString('hex')).toBe(`4e545041` + `01` + `01` + '11'.repeat(32));
    expect(encodeProof(nonce, proof).toString('hex')).toBe(`4e545041` + `01` + `02` + '11'.repeat(32) + '22'.repeat(32));
    expect(encodeAccept(proof).toString('hex')).toBe(`4e545041` + `01` + `03` + '22'.repeat(32));
    expect(() => encodeChallenge(Buffer.alloc(31))).toThrow(RangeError);
  });

  it('a parser reports a wrong byte as soon as it arrives, and keeps what follows the message', () => {
    expect(parseTcpAuthMessage(Buffer.from('e'), TcpAuthType.CHALLENGE)).toEqual({ kind: 'invalid', at: 'magic' });
    expect(parseTcpAuthMessage(Buffer.from('NTP'), TcpAuthType.CHALLENGE)).toEqual({ kind: 'need', missing: 35 });
    expect(parseTcpAuthMessage(Buffer.from([0x4e, 0x54, 0x50, 0x41, 0x02]), TcpAuthType.CHALLENGE)).toEqual({ kind: 'invalid', at: 'version' });
    expect(parseTcpAuthMessage(Buffer.from([0x4e, 0x54, 0x50, 0x41, 0x01, 0x03]), TcpAuthType.CHALLENGE)).toEqual({ kind: 'invalid', at: 'type' });
    const parsed = parseTcpAuthMessage(Buffer.concat([encodeAccept(Buffer.alloc(32, 7)), ID]), TcpAuthType.ACCEPT);
    expect(parsed).toEqual({ kind: 'message', body: Buffer.alloc(32, 7), rest: ID });
  });

  it('a client without auth can tell a challenge from an ID (hex8: 8 bytes, raw4: 4 bytes)', () => {
    const challenge = encodeChallenge(Buffer.alloc(32, 0x30));
    expect(looksLikeTcpChallenge(challenge.subarray(0, 8))).toBe(true);
    expect(looksLikeTcpChallenge(challenge.subarray(0, 4))).toBe(true);
    expect(looksLikeTcpChallenge(Buffer.from('edc60f09'))).toBe(false);
    expect(looksLikeTcpChallenge(Buffer.from('00000000', 'hex'))).toBe(false);
    expect(looksLikeTcpChallenge(Buffer.from('NTPA'))).toBe(true); // the one raw4 ID in 2^32 that reads as a challenge
    expect(looksLikeTcpChallenge(Buffer.from('NT'))).toBe(false);
  });
});

describe('tcp/TLS auth exchange (in memory)', () => {
  it.each([['whole messages', Infinity], ['one byte at a time', 1], ['odd pieces', 5]])('the right key: accepted, identity = key id, the ID follows (%s)', (_name, chunk) => {
    const s = new TcpServerAuth(server(), 'raw4');
    const result = exchange(new TcpClientAuth(client(), 'raw4'), s, chunk);
    expect(result.server).toMatchObject({ kind: 'accepted', keyId: server().keys[0]!.id, rest: Buffer.alloc(0) });
    expect(result.client).toEqual({ kind: 'done', rest: ID });
  });

  it('every connection gets a fresh server nonce', () => {
    const a = new TcpServerAuth(server(), 'hex8').challenge;
    const b = new TcpServerAuth(server(), 'hex8').challenge;
    expect(a.subarray(6).equals(b.subarray(6))).toBe(false);
  });

  it('a wrong key is refused (bare close), and the client reports the refusal of its proof', () => {
    const c = new TcpClientAuth(client(KEY_B), 'raw4');
    const result = exchange(c, new TcpServerAuth(server(KEY_A), 'raw4'));
    expect(result.server).toEqual({ kind: 'refused', reason: 'mismatch' });
    const error = c.ended();
    expect(error).toBeInstanceOf(AuthRefusedError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH_REFUSED' });
  });

  it('key rotation: a server with two keys accepts both, and says which one', () => {
    const both = server([KEY_A, KEY_B]);
    const ids = [KEY_A, KEY_B].map((key) => {
      const result = exchange(new TcpClientAuth(client(key), 'raw4'), new TcpServerAuth(both, 'raw4'));
      return result.server.kind === 'accepted' ? result.server.keyId : result.server.kind;
    });
    expect(ids).toEqual([both.keys[0]!.id, both.keys[1]!.id]);
  });

  it('a replayed proof is refused: the proof of an accepted connection sent again on a new one', () => {
    const first = new TcpServerAuth(server(), 'raw4');
    const c = new TcpClientAuth(client(), 'raw4');
    const answer = c.push(first.challenge);
    if (answer.kind !== 'send') throw new Error('no proof');
    expect(first.push(answer.bytes).kind).toBe('accepted');
    const second = new TcpServerAuth(server(), 'raw4');
    expect(second.push(answer.bytes)).toEqual({ kind: 'refused', reason: 'mismatch' });
  });

  it('a proof made for connection A is refused on connection B (and the other way round)', () => {
    const [a, b] = [new TcpServerAuth(server(), 'raw4'), new TcpServerAuth(server(), 'raw4')];
    const [ca, cb] = [new TcpClientAuth(client(), 'raw4'), new TcpClientAuth(client(), 'raw4')];
    const [pa, pb] = [ca.push(a.challenge), cb.push(b.challenge)];
    if (pa.kind !== 'send' || pb.kind !== 'send') throw new Error('no proof');
    expect(b.push(pa.bytes)).toEqual({ kind: 'refused', reason: 'mismatch' });
    expect(a.push(pb.bytes)).toEqual({ kind: 'refused', reason: 'mismatch' });
  });

  it('a proof for the other ID form is refused (the context is in the proof)', () => {
    const s = new TcpServerAuth(server(), 'hex8');
    const step = new TcpClientAuth(client(), 'raw4').push(s.challenge);
    if (step.kind !== 'send') throw new Error('no proof');
    expect(s.push(step.bytes)).toEqual({ kind: 'refused', reason: 'mismatch' });
  });

  it('a truncated proof is never accepted: the server keeps waiting (its handshake deadline closes it)', () => {
    const s = new TcpServerAuth(server(), 'raw4');
    const step = new TcpClientAuth(client(), 'raw4').push(s.challenge);
    if (step.kind !== 'send') throw new Error('no proof');
    expect(s.push(step.bytes.subarray(0, 69))).toEqual({ kind: 'need' });
  });

  it('a proof with any one bit flipped is refused, wherever the bit is', () => {
    const s0 = new TcpServerAuth(server(), 'raw4');
    const c = new TcpClientAuth(client(), 'raw4');
    for (let bit = 6 * 8; bit < 70 * 8; bit += 7) {
      const s = new TcpServerAuth(server(), 'raw4');
      const step = new TcpClientAuth(client(), 'raw4').push(s.challenge);
      if (step.kind !== 'send') throw new Error('no proof');
      const bytes = Buffer.from(step.bytes);
      bytes[bit >> 3]! ^= 1 << (bit & 7);
      expect(s.push(bytes)).toEqual({ kind: 'refused', reason: 'mismatch' });
    }
    expect(exchange(c, s0).server.kind).toBe('accepted');
  });

  it('a flood costs a bounded buffer: a megabyte of junk is refused on its first byte, a trickle never holds more than one proof', () => {
    expect(new TcpServerAuth(server(), 'raw4').push(Buffer.alloc(1 << 20, 0x47))).toEqual({ kind: 'refused', reason: 'malformed' });
    const s = new TcpServerAuth(server(), 'raw4');
    const trickle = Buffer.concat([Buffer.from('NTPA'), Buffer.from([1, 2]), Buffer.alloc(200, 0x55)]);
    let verdict: TcpServerStep = { kind: 'need' };
    let pushed = 0;
    while (verdict.kind === 'need') verdict = s.push(trickle.subarray(pushed, ++pushed));
    expect(pushed).toBe(70); // decided at exactly one proof's length
    expect(verdict).toEqual({ kind: 'refused', reason: 'mismatch' });
  });

  it('bytes that are not a proof (wrong magic, version, type) are refused', () => {
    for (const bad of [Buffer.from('GET / HTTP/1.1\r\n'), Buffer.from([0x4e, 0x54, 0x50, 0x41, 0x09]), Buffer.from([0x4e, 0x54, 0x50, 0x41, 0x01, 0x01])]) {
      expect(new TcpServerAuth(server(), 'raw4').push(bad)).toEqual({ kind: 'refused', reason: 'malformed' });
    }
  });

  it('a client with auth meeting a server without it (an ID first, as a Go pool sends) fails at once, typed', () => {
    for (const [format, id] of [['raw4', Buffer.from('00000000', 'hex')], ['hex8', Buffer.from('edc60f09')]] as const) {
      const c = new TcpClientAuth(client(), format);
      expect(() => c.push(id.subarray(0, 1))).toThrow(AuthHandshakeError);
    }
    try {
      new TcpClientAuth(client(), 'raw4').push(Buffer.from('062bff90', 'hex'));
    } catch (error) {
      expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'not-supported' });
    }
    expect.assertions(3);
  });

  it('a server that cannot prove the key (an impostor that accepts anything) is caught before the ID is used', () => {
    const c = new TcpClientAuth(client(), 'raw4');
    const step = c.push(encodeChallenge(Buffer.alloc(32, 9)));
    expect(step.kind).toBe('send');
    expect(thrown(() => c.push(Buffer.concat([encodeAccept(Buffer.alloc(32, 1)), ID])))).toMatchObject({ reason: 'server-proof' });
  });

  it('a connection that ends: before any byte is the usual refusal, mid-message is malformed', () => {
    expect(new TcpClientAuth(client(), 'raw4').ended()).toBeUndefined();
    const c = new TcpClientAuth(client(), 'raw4');
    c.push(Buffer.from('NTPA'));
    expect(c.ended()).toMatchObject({ reason: 'malformed' });
  });
});

// ---- over real TLS on loopback: the channel binding stops a relaying man in the middle ----

const scope = useTestScope();

/** A TLS server running the server side of the exchange on each connection; resolves each verdict. */
async function authServer(auth = server(), bind = true): Promise<{ port: number; verdicts: Array<Promise<TcpServerStep>> }> {
  const verdicts: Array<Promise<TcpServerStep>> = [];
  const { key, cert } = testCertificate();
  const srv = tls.createServer({ key, cert, minVersion: 'TLSv1.3' }, (socket) => {
    const hs = new TcpServerAuth(auth, 'raw4', bind ? channelBinding(socket) : undefined);
    socket.on('error', () => undefined);
    verdicts.push(new Promise((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        const step = hs.push(chunk);
        if (step.kind === 'need') return;
        resolve(step);
        if (step.kind === 'accepted') socket.write(Buffer.concat([step.reply, ID]));
        else socket.destroy(); // bare close
      });
    }));
    socket.write(hs.challenge);
  });
  srv.on('tlsClientError', () => undefined);
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  scope.defer(() => {
    srv.close();
  });
  return { port: (srv.address() as net.AddressInfo).port, verdicts };
}

/** Dials in mode "1" and runs the client side; resolves the ID bytes or rejects with the typed error. */
function authClient(port: number, auth = client()): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    scope.defer(() => {
      socket.destroy();
    });
    let hs: TcpClientAuth | undefined;
    socket.on('secureConnect', () => {
      hs = new TcpClientAuth(auth, 'raw4', auth.channelBinding ? channelBinding(socket) : undefined);
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        const step = hs!.push(chunk);
        if (step.kind === 'send') socket.write(step.bytes);
        if (step.kind === 'done') resolve(step.rest);
      } catch (error) {
        reject(error);
      }
    });
    socket.on('close', () => reject(hs?.ended() ?? new Error('closed before any byte')));
    socket.on('error', () => undefined);
  });
}

/** A man in the middle for mode "1": terminates the client's TLS with its own self-signed certificate and relays the bytes over its own TLS to the server. */
async function tlsRelay(target: number): Promise<number> {
  const { key, cert } = createSelfSignedCertificate();
  const relay = tls.createServer({ key, cert, minVersion: 'TLSv1.3' }, (front) => {
    const back = tls.connect({ host: '127.0.0.1', port: target, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    for (const s of [front, back]) s.on('error', () => undefined);
    front.pipe(back).pipe(front);
    front.on('close', () => back.destroy());
    back.on('close', () => front.destroy());
    scope.defer(() => {
      back.destroy();
    });
    scope.defer(() => {
      front.destroy();
    });
  });
  relay.on('tlsClientError', () => undefined);
  relay.listen(0, '127.0.0.1');
  await once(relay, 'listening');
  scope.defer(() => {
    relay.close();
  });
  return (relay.address() as net.AddressInfo).port;
}

describe('tcp/TLS auth over real TLS sockets', () => {
  it('both ends compute the same channel binding; the right key gets its ID', async () => {
    const srv = await authServer();
    await expect(authClient(srv.port)).resolves.toEqual(ID);
    await expect(srv.verdicts[0]).resolves.toMatchObject({ kind: 'accepted' });
  });

  it('a relaying man in the middle in mode "1" cannot pass the proof on: refused, and the client is told', async () => {
    const srv = await authServer();
    const relay = await tlsRelay(srv.port);
    await expect(authClient(relay)).rejects.toMatchObject({ code: 'POOL_ERR_AUTH_REFUSED' });
    await expect(srv.verdicts[0]).resolves.toEqual({ kind: 'refused', reason: 'mismatch' });
  });

  it('without the channel binding the same relay goes through (what the binding is for)', async () => {
    const srv = await authServer(server(), false);
    const relay = await tlsRelay(srv.port);
    await expect(authClient(relay, client(KEY_A, false))).resolves.toEqual(ID);
  });

  it('a wrong key over TLS: a bare close after the proof, reported as a refused proof', async () => {
    const srv = await authServer();
    await expect(authClient(srv.port, client(KEY_B))).rejects.toBeInstanceOf(AuthRefusedError);
  });
});
