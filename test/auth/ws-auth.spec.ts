/**
 * Shared-key authentication on the ws transport, end to end: real pools and
 * real WebSockets on 127.0.0.1, ws:// (unbound: clock and nonce) and wss://
 * (bound to the TLS connection), on the pool's own port and attached to a
 * server of the application's. Strangers and replayers write the upgrade
 * request byte by byte on a raw socket, so what they get back is seen
 * whole (docs/extensions/auth.md, "http2 and ws: one header each way").
 */
import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { AuthHandshakeError, AuthRefusedError, InvalidOptionsError } from '../../lib/core/errors.js';
import { streamIdentity } from '../../lib/core/stream-identity.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { HeaderClientAuth } from '../../lib/auth/header.js';
import { resolveClientAuth } from '../../lib/auth/keys.js';
import { channelBinding } from '../../lib/auth/proof.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { wsTransport } from '../../lib/transports/ws/index.js';
import { createCertificateAuthority } from '../../lib/certs/index.js';
import { readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { runs } from '../properties/fc.js';
import { testCertificate } from '../support/certificate.js';
import { KEY_A, KEY_B, thrown } from './auth-support.js';
import { expectKeyedEcho, expectNoKey, honestDuringFlood, recordingLogger } from './http2-ws-support.js';

const scope = useTestScope();
const { track, handOff } = scope;

const serverTls = (): { tls: { key: string; cert: string } } => {
  const { key, cert } = testCertificate();
  return { tls: { key, cert } };
};
const serverAuth = { key: [{ id: 'old', key: KEY_A }, { id: 'new', key: KEY_B }] };
const WRONG_KEY = 'Wr0ngKey-but-strong-enough-7Hq2Pz9';

const dialOnce = (client: ClientPool) => client.transport.dial({ signal: new AbortController().signal, readId: true });
const failureOf = (promise: Promise<unknown>): Promise<unknown> => promise.then(() => undefined, (error: unknown) => error);
const authRefusals = (server: ServerPool): number => server.stats.refusals['auth'] ?? 0;
const clientAuth = (key = KEY_A) => resolveClientAuth({ key })!;

/** A started ws server pool on its own port, ws:// or wss://, with `auth` (null: none). */
async function authServer(secure: boolean, auth: Record<string, unknown> | null = serverAuth, extra: Record<string, unknown> = {}): Promise<ServerPool> {
  const server = createServerPool({ transport: 'ws', host: '127.0.0.1', port: 0, ...(secure ? serverTls() : {}), ...(auth ? { auth } : {}), ...extra } as never);
  await server.start();
  scope.defer(() => server.close());
  return server;
}

/** A client pool that is not started: its transport dials once per call. */
function idleClient(port: number, secure: boolean, extra: Record<string, unknown> = {}): ClientPool {
  const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, ...(secure ? { tls: '1' } : {}), ...extra } as never);
  scope.defer(() => client.close());
  return client;
}

/** A raw connection to the pool's port (TLS 1.3 for wss), and its channel binding as a client computes it. */
async function rawConnection(port: number, secure: boolean, localAddress = '127.0.0.1'): Promise<{ socket: net.Socket; binding?: Buffer }> {
  const socket = secure
    ? tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3', localAddress } as tls.ConnectionOptions)
    : net.connect({ host: '127.0.0.1', port, localAddress });
  socket.on('error', () => undefined);
  track(socket);
  await once(socket, secure ? 'secureConnect' : 'connect');
  return secure ? { socket, binding: channelBinding(socket)! } : { socket };
}

/**
 * Writes an upgrade request with the proof header lines given (none, one,
 * or two), and collects what comes back: all of it until the server
 * closes, or, after a 101, the head and the first frame (the ID).
 */
async function upgrade(socket: net.Socket, headers: string[]): Promise<{ head: string; rest: Buffer }> {
  const lines = [
    'GET / HTTP/1.1',
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    ...headers.map((value) => `X-Tunnel-Pool-Auth: ${value}`),
  ];
  socket.write(`${lines.join('\r\n')}\r\n\r\n`);
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no complete answer within 5000 ms')), 5000);
    const done = (): void => {
      clearTimeout(timer);
      resolve();
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      const end = all.indexOf('\r\n\r\n');
      // A 101 leaves the connection open: its head plus one 6-byte frame (the ID) is the whole answer we wait for.
      if (end >= 0 && all.subarray(0, 12).toString('latin1') === 'HTTP/1.1 101' && all.length >= end + 4 + 6) done();
    });
    socket.once('close', done);
  });
  const all = Buffer.concat(chunks);
  const end = all.indexOf('\r\n\r\n');
  return { head: all.subarray(0, end).toString('latin1'), rest: all.subarray(end + 4) };
}

/** A refusal as the design fixes it: 401, the challenge, the one body, and the connection closed (no upgrade, no ID). */
function expectRefused(answer: { head: string; rest: Buffer }): void {
  expect(answer.head).toMatch(/^HTTP\/1\.1 401 Unauthorized\r\n/);
  expect(answer.head).toMatch(/\r\nWWW-Authenticate: X-Tunnel-Pool-Auth v1(\r\n|$)/i);
  expect(answer.head.toLowerCase()).not.toContain('x-tunnel-pool-auth:');
  expect(answer.rest.toString('latin1')).toBe('unauthorized\n');
}

/** Nothing a stranger did left a stream the server would hand out. */
async function expectNothingPooled(server: ServerPool): Promise<void> {
  await expect(server.incomingGet(300)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
}

const OWN_PORT: Array<[string, boolean]> = [
  ['ws', false],
  ['wss', true],
];
describe.each(OWN_PORT)('%s auth on the pool\'s own port', (_name, secure) => {
  it('a client with either key of the rotation gets streams that carry data, and the server stream names the key', async () => {
    const server = await authServer(secure);
    const port = server.address()!.port;
    for (const [key, id] of [[KEY_A, 'old'], [KEY_B, 'new']] as const) {
      const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, ...(secure ? { tls: '1' } : {}), auth: { key }, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 } as never);
      scope.defer(() => client.close());
      client.start();
      await client.waitForActive(1, 5000);
      await expectKeyedEcho(await handOff({ server, client, port, close: async () => undefined }, `key:${id}`), id);
    }
    expect(authRefusals(server)).toBe(0);
  });

  it('a wrong key: AuthRefusedError, counted, nothing pooled, the keys in no error, stats or log line', async () => {
    const { logger, lines: logs } = recordingLogger();
    const server = await authServer(secure, serverAuth, { logger });
    const client = idleClient(server.address()!.port, secure, { auth: { key: WRONG_KEY }, logger });
    const error = await failureOf(dialOnce(client));
    expect(error).toBeInstanceOf(AuthRefusedError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH_REFUSED' });
    expect(authRefusals(server)).toBe(1);
    await expectNothingPooled(server);
    expectNoKey([String((error as Error).message), (error as Error).stack ?? '', JSON.stringify(server.stats), JSON.stringify(client.stats), ...logs], [KEY_A, KEY_B, WRONG_KEY]);
  });

  it('a client without auth against a server with auth: AuthHandshakeError "required"', async () => {
    const server = await authServer(secure);
    const error = await failureOf(dialOnce(idleClient(server.address()!.port, secure)));
    expect(error).toBeInstanceOf(AuthHandshakeError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'required' });
    expect(authRefusals(server)).toBe(1);
  });

  it('a client with auth against a server without: AuthHandshakeError "not-supported", the ID never taken', async () => {
    const server = await authServer(secure, null);
    const error = await failureOf(dialOnce(idleClient(server.address()!.port, secure, { auth: { key: KEY_A } })));
    expect(error).toBeInstanceOf(AuthHandshakeError);
    expect(error).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'not-supported' });
  });

  it('no header, a malformed, a truncated and a doubled header are each refused with 401 and no ID', async () => {
    const server = await authServer(secure);
    const port = server.address()!.port;
    const cases: Array<(binding?: Buffer) => string[]> = [
      () => [],
      () => ['hello'],
      (binding) => [new HeaderClientAuth(clientAuth(), 'ws', binding).proof().header.slice(0, -3)],
      (binding) => [`${new HeaderClientAuth(clientAuth(), 'ws', binding).proof().header}=`],
      (binding) => {
        const header = new HeaderClientAuth(clientAuth(), 'ws', binding).proof().header;
        return [header, header];
      },
      (binding) => [new HeaderClientAuth(clientAuth(WRONG_KEY), 'ws', binding).proof().header],
      // The right key, proved for another transport.
      (binding) => [new HeaderClientAuth(clientAuth(), 'http2', binding).proof().header],
    ];
    for (const headers of cases) {
      const { socket, binding } = await rawConnection(port, secure);
      expectRefused(await upgrade(socket, headers(binding)));
    }
    expect(authRefusals(server)).toBe(cases.length);
    await expectNothingPooled(server);
  });

  it('a replayed header (the same proof on a second connection) is refused; the first was served with the server\'s proof', async () => {
    const server = await authServer(secure);
    const port = server.address()!.port;
    const first = await rawConnection(port, secure);
    const header = new HeaderClientAuth(clientAuth(KEY_B), 'ws', first.binding).proof().header;
    const served = await upgrade(first.socket, [header]);
    expect(served.head).toMatch(/^HTTP\/1\.1 101 /);
    expect(served.head).toMatch(/\r\nx-tunnel-pool-auth: v1\.[A-Za-z0-9_-]{43}(\r\n|$)/i);
    expect([...served.rest.subarray(0, 2)]).toEqual([0x82, 0x04]); // the ID message follows the 101
    const [, pooled] = await server.incomingGet(5000);
    track(pooled);
    expect(streamIdentity(pooled)).toEqual({ kind: 'key', id: 'new' });
    const again = await rawConnection(port, secure);
    expectRefused(await upgrade(again.socket, [header]));
    expect(authRefusals(server)).toBe(1);
    await expectNothingPooled(server);
  });
});

describe.each(OWN_PORT)('%s auth: a flood of wrong keys', (_name, secure) => {
  it('from one address, never stops an honest client from getting streams', async () => {
    const server = await authServer(secure);
    const port = server.address()!.port;
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, ...(secure ? { tls: '1' } : {}), auth: { key: KEY_B }, minCap: 2, maxCap: 2, minIvl: 50, maxIvl: 50 } as never);
    scope.defer(() => client.close());
    client.start();
    const attempts = await honestDuringFlood(
      async () => {
        const { socket, binding } = await rawConnection(port, secure, '127.0.0.2');
        expectRefused(await upgrade(socket, [new HeaderClientAuth(clientAuth(WRONG_KEY), 'ws', binding).proof().header]));
      },
      () => handOff({ server, client, port, close: async () => undefined }),
      'new',
    );
    expect(authRefusals(server)).toBe(attempts);
  });
});

describe('wss auth: bound to the TLS connection', () => {
  it('a header proved on one connection is refused on another, and still good on its own', async () => {
    const server = await authServer(true);
    const port = server.address()!.port;
    const a = await rawConnection(port, true);
    const b = await rawConnection(port, true);
    expect(a.binding!.equals(b.binding!)).toBe(false);
    const fromA = new HeaderClientAuth(clientAuth(), 'ws', a.binding).proof().header;
    expectRefused(await upgrade(b.socket, [fromA]));
    expect((await upgrade(a.socket, [fromA])).head).toMatch(/^HTTP\/1\.1 101 /);
    expect(authRefusals(server)).toBe(1);
  });

  it('the client makes the TLS connection itself and still checks the pin: the pinned server works, another is refused before the upgrade', async () => {
    const server = await authServer(true);
    const port = server.address()!.port;
    const pinned = idleClient(port, true, { auth: { key: KEY_A }, pin: testCertificate().fingerprint.certificate.hex });
    const good = await dialOnce(pinned);
    track(good.stream);
    expect(good.id).toMatch(/^[0-9a-f]{8}$/);
    const other = idleClient(port, true, { auth: { key: KEY_A }, pin: `sha256/${Buffer.alloc(32, 9).toString('base64')}` });
    await expect(dialOnce(other)).rejects.toMatchObject({ code: 'POOL_ERR_CERT_PIN' });
    expect(authRefusals(server)).toBe(0);
  });

  it('the client\'s own TLS connection verifies in mode "2": the right hostname works, a wrong one fails before the upgrade', async () => {
    const server = await authServer(true);
    const port = server.address()!.port;
    const ca = testCertificate().cert;
    const verified = idleClient(port, true, { tls: '2', hostname: 'localhost', ca, auth: { key: KEY_A } });
    track((await dialOnce(verified)).stream);
    const wrong = idleClient(port, true, { tls: '2', hostname: 'wrong.test', ca, auth: { key: KEY_A } });
    await expect(dialOnce(wrong)).rejects.toMatchObject({ code: 'POOL_ERR_HANDSHAKE', message: expect.stringMatching(/wrong\.test/) });
    expect(authRefusals(server)).toBe(0);
  });

  it('channelBinding set differently on the two ends is refused as a wrong proof would be', async () => {
    const server = await authServer(true);
    const client = idleClient(server.address()!.port, true, { auth: { key: KEY_A, channelBinding: false } });
    await expect(dialOnce(client)).rejects.toBeInstanceOf(AuthRefusedError);
    expect(authRefusals(server)).toBe(1);
  });

  it('through an agent, with channelBinding false on both ends: the proof rests on the clock and a nonce, and works', async () => {
    const server = await authServer(true, { ...serverAuth, channelBinding: false });
    const agent = new https.Agent({ keepAlive: false });
    scope.defer(() => agent.destroy());
    const client = idleClient(server.address()!.port, true, { agent, auth: { key: KEY_B, channelBinding: false } });
    const { stream } = await dialOnce(client);
    track(stream);
    const [, pooled] = await server.incomingGet(5000);
    track(pooled);
    expect(streamIdentity(pooled)).toEqual({ kind: 'key', id: 'new' });
  });

  it('an agent cannot be combined with a bound proof: the option error says what to do, without the key', () => {
    const error = thrown(() => wsTransport.client({ address: '127.0.0.1:1', tls: '1', agent: new http.Agent(), auth: { key: KEY_A } } as never)) as InvalidOptionsError;
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.option).toBe('auth.channelBinding');
    expect(error.message).not.toContain(KEY_A);
  });
});

describe('wss auth with mutual TLS', () => {
  it('both a client certificate and a key: the stream is named by the key id; a wrong key is still refused', async () => {
    const ca = createCertificateAuthority({ commonName: 'auth spec CA' });
    const leaf = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const person = ca.issue({ commonName: 'client-7' });
    const server = await authServer(false, serverAuth, { tls: { key: leaf.key, cert: leaf.cert, ca: ca.cert, requestCert: true } });
    const port = server.address()!.port;
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, tls: '1', cert: person.cert, key: person.key, auth: { key: KEY_B }, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 } as never);
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(1, 5000);
    const { server: s } = await handOff({ server, client, port, close: async () => undefined });
    expect(streamIdentity(s)).toEqual({ kind: 'key', id: 'new' });
    const stranger = idleClient(port, true, { cert: person.cert, key: person.key, auth: { key: WRONG_KEY } });
    await expect(dialOnce(stranger)).rejects.toBeInstanceOf(AuthRefusedError);
  });
});

describe('ws:// auth: unbound, the clock and a nonce', () => {
  it('a stale clock is refused before any HMAC; a fresh one from the same key is served', async () => {
    const server = await authServer(false, { ...serverAuth, maxClockSkew: 60_000 });
    const port = server.address()!.port;
    const stale = new HeaderClientAuth(clientAuth(), 'ws', undefined, () => Date.now() - 5 * 60_000).proof().header;
    expectRefused(await upgrade((await rawConnection(port, false)).socket, [stale]));
    const ahead = new HeaderClientAuth(clientAuth(), 'ws', undefined, () => Date.now() + 5 * 60_000).proof().header;
    expectRefused(await upgrade((await rawConnection(port, false)).socket, [ahead]));
    const fresh = new HeaderClientAuth(clientAuth(), 'ws').proof().header;
    expect((await upgrade((await rawConnection(port, false)).socket, [fresh])).head).toMatch(/^HTTP\/1\.1 101 /);
    expect(authRefusals(server)).toBe(2);
  });
});

describe('ws:// auth: arbitrary header values on a live server', () => {
  it('never crash the server and never authenticate: each is a counted 401 with no ID', async () => {
    const server = await authServer(false);
    const port = server.address()!.port;
    const valid = new HeaderClientAuth(clientAuth(), 'ws').proof().header;
    // Printable ASCII (what an HTTP/1.1 header value can carry), trimmed as the parser trims it; and one-character
    // changes of a real header, which must not verify either.
    const printable = fc.string({ unit: fc.integer({ min: 0x21, max: 0x7e }).map((code) => String.fromCharCode(code)), minLength: 1, maxLength: 120 });
    const mutated = fc
      .tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0x21, max: 0x7e }))
      .filter(([at, code]) => valid.charCodeAt(at) !== code)
      .map(([at, code]) => `${valid.slice(0, at)}${String.fromCharCode(code)}${valid.slice(at + 1)}`);
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.oneof(printable, mutated), async (value) => {
        const { socket } = await rawConnection(port, false);
        expectRefused(await upgrade(socket, [value]));
        sent++;
      }),
      runs(40, 5000),
    );
    expect(authRefusals(server)).toBe(sent);
    await expectNothingPooled(server);
  });
});

describe('ws auth attached to an application\'s own http.Server', () => {
  it('the right key gets streams, a wrong one a 401 counted "auth"; the server\'s other routes are untouched', async () => {
    const app = http.createServer((_request, response) => response.end('app\n'));
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => app.close(() => resolve())));
    scope.defer(() => void app.closeAllConnections());
    const server = createServerPool({ transport: 'ws', server: app, path: '/tunnel', auth: serverAuth } as never);
    await server.start();
    scope.defer(() => server.close());
    const port = (app.address() as net.AddressInfo).port;
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, path: '/tunnel', auth: { key: KEY_A }, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 } as never);
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(1, 5000);
    const { server: s, client: c } = await handOff({ server, client, port, close: async () => undefined });
    expect(streamIdentity(s)).toEqual({ kind: 'key', id: 'old' });
    c.write('hi');
    expect((await readBytes(s, 2)).toString()).toBe('hi');
    const stranger = idleClient(port, false, { path: '/tunnel', auth: { key: WRONG_KEY } });
    await expect(dialOnce(stranger)).rejects.toBeInstanceOf(AuthRefusedError);
    expect(authRefusals(server)).toBe(1);
    const page = await new Promise<string>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: '/', agent: false }, (response) => {
        let text = '';
        response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk)).on('end', () => resolve(text));
      }).on('error', reject);
    });
    expect(page).toBe('app\n');
  });
});
