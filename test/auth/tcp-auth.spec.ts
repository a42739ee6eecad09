/**
 * Shared-key authentication on the tcp transport, plain and over TLS, with
 * both ID forms: real pools and real sockets on 127.0.0.1. A "stranger" is a
 * raw socket (or TLS socket) the test drives byte by byte, so what it
 * received can be checked to the byte: only the challenge, never an ID or
 * application data.
 */
import { describe, expect, it } from '@jest/globals';
import type { TLSSocket } from 'node:tls';
import { TCP_AUTH_MAGIC, TcpAuthType } from '../../lib/auth/index.js';
import { createCertificateAuthority } from '../../lib/certs/index.js';
import { AuthHandshakeError, AuthRefusedError } from '../../lib/core/errors.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import { eventually, listenRaw, readBytes } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { KEY_A, KEY_B } from './auth-support.js';
import {
  CHALLENGE_BYTES, CHALLENGE_HEAD, MODES, PROOF_BYTES, clientOf, dialOnce, expectOnlyChallenge, idleClient, proofFor, serverOf, startServer, stranger, type IdFormat, type Stranger,
} from './tcp-auth-support.js';

const scope = useTestScope();

describe.each(MODES)('tcp auth, $name', ({ secure, idFormat }) => {
  it('right key: streams pair up and carry data; the server stream names the key, the client stream carries nothing', async () => {
    const p = await scope.pair(startPair, serverOf(secure, idFormat, { auth: { key: [{ id: 'site-a', key: KEY_A }] } }), clientOf(secure, idFormat, { auth: { key: KEY_A }, minCap: 2, maxCap: 2 }));
    await p.client.waitForActive(2, 10_000);
    const { server, client } = await scope.handOff(p);
    client.write('ping');
    expect((await readBytes(server, 4)).toString()).toBe('ping');
    server.write('pong');
    expect((await readBytes(client, 4)).toString()).toBe('pong');
    expect({ server: streamIdentity(server), client: streamIdentity(client), refusals: p.server.stats.refusals }).toEqual({
      server: { kind: 'key', id: 'site-a' },
      client: undefined,
      refusals: {},
    });
  }, 30_000);

  it("wrong key, no proof, a truncated proof, garbage: each closed bare, counted 'auth', and the stranger got only the challenge", async () => {
    const server = await startServer(scope, serverOf(secure, idFormat, { auth: { key: KEY_A } }));
    const port = server.address()!.port;
    const strangers: Stranger[] = [];

    const wrong = await stranger(scope, port, secure);
    wrong.socket.write(proofFor(KEY_B, idFormat, wrong.socket, await wrong.bytes(CHALLENGE_BYTES)).proof);
    strangers.push(wrong);

    const silent = await stranger(scope, port, secure); // reads the challenge, proves nothing, hangs up
    await silent.bytes(CHALLENGE_BYTES);
    silent.socket.end();
    strangers.push(silent);

    const truncated = await stranger(scope, port, secure);
    const real = proofFor(KEY_A, idFormat, truncated.socket, await truncated.bytes(CHALLENGE_BYTES)).proof;
    truncated.socket.end(real.subarray(0, PROOF_BYTES - 1));
    strangers.push(truncated);

    const garbage = await stranger(scope, port, secure);
    await garbage.bytes(CHALLENGE_BYTES);
    garbage.socket.write(Buffer.alloc(PROOF_BYTES, 0x41));
    strangers.push(garbage);

    for (const peer of strangers) await expectOnlyChallenge(peer);
    await eventually(() => server.stats.handshaking === 0, 5000, 'the handshakes to be over');
    expect({ refusals: server.stats.refusals, active: server.active }).toEqual({ refusals: { auth: 4 }, active: 0 });

    // A client pool of ours with the wrong key: a typed refusal.
    const client = idleClient(scope, port, clientOf(secure, idFormat, { auth: { key: KEY_B } }));
    const refused = await dialOnce(client).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AuthRefusedError);
    expect(refused).toMatchObject({ code: 'POOL_ERR_AUTH_REFUSED' });
    await eventually(() => server.stats.refusals['auth'] === 5, 5000, 'the refusal to be counted');
  }, 30_000);

  it('a proof made for another connection and a replayed proof are refused; the proof on its own connection is accepted', async () => {
    const server = await startServer(scope, serverOf(secure, idFormat, { auth: { key: KEY_A } }));
    const port = server.address()!.port;
    const honest = await stranger(scope, port, secure);
    const other = await stranger(scope, port, secure);
    const { proof, exchange } = proofFor(KEY_A, idFormat, honest.socket, await honest.bytes(CHALLENGE_BYTES));
    await other.bytes(CHALLENGE_BYTES);
    // Another connection's proof: refused.
    other.socket.write(proof);
    await expectOnlyChallenge(other);
    // On its own connection: ACCEPT with the server's proof, then the ID.
    honest.socket.write(proof);
    const idLength = idFormat === 'hex8' ? 8 : 4;
    const answer = (await honest.bytes(CHALLENGE_BYTES + 38 + idLength)).subarray(CHALLENGE_BYTES);
    const step = exchange.push(answer);
    expect(step.kind).toBe('done');
    await eventually(() => server.active === 1, 5000, 'the honest stream to be pooled');
    // Replayed on a fresh connection: refused.
    const replay = await stranger(scope, port, secure);
    await replay.bytes(CHALLENGE_BYTES);
    replay.socket.write(proof);
    await expectOnlyChallenge(replay);
    expect({ refusals: server.stats.refusals, active: server.active }).toEqual({ refusals: { auth: 2 }, active: 1 });
  }, 30_000);

  it('key rotation: a server with two keys takes clients of either; each stream names the key its client proved', async () => {
    const server = await startServer(scope, serverOf(secure, idFormat, { auth: { key: [{ id: 'old', key: KEY_A }, { id: 'new', key: KEY_B }] } }));
    const port = server.address()!.port;
    const identities: unknown[] = [];
    for (const key of [KEY_A, KEY_B]) {
      const client = idleClient(scope, port, clientOf(secure, idFormat, { auth: { key } }));
      const { id, stream } = await dialOnce(client);
      scope.track(stream);
      const [taken, serverStream] = await server.incomingGet(5000);
      scope.track(serverStream);
      expect(taken).toBe(id);
      identities.push(streamIdentity(serverStream));
    }
    expect(identities).toEqual([
      { kind: 'key', id: 'old' },
      { kind: 'key', id: 'new' },
    ]);
  }, 30_000);

  it("a client with auth meets a server without: POOL_ERR_AUTH 'not-supported' at once", async () => {
    const server = await startServer(scope, serverOf(secure, idFormat));
    const client = idleClient(scope, server.address()!.port, clientOf(secure, idFormat, { auth: { key: KEY_A }, handshakeTimeout: 60_000 }));
    const error = await dialOnce(client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthHandshakeError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'not-supported' });
  }, 30_000);

  it("a client without auth meets a server with auth: POOL_ERR_AUTH 'required', counted 'auth' on the server", async () => {
    const server = await startServer(scope, serverOf(secure, idFormat, { auth: { key: KEY_A } }));
    const client = idleClient(scope, server.address()!.port, clientOf(secure, idFormat, { handshakeTimeout: 60_000 }));
    const error = await dialOnce(client).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuthHandshakeError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'required' });
    await eventually(() => server.stats.refusals['auth'] === 1, 5000, "the server to count 'auth'");
    expect(server.active).toBe(0);
  }, 30_000);
});

describe('tcp auth against peers that are not ours', () => {
  it.each<IdFormat>(['hex8', 'raw4'])("a Go-style server (%s) that writes its ID at once: 'not-supported', and the client wrote not a byte to it", async (idFormat) => {
    const heard: Buffer[] = [];
    const raw = await listenRaw((socket) => {
      socket.on('data', (chunk: Buffer) => heard.push(chunk));
      socket.write(idFormat === 'hex8' ? '0badc0de' : Buffer.from([0, 0, 0, 7]));
    });
    scope.defer(() => raw.close());
    const client = idleClient(scope, raw.port, clientOf(false, idFormat, { auth: { key: KEY_A }, handshakeTimeout: 60_000 }));
    await expect(dialOnce(client)).rejects.toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'not-supported' });
    await eventually(() => raw.sockets.length === 1 && raw.sockets[0]!.readableEnded, 5000, 'the client to hang up');
    expect(Buffer.concat(heard).length).toBe(0);
  });

  it("an impostor that sends a challenge and accepts any proof, but cannot prove the key: 'server-proof', the ID never taken", async () => {
    const raw = await listenRaw((socket) => {
      socket.write(Buffer.concat([CHALLENGE_HEAD, Buffer.alloc(32, 7)]));
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got === PROOF_BYTES) socket.write(Buffer.concat([TCP_AUTH_MAGIC, Buffer.from([1, TcpAuthType.ACCEPT]), Buffer.alloc(32, 9), Buffer.from('0badc0de')]));
      });
    });
    scope.defer(() => raw.close());
    const client = idleClient(scope, raw.port, clientOf(false, 'hex8', { auth: { key: KEY_A } }));
    await expect(dialOnce(client)).rejects.toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'server-proof' });
  });
});

describe('tcp auth with mutual TLS as well', () => {
  it("the stream's identity is the key it proved; the verified certificate stays readable on the TLS socket", async () => {
    const ca = createCertificateAuthority({ commonName: 'auth spec CA' });
    const serverCert = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const clientCert = ca.issue({ commonName: 'site-b' });
    const server = await startServer(scope, {
      transport: 'tcp', host: '127.0.0.1', port: 0,
      tls: { key: serverCert.key, cert: serverCert.cert, ca: ca.cert, requestCert: true },
      auth: { key: [{ id: 'site-b-key', key: KEY_A }] },
    } as never);
    const client = idleClient(scope, server.address()!.port, clientOf(true, 'hex8', { cert: clientCert.cert, key: clientCert.key, auth: { key: KEY_A } }));
    const { stream } = await dialOnce(client);
    scope.track(stream);
    const [, serverStream] = await server.incomingGet(5000);
    scope.track(serverStream);
    expect({ identity: streamIdentity(serverStream), cn: (serverStream as TLSSocket).getPeerCertificate().subject.CN }).toEqual({
      identity: { kind: 'key', id: 'site-b-key' },
      cn: 'site-b',
    });
  }, 30_000);
});
