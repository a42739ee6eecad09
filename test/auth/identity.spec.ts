import { describe, expect, it } from '@jest/globals';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { certificateIdentity, identityLabel, keyIdentity, type ClientIdentity } from '../../lib/auth/index.js';
import { createCertificateAuthority } from '../../lib/certs/index.js';
import { useTestScope } from '../support/scope.js';

const scope = useTestScope();

describe('client identity', () => {
  it('a key identity, and labels for stats and logs', () => {
    expect(keyIdentity('edge-1')).toEqual({ kind: 'key', id: 'edge-1' });
    expect(identityLabel(keyIdentity('edge-1'))).toBe('key:edge-1');
    expect(identityLabel({ kind: 'certificate', subject: 'O=x', fingerprint: 'AB:CD' })).toBe('cert:sha256:AB:CD');
  });

  it('no certificate, or an unreadable one, is no identity (never a throw)', () => {
    expect(certificateIdentity(undefined)).toBeUndefined();
    expect(certificateIdentity({} as tls.PeerCertificate)).toBeUndefined();
    expect(certificateIdentity({ raw: Buffer.from('junk') } as tls.PeerCertificate)).toBeUndefined();
  });

  it('mutual TLS on loopback with certificates from the test CA: the server reads the client certificate\'s subject; a client without one is refused', async () => {
    const ca = createCertificateAuthority();
    const serverCert = ca.issue({ commonName: 'localhost', altNames: ['localhost', '127.0.0.1'] });
    const clientCert = ca.issue({ commonName: 'edge-7', altNames: ['edge-7.internal'] });
    const seen: Array<ClientIdentity | undefined> = [];
    const server = tls.createServer({ ...serverCert, ca: ca.cert, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' }, (socket) => {
      seen.push(certificateIdentity(socket.getPeerCertificate()));
      socket.end('ok');
    });
    server.on('tlsClientError', () => undefined);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    scope.defer(() => {
      server.close();
    });
    const port = (server.address() as AddressInfo).port;
    const dial = (options: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: ca.cert, minVersion: 'TLSv1.3', ...options });
        scope.defer(() => {
          socket.destroy();
        });
        let text = '';
        socket.setEncoding('utf8');
        socket.on('data', (chunk: string) => (text += chunk));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
    await expect(dial({ key: clientCert.key, cert: clientCert.cert })).resolves.toBe('ok');
    expect(seen).toEqual([{ kind: 'certificate', subject: 'CN=edge-7', commonName: 'edge-7', fingerprint: clientCert.fingerprint.certificate.hex }]);
    expect(identityLabel(seen[0]!)).toBe('cert:edge-7');
    // TLS 1.3: the server's refusal of a missing client certificate arrives after the client's handshake completes, as an alert.
    await expect(dial({})).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED$|^ECONNRESET$/) as unknown as string });
    expect(seen).toHaveLength(1);
  });
});
