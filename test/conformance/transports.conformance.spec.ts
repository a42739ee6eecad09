/**
 * What every transport promises, run once per transport kind of the table in
 * test/support/kinds.ts (tcp, tls, http2, ws, wss) and for the socket
 * transport of test/third-party, built outside the library from its public
 * exports only: real pools on both ends
 * over real sockets on 127.0.0.1. Where kinds differ (half-close, how a
 * refusal reaches the client, the first ID) the table says so; a spec under
 * test/<transport> holds only what that transport does on its own.
 */
import { beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createCertificateAuthority, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { StreamCutError } from '../../lib/core/errors.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { conformanceKinds, mutualTlsKinds, sharedKeyKinds, type KindSpec } from '../support/kinds.js';
import { socketKind } from '../third-party/socket-kind.js';
import { connect, eventually, listenRaw, readBytes, requestThenReply, sleep } from '../support/net.js';
import { startPair, type PoolPair } from '../support/pools.js';
import { maxFailingRounds } from '../reliability/support.js';
import { startProxy } from '../support/proxy.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const { track, handOff } = scope;

const dialOnce = (client: ClientPool) => client.transport.dial({ signal: new AbortController().signal, readId: true });
const sum = (counts: Record<string, number>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** One more dial fails the way the kind says a refusal of this sort reaches the client. */
async function expectRefusedDial(client: ClientPool, refused: KindSpec['refusedIp']): Promise<void> {
  await expect(dialOnce(client)).rejects.toMatchObject({
    code: refused.code,
    ...(refused.name ? { name: refused.name } : {}),
    ...(refused.message ? { message: expect.stringMatching(refused.message) } : {}),
  });
}

/** A port nothing listens on (bound once, then freed). */
async function deadPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves with the error `stream` emits. */
function errorOf(stream: Duplex, timeout = 5000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no error within ${timeout} ms`)), timeout);
    stream.once('error', (error) => {
      clearTimeout(timer);
      resolve(error as never);
    });
  });
}

/** How a test kills a stream it took, on either side, while the other end of it is still idle in its pool. */
const KILLS: ReadonlyArray<[string, (stream: Duplex) => void, string | undefined]> = [
  ['destroys it', (stream) => stream.destroy(), undefined],
  // As an application would, it reads on after ending its side. The other end sees a clean end.
  ['ends its side', (stream) => stream.end().resume(), 'end'],
];
const IDLE_DEATHS = (['server', 'client'] as const).flatMap((side) => KILLS.map(([how, kill, reason]) => [side, how, kill, reason] as const));

const KINDS = conformanceKinds(socketKind, ...mutualTlsKinds(), ...sharedKeyKinds());

describe.each(KINDS)('$name transport conformance', (kind: KindSpec<string>) => {
  const pair = (server: Record<string, unknown> = {}, client: Record<string, unknown> = {}): Promise<PoolPair> =>
    scope.pair(startPair, { ...kind.server, ...server }, { ...kind.client, ...client });

  it('fills both pools, matches streams by ID and carries data both ways', async () => {
    const p = await pair({}, { minCap: 3, maxCap: 3 });
    await p.client.waitForActive(3, 5000);
    await eventually(() => p.server.active === 3, 5000, 'the server side to hold 3');
    const first = await handOff(p);
    if (kind.firstIdZero) expect(first.id).toBe('00000000');
    expect(first.id).toMatch(/^[0-9a-f]{8}$/);
    kind.expectStreams(first.client, first.server);
    first.client.write('ping from client');
    expect((await readBytes(first.server, 16)).toString()).toBe('ping from client');
    first.server.write('pong from server');
    expect((await readBytes(first.client, 16)).toString()).toBe('pong from server');
    const second = await handOff(p);
    expect(second.id).toMatch(/^[0-9a-f]{8}$/);
    expect(second.id).not.toBe(first.id);
    if (kind.firstIdZero) expect(second.id).not.toBe('00000000');
    expect(p.client.stats.transport).toBe(kind.transportName ?? kind.name);
    expect(p.server.stats.transport).toBe(kind.transportName ?? kind.name);
    if (kind.handshakesStat) expect(p.server.stats.transportStats[kind.handshakesStat]).toBe(3);
  });

  it('keeps bytes the server sends before outgoingGet, in order', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const [id, server] = await p.server.incomingGet(5000);
    track(server);
    server.write('first|');
    server.write('second|');
    server.write('third');
    await sleep(100);
    const client = track(await p.client.outgoingGet(id, 1000));
    expect((await readBytes(client, 18)).toString()).toBe('first|second|third');
  });

  if (kind.halfClose) {
    const request = Buffer.from('GET / HTTP/1.0\r\n\r\n');
    const reply = randomBytes(256 * 1024);
    it.each<[string, 'client' | 'server']>([
      ["half-close: a request, the client's end, then the server's reply after it", 'client'],
      ["half-close the other way: the server's end first, then the client's answer", 'server'],
    ])('%s', async (_what, asks) => {
      const p = await pair({}, { minCap: 1, maxCap: 1 });
      await p.client.waitForActive(1, 5000);
      const { server, client } = await handOff(p);
      const got = asks === 'client' ? await requestThenReply(client, server, request, reply) : await requestThenReply(server, client, request, reply);
      expect(got.request.equals(request)).toBe(true);
      expect(got.reply.length).toBe(reply.length);
      expect(got.reply.equals(reply)).toBe(true);
      // Both directions ended: both streams close on their own.
      await eventually(() => client.destroyed && server.destroyed, 5000, 'both streams to close');
      kind.expectGracefulEnd?.(p);
    });
  }

  it('resolves an outgoingGet issued before its stream arrived, once it arrives (not at the next round)', async () => {
    // The server issues 00000000 first, so the ID is known before any dial.
    const p = await pair(kind.zeroFirst, { ...kind.zeroFirst, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000 });
    expect(p.client.active).toBe(0);
    const client = track(await p.client.outgoingGet('00000000', 5000));
    const [id, server] = await p.server.incomingGet(5000);
    track(server);
    expect(id).toBe('00000000');
    server.write('payload');
    expect((await readBytes(client, 7)).toString()).toBe('payload');
  });

  if (kind.serverHandshake) {
    it('a silent connection cannot hold a handshake slot past handshakeTimeout: cut, counted, others still served', async () => {
      const p = await pair({ handshakeTimeout: 200, maxCap: 4 }, { minCap: 1, maxCap: 1 });
      const silent = await Promise.all([connect(p.port), connect(p.port), connect(p.port)]);
      for (const socket of silent) {
        socket.on('error', () => undefined);
        track(socket);
      }
      await p.client.waitForActive(1, 5000);
      // (At least three: on a loaded machine the real client's own handshake may miss 200 ms too, and is dialed again.)
      await eventually(() => (p.server.stats.refusals['handshake-timeout'] ?? 0) >= 3, 5000, 'three handshake timeouts');
      await eventually(() => silent.every((socket) => socket.destroyed || socket.readableEnded), 5000, 'silent sockets closed');
      await eventually(() => p.server.stats.handshaking === 0 && p.server.active === 1, 5000, 'no handshake left, the real stream pooled');
    });
  }

  it('rejects an unknown ID, and a get with nothing idle, with POOL_ERR_TIMEOUT', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, refill: 'rounds' });
    await p.client.waitForActive(1, 5000);
    await expect(p.client.outgoingGet('ffffffff', 100)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT', name: 'PoolTimeoutError' });
    expect(p.client.active).toBe(1);
    await handOff(p);
    await expect(p.server.incomingGet(50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT', name: 'PoolTimeoutError' });
  });

  it('refuses peers outside allowedIps, typed on the client, counted on both sides', async () => {
    const p = await pair({ allowedIps: '10.9.9.9' }, { minCap: 1, maxCap: 1 });
    await eventually(() => (p.client.stats.failures[kind.refusedIp.code] ?? 0) >= 1, 5000, 'a refused dial');
    expect(p.server.stats.refusals.ip).toBeGreaterThanOrEqual(1);
    expect(p.client.active).toBe(0);
    expect(p.server.active).toBe(0);
    if (kind.handshakesStat) expect(p.server.stats.transportStats[kind.handshakesStat]).toBe(0);
    await expectRefusedDial(p.client, kind.refusedIp);
  });

  it('refuses beyond maxCap, typed on the client, which keeps what it got', async () => {
    const p = await pair({ maxCap: 2 }, { minCap: 4, maxCap: 4 });
    await eventually(() => (p.server.stats.refusals.full ?? 0) >= 1, 5000, 'a full refusal');
    // Refused while the two it took may still be in their handshake: they become its two streams.
    await eventually(() => p.server.active === 2, 5000, 'the server to hold 2');
    await p.client.waitForActive(2, 5000);
    await eventually(() => (p.client.stats.failures[kind.refusedFull.code] ?? 0) >= 1, 5000, `a ${kind.refusedFull.code} failure on the client`);
    expect(p.client.active).toBe(2);
    expect(p.server.active).toBe(2);
    if (kind.handshakesStat) expect(p.server.stats.transportStats[kind.handshakesStat]).toBe(2);
    await expectRefusedDial(p.client, kind.refusedFull);
  });

  it('reports a dead server as a typed dial failure (POOL_ERR_DIAL) and backs off, without crashing', async () => {
    const client = createClientPool({ ...kind.client, address: `127.0.0.1:${await deadPort()}`, minIvl: 20, maxIvl: 20, maxBackoff: 200 } as never);
    scope.defer(() => client.close());
    const started = Date.now();
    client.start();
    await eventually(() => (client.stats.failures.POOL_ERR_DIAL ?? 0) >= 4, 5000, 'four failed dials');
    // Backed off: fewer rounds than the 20 ms interval would start (one dial each: a failed round starts with one probe).
    const { totals, failedRounds } = client.stats;
    expect(totals.dials).toBeLessThanOrEqual(maxFailingRounds(Date.now() - started, 20, 200));
    expect(failedRounds).toBeGreaterThanOrEqual(4);
    expect(client.active).toBe(0);
    expect(client.ready).toBe(true);
    await expect(dialOnce(client)).rejects.toMatchObject({ code: 'POOL_ERR_DIAL', name: 'DialError' });
  });

  it('a server that accepts and never answers: the dial is cut at its timeout, typed (POOL_ERR_HANDSHAKE) and counted', async () => {
    const silent = await listenRaw((socket) => socket.resume());
    scope.defer(() => silent.close());
    const timeouts = Object.fromEntries(kind.clientHandshakeTimeouts.map((option) => [option, 100]));
    const client = createClientPool({ ...kind.client, address: `127.0.0.1:${silent.port}`, ...timeouts, minIvl: 20, maxIvl: 20 } as never);
    scope.defer(() => client.close());
    client.start();
    await eventually(() => (client.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 2, 5000, 'two handshake timeouts');
    expect(client.active).toBe(0);
    await expect(dialOnce(client)).rejects.toMatchObject({ code: 'POOL_ERR_HANDSHAKE', name: 'HandshakeError' });
    // Each cut dial closed its connection.
    await eventually(() => silent.sockets.every((socket) => socket.destroyed || socket.readableEnded), 5000, 'the cut connections to close');
  });

  it.each(IDLE_DEATHS)('idle death: the %s side %s; the idle stream at the other end is dropped, counted, never handed out', async (side, _how, kill, reason) => {
    const other = side === 'server' ? 'client' : 'server';
    // The client can only take a stream whose ID it knows: the server issues 00000000 first then.
    const ids = side === 'client' ? kind.zeroFirst : {};
    const p = await pair(ids, { ...ids, minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    await eventually(() => p.server.active === 2, 5000, 'the server side to hold 2');
    const [id, stream] = side === 'server' ? await p.server.incomingGet(5000) : ['00000000', await p.client.outgoingGet('00000000', 5000)];
    track(stream);
    kill(stream);
    await eventually(() => sum(p[other].stats.drops) === 1, 5000, `a drop on the ${other} side`);
    if (reason) expect(p[other].stats.drops[reason]).toBe(1);
    expect(p[other].errorCount).toBe(1);
    // Dropped means destroyed: the killed stream's connection closes too.
    await eventually(() => stream.destroyed, 5000, `the ${side} side to close`);
    if (other === 'client') {
      await expect(p.client.outgoingGet(id, 50)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    } else {
      // Whatever the server hands out now, never the dead one.
      const handedOut: string[] = [];
      for (let i = 0; i < 4 && p.server.active > 0; i++) {
        const [next, taken] = await p.server.incomingGet(1000);
        track(taken);
        handedOut.push(next);
      }
      expect(handedOut).not.toContain(id);
    }
    // The client refills what it lost.
    await p.client.waitForActive(2, 5000);
  });

  it('a connection cut mid-use (reset) is an error on both taken streams, not a clean end; the pool refills', async () => {
    const server = createServerPool({ ...kind.server, host: '127.0.0.1', port: 0 } as never);
    await server.start();
    scope.defer(() => server.close());
    const proxy = await startProxy(server.address()!.port);
    scope.defer(() => proxy.close());
    const client = createClientPool({ ...kind.client, address: `127.0.0.1:${proxy.port}`, minCap: 1, maxCap: 1, minIvl: 50, maxIvl: 50 } as never);
    scope.defer(() => client.close());
    client.start();
    const [id, serverSide] = await server.incomingGet(5000);
    track(serverSide);
    const clientSide = track(await client.outgoingGet(id, 5000));
    clientSide.write('before the cut');
    expect((await readBytes(serverSide, 14)).toString()).toBe('before the cut');
    const errors = [clientSide, serverSide].map((stream) => {
      stream.resume();
      return errorOf(stream);
    });
    proxy.reset();
    // One code on every kind; where the transport makes the error, one class too (tcp's is often Node's own).
    for (const error of await Promise.all(errors)) {
      expect(error).toMatchObject({ code: 'ECONNRESET', message: expect.any(String) });
      if (kind.typedCut) expect(error).toBeInstanceOf(StreamCutError);
    }
    // The connection (or session) is gone: the pool dials again through the proxy.
    await eventually(() => proxy.connections >= 2 && client.active === 1, 5000, 'a refill');
  });

  it('close(): pending gets reject with POOL_ERR_CLOSED, the port is freed, taken streams live on until they end', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const { server, client } = await handOff(p);
    const pendingOut = expect(p.client.outgoingGet('12345678', 10_000)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED', name: 'PoolClosedError' });
    const pendingIn = expect(p.server.incomingGet(10_000)).rejects.toMatchObject({ code: 'POOL_ERR_CLOSED', name: 'PoolClosedError' });
    const closing = p.close();
    await pendingOut;
    await pendingIn;
    await expect(connect(p.port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    client.write('still here');
    expect((await readBytes(server, 10)).toString()).toBe('still here');
    server.write('and here');
    expect((await readBytes(client, 8)).toString()).toBe('and here');
    expect(p.client.stats.state).toBe('closing');
    // close() waits for the taken streams (up to closeTimeout): the application ends them.
    client.destroy();
    server.destroy();
    await closing;
    expect(p.client.stats.state).toBe('closed');
    expect(p.server.stats.state).toBe('closed');
  });

  it.each<['server' | 'client']>([['server'], ['client']])('close(): the %s pool cuts the streams it handed out at closeTimeout with POOL_ERR_CLOSED', async (side) => {
    const p = await pair({ closeTimeout: 150 }, { closeTimeout: 150, minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const streams = await handOff(p);
    const other = side === 'server' ? 'client' : 'server';
    const cut = errorOf(streams[side]);
    // The other end does not stay as it was: it hears the end of its peer (an error, or the end of
    // what it reads on a half-open kind, whose own side stays the application's to end).
    const peerHeard = new Promise<Error | 'end'>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the ${other} side heard nothing within 5000 ms`)), 5000);
      const heard = (what: Error | 'end'): void => {
        clearTimeout(timer);
        resolve(what);
      };
      streams[other].once('error', heard);
      // Where the kind says what the peer hears, wait for that error.
      if (!(kind.cutSeenByPeer && side === 'server')) {
        streams[other].once('end', () => heard('end'));
        streams[other].once('close', () => heard('end'));
      }
      streams[other].resume();
    });
    await p[side].close();
    expect(await cut).toMatchObject({ code: 'POOL_ERR_CLOSED', name: 'PoolClosedError' });
    expect(streams[side].destroyed).toBe(true);
    const heard = await peerHeard;
    if (kind.cutSeenByPeer && side === 'server') expect(heard).toMatchObject(kind.cutSeenByPeer);
  });

  it('single mode: no ID exchange, outgoingGet("") takes any stream of a plain echo peer', async () => {
    const peer = await kind.echoPeer();
    scope.defer(() => peer.close());
    const client = createClientPool({ ...kind.client, address: `127.0.0.1:${peer.port}`, isSingle: true, minCap: 2, maxCap: 2, minIvl: 50, maxIvl: 50 } as never);
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(2, 5000);
    const stream = track(await client.outgoingGet('', 1000));
    stream.write('echo me');
    expect((await readBytes(stream, 7)).toString()).toBe('echo me');
  });
});

// The TLS modes replace the server's TLS options: variants that are TLS options themselves (mutual TLS) are not rerun here.
describe.each(KINDS.filter((kind) => kind.tls && kind.transportName === undefined))('$name transport conformance: TLS modes', (kind: KindSpec<string>) => {
  const pair = (server: Record<string, unknown> = {}, client: Record<string, unknown> = {}): Promise<PoolPair> =>
    scope.pair(startPair, { ...kind.server, ...server }, { ...kind.client, ...client });

  let authority: CertificateAuthority;
  let leaf: GeneratedCertificate;
  beforeAll(() => {
    authority = createCertificateAuthority();
    leaf = authority.issue({ commonName: 'tunnel.test', altNames: ['tunnel.test', 'localhost', '127.0.0.1'] });
  });
  const leafServer = () => ({ tls: { key: leaf.key, cert: leaf.cert } });

  async function echoThrough(p: PoolPair): Promise<void> {
    const { server, client } = await handOff(p);
    kind.expectStreams(client, server);
    client.write('over tls');
    expect((await readBytes(server, 8)).toString()).toBe('over tls');
    server.write('and back');
    expect((await readBytes(client, 8)).toString()).toBe('and back');
  }

  it('mode "1" ("insecure") against a server that made its own certificate ("self-signed")', async () => {
    const p = await pair({ tls: 'self-signed' }, { tls: 'insecure', minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    await echoThrough(p);
  });

  it.each([
    ['a name', '2', 'tunnel.test'],
    ['an IP, against the certificate IP SAN', 'verify', '127.0.0.1'],
  ])('mode "2": verified against hostname (%s) with a CA made in the test', async (_what, mode, hostname) => {
    const p = await pair(leafServer(), { tls: mode, hostname, ca: authority.cert, minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    await echoThrough(p);
  });

  it.each([
    ['the wrong hostname', { hostname: 'other.test', ca: () => authority.cert, selfSigned: false }, /ERR_TLS_CERT_ALTNAME_INVALID|does not match/],
    ['an untrusted CA', { hostname: 'tunnel.test', ca: () => createCertificateAuthority().cert, selfSigned: false }, /UNABLE_TO_VERIFY|unable to verify|issuer/i],
    ['no CA (self-signed server, system roots)', { hostname: 'localhost', ca: () => undefined, selfSigned: true }, /SELF_SIGNED|self.signed|unable to verify/i],
  ])('mode "2" with %s: a counted handshake error saying why, the pool stays empty', async (_what, setup, pattern) => {
    const ca = setup.ca();
    const p = await pair(setup.selfSigned ? {} : leafServer(), { tls: '2', hostname: setup.hostname, ...(ca ? { ca } : {}), minCap: 1, maxCap: 1 });
    await eventually(() => (p.client.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 1, 5000, 'a handshake failure');
    expect(p.client.active).toBe(0);
    expect(p.client.errorCount).toBeGreaterThanOrEqual(1);
    if (kind.handshakesStat) expect(p.server.stats.transportStats[kind.handshakesStat]).toBe(0);
    await expect(p.client.outgoingGet('00000001', 100)).rejects.toMatchObject({ code: 'POOL_ERR_TIMEOUT' });
    await expect(dialOnce(p.client)).rejects.toMatchObject({ code: 'POOL_ERR_HANDSHAKE', name: 'HandshakeError', message: expect.stringMatching(pattern) });
  });

  it('the server refuses TLS 1.2 clients and counts it', async () => {
    const p = await pair({}, { minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const socket = tls.connect({ port: p.port, host: '127.0.0.1', rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    const error = await new Promise<{ code?: string }>((resolve) => socket.once('error', resolve));
    socket.destroy();
    expect(String(error.code)).toMatch(/ERR_SSL|ECONNRESET/);
    await eventually(() => (p.server.stats.refusals.tls ?? 0) === 1, 2000, 'a counted tls refusal');
    expect(p.server.active).toBe(1);
  });

  it('builds one secure context per pool and reuses it for every connection', async () => {
    const create = tls.createSecureContext;
    let created = 0;
    (tls as { createSecureContext: typeof tls.createSecureContext }).createSecureContext = (...args) => {
      created++;
      return create(...args);
    };
    scope.defer(() => {
      (tls as { createSecureContext: typeof tls.createSecureContext }).createSecureContext = create;
    });
    const server = createServerPool({ ...kind.server, ...leafServer(), host: '127.0.0.1', port: 0 } as never);
    await server.start();
    scope.defer(() => server.close());
    const client = createClientPool({ ...kind.client, address: `127.0.0.1:${server.address()!.port}`, tls: '2', hostname: 'tunnel.test', ca: authority.cert, minCap: 6, maxCap: 6 } as never);
    scope.defer(() => client.close());
    expect(created).toBe(2); // one server context, one client context
    client.start();
    await client.waitForActive(6, 5000);
    expect(created).toBe(2); // none per connection
  });
});
