/**
 * TLS session resumption of refill dials (issue 18), tcp over TLS on
 * 127.0.0.1: after a first full handshake, the next dials of the pool
 * resume the session (a TLS 1.3 ticket, PSK with a fresh (EC)DHE) in mode
 * "1" with a pin and in mode "2"; `tlsResume: false` makes every dial a full
 * handshake; a server that issues no tickets still works, with full
 * handshakes; a client with a certificate (mutual TLS) never resumes. The resumed streams carry data both ways.
 */
import { describe, expect, it, jest } from '@jest/globals';
import crypto from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { certificateFingerprints, createCertificateAuthority, createSelfSignedCertificate } from '../../lib/certs/index.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import type { ServerPool } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../../lib/pool-factory.js';
import { readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';

jest.setTimeout(30_000);
const scope = useTestScope();

async function start(serverTls: unknown, clientOptions: Record<string, unknown>, transport: 'tcp' | 'ws' = 'tcp'): Promise<{ server: ServerPool; client: ClientPool }> {
  const server = createServerPool({ host: '127.0.0.1', port: 0, maxCap: 8, tls: serverTls, transport } as ServerPoolConfig);
  await server.start();
  scope.defer(() => server.close());
  const client = createClientPool({ address: `127.0.0.1:${server.address()!.port}`, transport, minCap: 1, maxCap: 1, minIvl: 60_000, maxIvl: 60_000, ...clientOptions } as ClientPoolConfig);
  scope.defer(() => client.close());
  client.start();
  return { server, client };
}

/** Takes three streams one after the other (each replaced on demand by a new dial); whether each was a resumed session; checks each carries data. */
async function resumedInTurn({ server, client }: { server: ServerPool; client: ClientPool }): Promise<boolean[]> {
  const resumed: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    const [id, theirs] = await server.incomingGet(10_000);
    scope.track(theirs);
    const mine = scope.track(await client.outgoingGet(id, 10_000)) as Duplex;
    // A wss stream wraps its WebSocket, whose socket is the TLS one.
    const secured = mine instanceof tls.TLSSocket ? mine : (mine as unknown as { ws: { _socket: unknown } }).ws._socket;
    expect(secured).toBeInstanceOf(tls.TLSSocket);
    resumed.push((secured as tls.TLSSocket).isSessionReused());
    mine.write(`ping ${i}`);
    expect((await readBytes(theirs, 6)).toString()).toBe(`ping ${i}`);
    theirs.write('pong');
    expect((await readBytes(mine, 4)).toString()).toBe('pong');
  }
  return resumed;
}

describe('TLS session resumption on refill', () => {
  it('mode "1" with a pin: the first dial is a full handshake, the refills resume', async () => {
    const { key, cert } = createSelfSignedCertificate({ commonName: 'localhost' });
    const pair = await start({ key, cert }, { tls: '1', pin: certificateFingerprints(cert).certificate.hex });
    expect(await resumedInTurn(pair)).toEqual([false, true, true]);
  });

  it('mode "2" (verified): the refills resume', async () => {
    const ca = createCertificateAuthority();
    const { key, cert } = ca.issue({ commonName: 'localhost' });
    const pair = await start({ key, cert }, { tls: '2', hostname: 'localhost', ca: ca.cert });
    expect(await resumedInTurn(pair)).toEqual([false, true, true]);
  });

  it.each([
    ['mode "1" without a pin', {}],
    ['mode "1" with a pin', { pin: true }],
  ])('wss, %s: the refills resume too (ws makes the TLS connection; the pool offers the ticket and keeps the new ones)', async (_name, extra) => {
    const { key, cert } = createSelfSignedCertificate({ commonName: 'localhost' });
    const pair = await start({ key, cert }, { tls: '1', ...('pin' in extra ? { pin: certificateFingerprints(cert).certificate.hex } : {}) }, 'ws');
    expect(await resumedInTurn(pair)).toEqual([false, true, true]);
  });

  it('tlsResume: false: every dial is a full handshake', async () => {
    const { key, cert } = createSelfSignedCertificate({ commonName: 'localhost' });
    const pair = await start({ key, cert }, { tls: '1', tlsResume: false });
    expect(await resumedInTurn(pair)).toEqual([false, false, false]);
  });

  it('a server that issues no session tickets still works, with full handshakes', async () => {
    const { key, cert } = createSelfSignedCertificate({ commonName: 'localhost' });
    const secureContext = tls.createSecureContext({ key, cert, minVersion: 'TLSv1.3', secureOptions: crypto.constants.SSL_OP_NO_TICKET });
    const pair = await start({ secureContext }, { tls: '1' });
    expect(await resumedInTurn(pair)).toEqual([false, false, false]);
  });

  it('with a client certificate (mutual TLS) no dial tries to resume: a server that requires one refuses a resumption outright', async () => {
    const ca = createCertificateAuthority();
    const { key, cert } = ca.issue({ commonName: 'localhost' });
    const client = ca.issue({ commonName: 'client-a' });
    const pair = await start({ key, cert, ca: ca.cert, requestCert: true }, { tls: '2', hostname: 'localhost', ca: ca.cert, cert: client.cert, key: client.key });
    expect(await resumedInTurn(pair)).toEqual([false, false, false]);
    expect(pair.server.stats.refusals).toEqual({});
  });

  it('rejects a tlsResume that is not a boolean, naming it', () => {
    expect(() => createClientPool({ address: '127.0.0.1:1', tls: '1', tlsResume: 'yes' } as never)).toThrow(/tlsResume/);
  });
});
