/**
 * Shared-key authentication on the http2 transport, end to end: real pools
 * and real HTTP/2 sessions over TLS 1.3 on 127.0.0.1. The honest client is a
 * client pool; strangers and replayers are raw `node:http2` sessions that
 * write the proof header themselves (docs/extensions/auth.md, "http2 and ws:
 * one header each way").
 */
import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { AuthHandshakeError, AuthRefusedError, InvalidOptionsError } from '../../lib/core/errors.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { AUTH_HEADER, HeaderClientAuth, encodeAuthRequestHeader } from '../../lib/auth/header.js';
import { resolveClientAuth } from '../../lib/auth/keys.js';
import { channelBinding } from '../../lib/auth/proof.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { http2Transport } from '../../lib/transports/http2/index.js';
import { createCertificateAuthority } from '../../lib/certs/index.js';
import { eventually, readBytes, readToEnd } from '../support/net.js';
import { startPair } from '../support/pools.js';
import { useTestScope } from '../support/scope.js';
import { testCertificate } from '../support/certificate.js';
import { KEY_A, KEY_B, thrown } from './auth-support.js';
import { expectKeyedEcho, expectNoKey, honestDuringFlood, recordingLogger } from './http2-ws-support.js';

const scope = useTestScope();
const { track, handOff } = scope;

const tls = (): { key: string; cert: string } => {
  const { key, cert } = testCertificate();
  return { key, cert };
};
const serverAuth = { key: [{ id: 'old', key: KEY_A }, { id: 'new', key: KEY_B }] };
const WRONG_KEY = 'Wr0ngKey-but-strong-enough-7Hq2Pz9';

const dialOnce = (client: ClientPool) => client.transport.dial({ signal: new AbortController().signal, readId: true });

/** A started http2 server pool with `auth` (or none), and nothing dialing it. */
async function authServer(auth: Record<string, unknown> | null = serverAuth, extra: Record<string, unknown> = {}): Promise<ServerPool> {
  const server = createServerPool({ transport: 'http2', host: '127.0.0.1', port: 0, tls: tls(), ...(auth ? { auth } : {}), ...extra } as never);
  await server.start();
  scope.defer(() => server.close());
  return server;
}

/** A client pool that is not started: its transport dials once per call. */
function idleClient(port: number, extra: Record<string, unknown> = {}): ClientPool {
  const client = createClientPool({ transport: 'http2', address: `127.0.0.1:${port}`, tls: '1', ...extra } as never);
  scope.defer(() => client.close());
  return client;
}

/** A raw HTTP/2 session over TLS 1.3 (no verification), and its channel binding as the client computes it. */
async function rawSession(port: number, localAddress = '127.0.0.1'): Promise<{ session: ClientHttp2Session; binding: Buffer }> {
  // localAddress reaches tls.connect (its types leave it out): "another peer" on 127.0.0.2.
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, minVersion: 'TLSv1.3', localAddress } as http2.SecureClientSessionOptions);
  session.on('error', () => undefined);
  scope.defer(() => void session.destroy());
  await once(session, 'connect');
  return { session, binding: channelBinding(session.socket)! };
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  stream: ClientHttp2Stream;
}

/** `POST /stream` with the proof header as given (none, one value, or an array: sent twice), then the 0x00 byte. */
async function post(session: ClientHttp2Session, header?: string | string[]): Promise<Answer> {
  const stream = session.request({ ':method': 'POST', ':path': '/stream', ...(header !== undefined ? { [AUTH_HEADER]: header } : {}) }, { endStream: false });
  stream.on('error', () => undefined);
  track(stream);
  stream.write(Buffer.of(0));
  const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders];
  return { status: Number(headers[':status']), headers, stream };
}

/** A refusal as the design fixes it: 401, the challenge, the one body and nothing else (no ID byte). */
async function expectRefused(answer: Answer): Promise<void> {
  expect(answer.status).toBe(401);
  expect(answer.headers['www-authenticate']).toBe('X-Tunnel-Pool-Auth v1');
  expect(answer.headers[AUTH_HEADER]).toBeUndefined();
  expect((await readToEnd(answer.stream)).toString('latin1')).toBe('unauthorized\n');
}

/** Nothing a stranger did left a stream the server would hand out. */
async function expectNothingPooled(server: ServerPool): Promise<void> {
  await expect(server.incomingGet(300)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
}

const authRefusals = (server: ServerPool): number => server.stats.refusals['auth'] ?? 0;

const clientAuth = (key = KEY_A) => resolveClientAuth({ key })!;

describe('http2 auth: honest clients', () => {
  it('a client with either key of the rotation gets streams that carry data, and the server stream names the key', async () => {
    const server = await authServer();
    const port = server.address()!.port;
    for (const [key, id] of [[KEY_A, 'old'], [KEY_B, 'new']] as const) {
      const client = createClientPool({ transport: 'http2', address: `127.0.0.1:${port}`, tls: '1', auth: { key }, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 } as never);
      scope.defer(() => client.close());
      client.start();
      await client.waitForActive(1, 5000);
      const p = { server, client, port, close: async () => undefined };
      await expectKeyedEcho(await handOff(p, `key:${id}`), id);
    }
    expect(authRefusals(server)).toBe(0);
  });

  it('many streams on one session: each proof is numbered and accepted once', async () => {
    const p = await scope.pair(startPair, { transport: 'http2', tls: tls(), auth: serverAuth } as never, { tls: '1', auth: { key: KEY_B }, minCap: 6, maxCap: 6 } as never);
    await p.client.waitForActive(6, 5000);
    expect(p.client.stats.transportStats['sessionsOpened']).toBe(1);
    for (let i = 0; i < 6; i++) {
      const { server: s } = await handOff(p);
      expect(streamIdentity(s)).toEqual({ kind: 'key', id: 'new' });
    }
    expect(authRefusals(p.server)).toBe(0);
  });

  it('channelBinding false on both ends (TLS terminated in front): the proof rests on the clock and a nonce', async () => {
    const p = await scope.pair(
      startPair,
      { transport: 'http2', tls: tls(), auth: { ...serverAuth, channelBinding: false } } as never,
      { tls: '1', auth: { key: KEY_A, channelBinding: false }, minCap: 2, maxCap: 2 } as never,
    );
    await p.client.waitForActive(2, 5000);
    const { server: s } = await handOff(p);
    expect(streamIdentity(s)).toEqual({ kind: 'key', id: 'old' });
  });
});

describe('http2 auth with mutual TLS', () => {
  it('both a client certificate and a key: the stream is named by the key id; a wrong key is still refused', async () => {
    const ca = createCertificateAuthority({ commonName: 'auth spec CA' });
    const leaf = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const person = ca.issue({ commonName: 'client-7' });
    const p = await scope.pair(
      startPair,
      { transport: 'http2', tls: { key: leaf.key, cert: leaf.cert, ca: ca.cert, requestCert: true }, auth: serverAuth } as never,
      { tls: '1', cert: person.cert, key: person.key, auth: { key: KEY_B }, minCap: 1, maxCap: 1 } as never,
    );
    await p.client.waitForActive(1, 5000);
    const { server: s } = await handOff(p);
    expect(streamIdentity(s)).toEqual({ kind: 'key', id: 'new' });
    const stranger = idleClient(p.port, { cert: person.cert, key: person.key, auth: { key: WRONG_KEY } });
    await expect(dialOnce(stranger)).rejects.toBeInstanceOf(AuthRefusedError);
  });
});

describe('http2 auth: refusals (401, counted "auth", no ID, nothing pooled)', () => {
  it('a wrong key: AuthRefusedError on the client, the key never in the error or the stats', async () => {
    const { logger, lines: logs } = recordingLogger();
    const server = await authServer(serverAuth, { logger });
    const client = idleClient(server.address()!.port, { auth: { key: WRONG_KEY }, logger });
    const error = await dialOnce(client).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(AuthRefusedError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH_REFUSED' });
    expect(authRefusals(server)).toBe(1);
    // The refused stream is gone on the client too: its slot on the session is free (its 401 body was read).
    await eventually(() => client.stats.transportStats['activeStreams'] === 0, 3000, 'the refused stream to close');
    await expectNothingPooled(server);
    expectNoKey([String((error as Error).message), (error as Error).stack ?? '', JSON.stringify(server.stats), JSON.stringify(client.stats), ...logs], [KEY_A, KEY_B, WRONG_KEY]);
  });

  it('a client without auth against a server with auth: AuthHandshakeError "required", not a hang', async () => {
    const server = await authServer();
    const client = idleClient(server.address()!.port);
    const error = await dialOnce(client).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(AuthHandshakeError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'required' });
    expect(authRefusals(server)).toBe(1);
    await eventually(() => client.stats.transportStats['activeStreams'] === 0, 3000, 'the refused stream to close');
  });

  it('a client with auth against a server without: AuthHandshakeError "not-supported", the ID never taken', async () => {
    const server = await authServer(null);
    const client = idleClient(server.address()!.port, { auth: { key: KEY_A } });
    const error = await dialOnce(client).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(AuthHandshakeError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'not-supported' });
  });

  it('a server that does not hold the key cannot prove it: AuthHandshakeError "server-proof"', async () => {
    // An impostor (TLS mode "1" trusts any certificate): answers 200 with a proof it cannot have made, then an ID.
    const impostor = http2.createSecureServer({ ...tls(), minVersion: 'TLSv1.3' });
    impostor.on('stream', (stream) => {
      stream.on('error', () => undefined);
      stream.respond({ ':status': 200, [AUTH_HEADER]: `v1.${Buffer.alloc(32, 7).toString('base64url')}` });
      stream.write(Buffer.alloc(4));
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => impostor.close(() => resolve())));
    const client = idleClient((impostor.address() as { port: number }).port, { auth: { key: KEY_A } });
    const error = await dialOnce(client).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'server-proof' });
  });

  it('no header, a malformed, a truncated and a doubled header are each refused', async () => {
    const server = await authServer();
    const port = server.address()!.port;
    const { binding } = await rawSession(port);
    const good = new HeaderClientAuth(clientAuth(), 'http2', binding).proof().header;
    const cases: Array<string | string[] | undefined> = [undefined, 'hello', good.slice(0, -1), `${good}x`, good.replace('v1.', 'v2.'), [good, good]];
    for (const header of cases) {
      // One session per case: a session that sent a bad proof is retired.
      const { session } = await rawSession(port);
      await expectRefused(await post(session, header));
    }
    expect(authRefusals(server)).toBe(cases.length);
    await expectNothingPooled(server);
  });

  it('a replayed header (same seq on the same session) is refused; the first use was served', async () => {
    const server = await authServer();
    const { session, binding } = await rawSession(server.address()!.port);
    const header = new HeaderClientAuth(clientAuth(), 'http2', binding).proof().header;
    const first = await post(session, header);
    expect(first.status).toBe(200);
    expect(first.headers[AUTH_HEADER]).toMatch(/^v1\.[A-Za-z0-9_-]{43}$/);
    expect(await readBytes(first.stream, 4)).toHaveLength(4);
    const [, pooled] = await server.incomingGet(5000);
    track(pooled);
    expect(streamIdentity(pooled)).toEqual({ kind: 'key', id: 'old' });
    await expectRefused(await post(session, header));
    expect(authRefusals(server)).toBe(1);
    await expectNothingPooled(server);
  });

  it('a header proved on another connection is refused (the TLS channel binding differs)', async () => {
    const server = await authServer();
    const port = server.address()!.port;
    const a = await rawSession(port);
    const b = await rawSession(port);
    expect(a.binding.equals(b.binding)).toBe(false);
    const fromA = new HeaderClientAuth(clientAuth(), 'http2', a.binding).proof().header;
    await expectRefused(await post(b.session, fromA));
    // The same header is still good where it was made: the refusal was the binding, not the proof.
    expect((await post(a.session, fromA)).status).toBe(200);
    expect(authRefusals(server)).toBe(1);
  });

  it('unbound (channelBinding false): a stale clock and a replayed nonce are refused', async () => {
    const server = await authServer({ ...serverAuth, channelBinding: false, maxClockSkew: 60_000 });
    const port = server.address()!.port;
    const stale = new HeaderClientAuth(clientAuth(), 'http2', undefined, () => Date.now() - 5 * 60_000).proof().header;
    await expectRefused(await post((await rawSession(port)).session, stale));
    const fresh = new HeaderClientAuth(clientAuth(), 'http2').proof().header;
    expect((await post((await rawSession(port)).session, fresh)).status).toBe(200);
    await expectRefused(await post((await rawSession(port)).session, fresh));
    expect(authRefusals(server)).toBe(2);
  });

  it('channelBinding set differently on the two ends is refused as a wrong proof would be', async () => {
    const server = await authServer();
    const client = idleClient(server.address()!.port, { auth: { key: KEY_A, channelBinding: false } });
    await expect(dialOnce(client)).rejects.toBeInstanceOf(AuthRefusedError);
    expect(authRefusals(server)).toBe(1);
  });

  it('a proof under the right key but for another transport (ws) is refused', async () => {
    const server = await authServer();
    const { session, binding } = await rawSession(server.address()!.port);
    const ws = new HeaderClientAuth(clientAuth(), 'ws', binding).proof().header;
    await expectRefused(await post(session, ws));
    // A syntactically perfect header with a made-up proof, too.
    const made = encodeAuthRequestHeader({ seq: 1, nonce: Buffer.alloc(16, 1), proof: Buffer.alloc(32, 2) });
    await expectRefused(await post((await rawSession(server.address()!.port)).session, made));
    expect(authRefusals(server)).toBe(2);
  });
});

describe('http2 auth: a flood of wrong keys', () => {
  it('from one address, never stops an honest client from getting streams, and leaves nothing behind', async () => {
    const p = await scope.pair(startPair, { transport: 'http2', tls: tls(), auth: serverAuth } as never, { tls: '1', auth: { key: KEY_A }, minCap: 2, maxCap: 2 } as never);
    const attempts = await honestDuringFlood(
      async () => {
        const { session, binding } = await rawSession(p.port, '127.0.0.2');
        await expectRefused(await post(session, new HeaderClientAuth(clientAuth(WRONG_KEY), 'http2', binding).proof().header));
        session.destroy();
      },
      () => handOff(p),
      'old',
    );
    expect(authRefusals(p.server)).toBe(attempts);
    // No session of the flood is left open on the server (each was retired after its 401, or hung up).
    await eventually(() => (p.server.stats.transportStats['sessions'] as number) <= 1, 10_000, 'the flood sessions to be gone');
  });
});

describe('http2 auth: options', () => {
  it('errors name the option and never print the key; unknown auth options are named', () => {
    const short = 'short-key';
    const error = thrown(() => http2Transport.client({ address: '127.0.0.1:1', tls: '1', auth: { key: short } } as never)) as InvalidOptionsError;
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.option).toBe('auth.key');
    expect(error.message).not.toContain(short);
    const unknown = thrown(() => http2Transport.server({ tls: tls(), auth: { key: KEY_A, keyz: 1 } } as never)) as InvalidOptionsError;
    expect(unknown.option).toBe('auth.keyz');
    const notObject = thrown(() => http2Transport.server({ tls: tls(), auth: KEY_A } as never)) as InvalidOptionsError;
    expect(notObject.option).toBe('auth');
    expect(notObject.message).not.toContain(KEY_A);
  });
});
