import { beforeAll, describe, expect, it } from '@jest/globals';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createCertificateAuthority, createSelfSignedCertificate, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { eventually, readBytes } from '../support/net.js';
import { startWsPair, type WsPair } from './ws-support.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const pair = (...args: Parameters<typeof startWsPair>) => scope.pair(startWsPair, ...args);
const { track } = scope;

let selfSigned: GeneratedCertificate;
let authority: CertificateAuthority;
let leaf: GeneratedCertificate;
beforeAll(() => {
  selfSigned = createSelfSignedCertificate();
  authority = createCertificateAuthority();
  leaf = authority.issue({ commonName: 'tunnel.test', altNames: ['tunnel.test', 'localhost', '127.0.0.1'] });
});

async function echoThrough(p: WsPair): Promise<void> {
  const [id, server] = await p.server.incomingGet(5000);
  track(server);
  const client = track(await p.client.outgoingGet(id, 5000));
  client.write('over wss');
  expect((await readBytes(server, 8)).toString()).toBe('over wss');
  server.write('and back');
  expect((await readBytes(client, 8)).toString()).toBe('and back');
}

const dialOnce = (p: WsPair) => p.client.transport.dial({ signal: new AbortController().signal, readId: true });

describe('ws transport over TLS 1.3 (wss://)', () => {
  it('mode "1": self-signed certificate, no verification', async () => {
    const p = await pair({ tls: { key: selfSigned.key, cert: selfSigned.cert } }, { tls: '1', minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    expect(p.client.stats.transport).toBe('wss');
    expect(p.server.stats.transport).toBe('wss');
    await echoThrough(p);
  });

  it('mode "1" against a server that made its own certificate ("self-signed")', async () => {
    const p = await pair({ tls: 'self-signed' }, { tls: 'insecure' });
    await p.client.waitForActive(1, 5000);
    await echoThrough(p);
  });

  it('mode "2": verified against hostname with a CA made in the test (SNI = hostname)', async () => {
    const p = await pair({ tls: { key: leaf.key, cert: leaf.cert } }, { tls: '2', hostname: 'tunnel.test', ca: authority.cert, minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 5000);
    await echoThrough(p);
  });

  it.each([
    ['the wrong hostname', { hostname: 'other.test', ca: () => authority.cert }, /ERR_TLS_CERT_ALTNAME_INVALID|does not match/],
    ['an untrusted CA', { hostname: 'tunnel.test', ca: () => createCertificateAuthority().cert }, /UNABLE_TO_VERIFY|unable to verify|issuer/i],
  ])('mode "2" with %s: handshake error, counted, pool stays empty, no upgrade', async (_what, setup, pattern) => {
    const p = await pair({ tls: { key: leaf.key, cert: leaf.cert } }, { tls: '2', hostname: setup.hostname, ca: setup.ca(), minCap: 1, maxCap: 1 });
    await eventually(() => (p.client.stats.failures.POOL_ERR_HANDSHAKE ?? 0) >= 1, 5000, 'a handshake failure');
    expect(p.client.active).toBe(0);
    expect(p.server.stats.transportStats['upgrades']).toBe(0);
    await expect(dialOnce(p)).rejects.toMatchObject({ code: 'POOL_ERR_HANDSHAKE', message: expect.stringMatching(pattern) });
  });

  it('the server refuses TLS 1.2 clients and counts it', async () => {
    const p = await pair({ tls: { key: selfSigned.key, cert: selfSigned.cert } }, { tls: '1', minCap: 1, maxCap: 1 });
    await p.client.waitForActive(1, 5000);
    const socket = tls.connect({ port: p.port, host: '127.0.0.1', rejectUnauthorized: false, maxVersion: 'TLSv1.2' });
    const error = await new Promise<{ code?: string }>((resolve) => socket.once('error', resolve));
    socket.destroy();
    expect(String(error.code)).toMatch(/ERR_SSL|ECONNRESET/);
    await eventually(() => (p.server.stats.refusals.tls ?? 0) === 1, 2000, 'a counted tls refusal');
  });

  it('mode "0" to port 443 is wss:// verified against hostname (the Go client’s rule)', async () => {
    const server = createServerPool({ transport: 'ws', port: 0, tls: { key: leaf.key, cert: leaf.cert } });
    await server.start();
    scope.defer(() => server.close());
    const realPort = server.address()!.port;
    // Nothing may listen on 443 here: an https.Agent takes the connection for
    // port 443 (an http.Agent could not: ws:// would not use it) and opens it
    // to the real port with the TLS options the client chose.
    const seen: tls.ConnectionOptions[] = [];
    class RedirectingAgent extends https.Agent {
      override createConnection(options: tls.ConnectionOptions): Duplex {
        seen.push(options);
        return tls.connect({ ...options, port: realPort });
      }
    }
    const agent = new RedirectingAgent();
    scope.defer(() => agent.destroy());
    const client = createClientPool({ transport: 'ws', address: '127.0.0.1:443', hostname: 'tunnel.test', ca: authority.cert, agent, minIvl: 20, maxIvl: 20 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(1, 5000);
    expect(client.stats.transport).toBe('ws');
    expect(seen[0]).toMatchObject({ port: 443, servername: 'tunnel.test', rejectUnauthorized: true, minVersion: 'TLSv1.3' });
    // Verification is on: a hostname the certificate does not name fails.
    const wrong = createClientPool({ transport: 'ws', address: '127.0.0.1:443', hostname: 'other.test', ca: authority.cert, agent });
    scope.defer(() => wrong.close());
    await expect(wrong.transport.dial({ signal: new AbortController().signal, readId: true })).rejects.toMatchObject({
      code: 'POOL_ERR_HANDSHAKE',
      message: expect.stringMatching(/wss:\/\/127\.0\.0\.1:443\/.*(ERR_TLS_CERT_ALTNAME_INVALID|does not match)/),
    });
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
    const server = createServerPool({ transport: 'ws', port: 0, tls: { key: leaf.key, cert: leaf.cert } });
    await server.start();
    scope.defer(() => server.close());
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${server.address()!.port}`, tls: '2', hostname: 'tunnel.test', ca: authority.cert, minCap: 6, maxCap: 6 });
    scope.defer(() => client.close());
    expect(created).toBe(2); // one server context, one client context
    client.start();
    await client.waitForActive(6, 5000);
    expect(created).toBe(2); // none per connection
  });

  it('serves wss on an https.Server it is given', async () => {
    const web = https.createServer({ key: leaf.key, cert: leaf.cert, minVersion: 'TLSv1.3' }, (_request, response) => response.end('web\n'));
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => web.close(() => resolve())));
    scope.defer(() => web.closeAllConnections());
    const server = createServerPool({ transport: 'ws', server: web, path: '/tunnel' });
    await server.start();
    scope.defer(() => server.close());
    expect(server.stats.transport).toBe('wss');
    const port = (web.address() as net.AddressInfo).port;
    const client = createClientPool({ transport: 'ws', address: `127.0.0.1:${port}`, path: '/tunnel', tls: '2', hostname: 'tunnel.test', ca: authority.cert, minIvl: 20, maxIvl: 20 });
    scope.defer(() => client.close());
    client.start();
    await client.waitForActive(1, 5000);
    const [id, theirs] = await server.incomingGet(1000);
    track(theirs);
    const mine = track(await client.outgoingGet(id, 1000));
    mine.write('hello');
    expect((await readBytes(theirs, 5)).toString()).toBe('hello');
  });
});
