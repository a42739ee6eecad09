import { beforeAll, describe, expect, it } from '@jest/globals';
import https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createCertificateAuthority, type CertificateAuthority, type GeneratedCertificate } from '../../lib/certs/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();
const { track } = scope;

let authority: CertificateAuthority;
let leaf: GeneratedCertificate;
beforeAll(() => {
  authority = createCertificateAuthority();
  leaf = authority.issue({ commonName: 'tunnel.test', altNames: ['tunnel.test', 'localhost', '127.0.0.1'] });
});

// TLS modes (1, 2, a verification that fails), TLS 1.2 refused, one secure
// context per pool: test/conformance, for every TLS transport.
describe('ws transport over TLS 1.3 (wss://)', () => {
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
