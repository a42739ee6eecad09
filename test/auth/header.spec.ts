import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import {
  AUTH_CHALLENGE, AUTH_HEADER, AUTH_REFUSAL, HeaderClientAuth, HeaderServerAuth, ReplayCache, ReplayWindow, channelBinding,
  encodeAuthRequestHeader, encodeAuthResponseHeader, isAuthChallenge, parseAuthRequestHeader, parseAuthResponseHeader,
  resolveClientAuth, resolveServerAuth, type AuthKeyInput, type HeaderCheck,
} from '../../lib/auth/index.js';
import { testCertificate } from '../support/certificate.js';
import { KEY_A, KEY_B, thrown } from './auth-support.js';
import { useTestScope } from '../support/scope.js';

const client = (key = KEY_A, channelBinding = true) => resolveClientAuth({ key, channelBinding })!;
const server = (key: AuthKeyInput | AuthKeyInput[] = KEY_A, extra: Record<string, unknown> = {}) => resolveServerAuth({ key, ...extra })!;

describe('auth header syntax', () => {
  const nonce = Buffer.alloc(16, 0xfb);
  const proof = Buffer.alloc(32, 0x3e);

  it('request: v1.<seq>.<nonce base64url>.<proof base64url>; response: v1.<proof>', () => {
    const value = encodeAuthRequestHeader({ seq: 7, nonce, proof });
    expect(value).toBe(`v1.7.${'-_v7'.repeat(5)}-w.${'Pj4-'.repeat(10)}Pj4`);
    expect(parseAuthRequestHeader(value)).toEqual({ seq: 7, nonce, proof });
    expect(encodeAuthResponseHeader(proof)).toBe(`v1.${proof.toString('base64url')}`);
    expect(parseAuthResponseHeader(encodeAuthResponseHeader(proof))).toEqual(proof);
    expect(() => encodeAuthRequestHeader({ seq: -1, nonce, proof })).toThrow(RangeError);
  });

  it.each([
    ['another version', (v: string) => v.replace(/^v1/, 'v2')],
    ['a leading zero', (v: string) => v.replace('v1.7.', 'v1.07.')],
    ['a seq past 2^53', (v: string) => v.replace('v1.7.', 'v1.9007199254740993.')],
    ['padding', (v: string) => `${v}=`],
    ['a short proof', (v: string) => v.slice(0, -1)],
    ['a long proof', (v: string) => `${v}A`],
    ['a non-canonical last character', (v: string) => `${v.slice(0, -1)}R`],
    ['spaces', (v: string) => ` ${v}`],
    ['standard base64', (v: string) => v.replace(/-/g, '+')],
  ])('a request header with %s is refused', (_name, change) => {
    expect(parseAuthRequestHeader(change(encodeAuthRequestHeader({ seq: 7, nonce, proof })))).toBeUndefined();
  });

  it('non-strings (absent, a repeated header as an array, numbers) are refused, never thrown', () => {
    const value = encodeAuthRequestHeader({ seq: 7, nonce, proof });
    for (const bad of [undefined, null, 7, [value], [value, value], {}, 'x'.repeat(10_000)]) expect(parseAuthRequestHeader(bad)).toBeUndefined();
    for (const bad of [undefined, [encodeAuthResponseHeader(proof)], 'v1.', 'v1.AAAA']) expect(parseAuthResponseHeader(bad)).toBeUndefined();
  });

  it('a refusal is 401 with a challenge that names the scheme and nothing else; a client can recognise it', () => {
    expect(AUTH_REFUSAL).toEqual({ status: 401, headers: { 'www-authenticate': 'X-Tunnel-Pool-Auth v1', 'content-type': 'text/plain; charset=utf-8' }, body: 'unauthorized\n' });
    expect(isAuthChallenge(401, AUTH_CHALLENGE)).toBe(true);
    expect(isAuthChallenge(401, ['Basic realm="x"', AUTH_CHALLENGE])).toBe(true);
    expect(isAuthChallenge(403, AUTH_CHALLENGE)).toBe(false);
    expect(isAuthChallenge(401, 'Basic realm="x"')).toBe(false);
  });
});

describe('replay checks', () => {
  it('ReplayWindow: each number once, late ones within the window, none that fell out of it', () => {
    const window = new ReplayWindow(8);
    expect([0, 1, 2, 5, 3].map((n) => window.accept(n))).toEqual([true, true, true, true, true]);
    expect([2, 5, 0].map((n) => window.accept(n))).toEqual([false, false, false]);
    expect(window.accept(4)).toBe(true);
    expect(window.accept(100)).toBe(true);
    expect(window.accept(92)).toBe(false); // out of the window behind 100
    expect(window.accept(93)).toBe(true);
    expect(window.accept(93)).toBe(false);
    expect([-1, 1.5, Number.MAX_SAFE_INTEGER + 2].map((n) => window.accept(n))).toEqual([false, false, false]);
  });

  it('ReplayCache: fresh once; stale outside the skew; when full the floor rises so nothing forgotten can come back', () => {
    let now = 1_000_000;
    const cache = new ReplayCache(1_000, 3, () => now);
    expect(cache.accept('a', now)).toBe(true);
    expect(cache.accept('a', now)).toBe(false);
    expect(cache.fresh(now - 1_001)).toBe(false);
    expect(cache.fresh(now + 1_001)).toBe(false);
    expect(cache.accept('b', now + 1)).toBe(true);
    expect(cache.accept('c', now + 2)).toBe(true);
    expect(cache.accept('d', now + 3)).toBe(true); // evicts 'a', floor = now
    expect(cache.size).toBe(3);
    expect(cache.accept('a', now)).toBe(false); // forgotten, but at the floor: still refused
    expect(cache.accept('e', now - 5)).toBe(false); // below the floor
    now += 2_000; // everything expires
    expect(cache.accept('f', now)).toBe(true);
    expect(cache.size).toBe(1);
  });
});

describe('header proofs in memory (unbound: the clock and the replay cache)', () => {
  it('accepted once; the same header again is a replay; a proof from another clock time is stale', () => {
    let now = 5_000_000;
    const srv = new HeaderServerAuth(server(), 'ws', () => now);
    const proof = new HeaderClientAuth(client(), 'ws', undefined, () => now).proof();
    const check = srv.connection().check(proof.header);
    expect(check).toMatchObject({ ok: true, keyId: server().keys[0]!.id });
    expect(() => proof.verifyResponse((check as { responseHeader: string }).responseHeader)).not.toThrow();
    expect(srv.connection().check(proof.header)).toEqual({ ok: false, reason: 'replay' });
    const late = new HeaderClientAuth(client(), 'ws', undefined, () => now - 121_000).proof();
    expect(srv.connection().check(late.header)).toEqual({ ok: false, reason: 'stale' });
    now += 121_000;
    expect(srv.connection().check(proof.header)).toEqual({ ok: false, reason: 'stale' });
  });

  it('a wrong key, a missing or malformed header, a proof for the other transport: refused', () => {
    const srv = new HeaderServerAuth(server(), 'ws');
    expect(srv.connection().check(new HeaderClientAuth(client(KEY_B), 'ws').proof().header)).toEqual({ ok: false, reason: 'mismatch' });
    expect(srv.connection().check(new HeaderClientAuth(client(), 'http2').proof().header)).toEqual({ ok: false, reason: 'mismatch' });
    expect(srv.connection().check(undefined)).toEqual({ ok: false, reason: 'missing' });
    expect(srv.connection().check(new HeaderClientAuth(client(), 'ws').proof().header.slice(0, -3))).toEqual({ ok: false, reason: 'malformed' });
  });

  it('a stranger cannot fill the replay cache: only verified proofs are remembered', () => {
    const srv = new HeaderServerAuth(server(), 'ws');
    for (let i = 0; i < 200; i++) srv.connection().check(new HeaderClientAuth(client(KEY_B), 'ws').proof().header);
    expect(srv.cache.size).toBe(0);
  });

  it('the client checks the server\'s proof: none (a server without auth), garbage, or another key\'s', () => {
    const proof = new HeaderClientAuth(client(), 'ws').proof();
    expect(thrown(() => proof.verifyResponse(undefined))).toMatchObject({ code: 'POOL_ERR_AUTH', reason: 'not-supported' });
    expect(thrown(() => proof.verifyResponse('v1.nope'))).toMatchObject({ reason: 'malformed' });
    const impostor = new HeaderServerAuth(server(KEY_A), 'ws').connection().check(new HeaderClientAuth(client(KEY_A), 'ws').proof().header) as { responseHeader: string };
    expect(thrown(() => proof.verifyResponse(impostor.responseHeader))).toMatchObject({ reason: 'server-proof' });
  });
});

// ---- over real HTTP/2 sessions and real wss upgrades on loopback ----

const scope = useTestScope();

interface H2Server {
  port: number;
  checks: HeaderCheck[];
}

/** An http2 server that checks the auth header of each request with one HeaderConnectionAuth per session. */
async function h2Server(auth = server(), bind = true): Promise<H2Server> {
  const { key, cert } = testCertificate();
  const srv = http2.createSecureServer({ key, cert, minVersion: 'TLSv1.3' });
  const front = new HeaderServerAuth(auth, 'http2');
  const perSession = new WeakMap<http2.ServerHttp2Session, ReturnType<HeaderServerAuth['connection']>>();
  const checks: HeaderCheck[] = [];
  srv.on('session', (session) => {
    const binding = channelBinding(session.socket);
    expect(binding).toHaveLength(32);
    perSession.set(session, front.connection(bind ? binding : undefined));
  });
  srv.on('stream', (stream, headers) => {
    const check = perSession.get(stream.session as http2.ServerHttp2Session)!.check(headers[AUTH_HEADER]);
    checks.push(check);
    if (check.ok) {
      stream.respond({ ':status': 200, [AUTH_HEADER]: check.responseHeader });
      stream.end(check.keyId);
    } else {
      stream.respond({ ':status': AUTH_REFUSAL.status, ...AUTH_REFUSAL.headers });
      stream.end(AUTH_REFUSAL.body);
    }
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  scope.defer(() => {
    srv.close();
  });
  return { port: (srv.address() as AddressInfo).port, checks };
}

async function h2Session(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, minVersion: 'TLSv1.3' });
  scope.defer(() => {
    session.destroy();
  });
  await once(session, 'connect');
  return session;
}

/** One POST with the given auth header (or none); the status, the response's auth header and body. */
async function h2Request(session: http2.ClientHttp2Session, header?: string): Promise<{ status: number; auth: unknown; body: string; challenge: unknown }> {
  const request = session.request({ ':method': 'POST', ':path': '/stream', ...(header === undefined ? {} : { [AUTH_HEADER]: header }) });
  const [headers] = (await once(request, 'response')) as [http2.IncomingHttpHeaders];
  let body = '';
  request.setEncoding('utf8');
  for await (const chunk of request) body += chunk as string;
  return { status: Number(headers[':status']), auth: headers[AUTH_HEADER], body, challenge: headers['www-authenticate'] };
}

describe('http2: header proofs bound to the session (real sessions)', () => {
  it('the right key on every stream of a session; the server proves the key back', async () => {
    const srv = await h2Server();
    const session = await h2Session(srv.port);
    expect(channelBinding(session.socket)).toHaveLength(32); // through the session's socket proxy
    const auth = new HeaderClientAuth(client(), 'http2', channelBinding(session.socket));
    for (let i = 0; i < 3; i++) {
      const proof = auth.proof();
      const answer = await h2Request(session, proof.header);
      expect(answer).toMatchObject({ status: 200, body: server().keys[0]!.id });
      proof.verifyResponse(answer.auth);
    }
    expect(srv.checks.map((c) => c.ok)).toEqual([true, true, true]);
  });

  it('refused with a bare 401 whatever the cause: no header, wrong key, a replay on the session, a header from another session, a truncated one', async () => {
    const srv = await h2Server();
    const [one, two] = [await h2Session(srv.port), await h2Session(srv.port)];
    const good = new HeaderClientAuth(client(), 'http2', channelBinding(one.socket)).proof().header;
    expect((await h2Request(one, good)).status).toBe(200);
    const refused = [
      await h2Request(one),
      await h2Request(one, new HeaderClientAuth(client(KEY_B), 'http2', channelBinding(one.socket)).proof().header),
      await h2Request(one, good),
      await h2Request(two, good),
      await h2Request(one, good.slice(0, 40)),
    ];
    for (const answer of refused) expect(answer).toEqual({ status: 401, auth: undefined, body: 'unauthorized\n', challenge: AUTH_CHALLENGE });
    expect(srv.checks.slice(1).map((c) => (c.ok ? 'ok' : c.reason))).toEqual(['missing', 'mismatch', 'replay', 'mismatch', 'malformed']);
  });

  it('key rotation: two keys on the server, each client identified by its key id', async () => {
    const both = server([KEY_A, { id: 'next', key: KEY_B }]);
    const srv = await h2Server(both);
    const bodies = [];
    for (const key of [KEY_A, KEY_B]) {
      // One client pool, one key, its own sessions: proofs are numbered per session.
      const session = await h2Session(srv.port);
      bodies.push((await h2Request(session, new HeaderClientAuth(client(key), 'http2', channelBinding(session.socket)).proof().header)).body);
    }
    expect(bodies).toEqual([both.keys[0]!.id, 'next']);
  });

  it('channelBinding false on both ends (a proxy terminates TLS): the clock and the replay cache do the work', async () => {
    const srv = await h2Server(server(KEY_A, { channelBinding: false }), false);
    const session = await h2Session(srv.port);
    const proof = new HeaderClientAuth(client(KEY_A, false), 'http2').proof();
    expect((await h2Request(session, proof.header)).status).toBe(200);
    expect((await h2Request(session, proof.header)).status).toBe(401);
    expect(srv.checks.map((c) => (c.ok ? 'ok' : c.reason))).toEqual(['ok', 'replay']);
  });

  it('a client that binds while the server does not (or the reverse) is refused, not half-accepted', async () => {
    const srv = await h2Server(server(), false);
    const session = await h2Session(srv.port);
    expect((await h2Request(session, new HeaderClientAuth(client(), 'http2', channelBinding(session.socket)).proof().header)).status).toBe(401);
  });
});

describe('ws: header proofs on a real wss upgrade', () => {
  /** A wss server checking the upgrade's auth header (bound to the connection's TLS); the client dials TLS first, then upgrades over that socket. */
  async function wssServer(auth = server()): Promise<{ port: number; checks: HeaderCheck[] }> {
    const { key, cert } = testCertificate();
    const srv = https.createServer({ key, cert, minVersion: 'TLSv1.3' });
    const wss = new WebSocketServer({ noServer: true });
    const front = new HeaderServerAuth(auth, 'ws');
    const checks: HeaderCheck[] = [];
    srv.on('upgrade', (request, socket, head) => {
      const binding = channelBinding(request.socket);
      expect(binding).toHaveLength(32);
      const check = front.connection(binding).check(request.headers[AUTH_HEADER]);
      checks.push(check);
      if (!check.ok) {
        socket.end(`HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: ${AUTH_CHALLENGE}\r\nContent-Length: 13\r\nConnection: close\r\n\r\n${AUTH_REFUSAL.body}`);
        return;
      }
      wss.once('headers', (headers) => headers.push(`X-Tunnel-Pool-Auth: ${check.responseHeader}`));
      wss.handleUpgrade(request, socket, head, (ws) => ws.close(1000));
    });
    srv.listen(0, '127.0.0.1');
    await once(srv, 'listening');
    scope.defer(() => {
      for (const ws of wss.clients) ws.terminate();
      srv.closeAllConnections();
      srv.close();
    });
    return { port: (srv.address() as AddressInfo).port, checks };
  }

  async function upgrade(port: number, auth = client()): Promise<{ status: number; verified: boolean | string }> {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, minVersion: 'TLSv1.3' });
    scope.defer(() => {
      socket.destroy();
    });
    await once(socket, 'secureConnect');
    expect(channelBinding(socket)).toHaveLength(32);
    const proof = new HeaderClientAuth(auth, 'ws', channelBinding(socket)).proof();
    const ws = new WebSocket(`wss://127.0.0.1:${port}/`, { createConnection: () => socket, headers: { [AUTH_HEADER]: proof.header } });
    scope.defer(() => {
      ws.terminate();
    });
    return new Promise((resolve) => {
      ws.on('upgrade', (response) => {
        try {
          proof.verifyResponse(response.headers[AUTH_HEADER]);
          resolve({ status: 101, verified: true });
        } catch (error) {
          resolve({ status: 101, verified: (error as { reason: string }).reason });
        }
      });
      ws.on('unexpected-response', (_request, response) => resolve({ status: response.statusCode ?? 0, verified: false }));
      ws.on('error', () => undefined);
    });
  }

  it('the right key upgrades and the server proves the key back; a wrong key gets 401', async () => {
    const srv = await wssServer();
    await expect(upgrade(srv.port)).resolves.toEqual({ status: 101, verified: true });
    await expect(upgrade(srv.port, client(KEY_B))).resolves.toEqual({ status: 401, verified: false });
    expect(srv.checks.map((c) => (c.ok ? 'ok' : c.reason))).toEqual(['ok', 'mismatch']);
  });
});
