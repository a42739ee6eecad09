/**
 * The PROXY protocol option end to end on a reverse route (v1 and v2, over
 * tcp and wss): the target behind the client reads a header naming the real
 * public client (connected from 127.0.0.2) as the source, then the
 * connection's own bytes. The destination is the address the client's
 * connect reached (the target's own), as target.ts documents: the OPEN
 * carries only the public peer.
 */
import { describe, expect, it, jest } from '@jest/globals';
import net from 'node:net';
import { readProxyHeader, type ProxyHeader } from '../../lib/tunnel/proxy-protocol.js';
import { freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { startTunnelClient, startTunnelServer, type TunnelKind } from './tunnel-harness.js';

jest.setTimeout(60_000);
const scope = useTestScope();

const CASES: Array<[TunnelKind, 'v1' | 'v2']> = [
  ['tcp', 'v1'],
  ['tcp', 'v2'],
  ['wss', 'v1'],
  ['wss', 'v2'],
];

describe.each(CASES)('tunnel over %s with PROXY %s', (kind, version) => {
  it('the target sees the public client address, then the bytes', async () => {
    let header!: (h: ProxyHeader) => void;
    const seen = new Promise<ProxyHeader>((resolve) => (header = resolve));
    const target = net.createServer((socket) => {
      socket.on('error', () => undefined);
      void readProxyHeader(socket).then((h) => {
        header(h);
        socket.pipe(socket);
      }, () => socket.destroy());
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'pp', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [
      { name: 'pp', serverPort: publicPort, target: `127.0.0.1:${(target.address() as net.AddressInfo).port}`, proxyProtocol: version },
    ]);
    await client.start();
    const socket = scope.track(net.connect({ host: '127.0.0.1', port: publicPort!, localAddress: '127.0.0.2' }));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write('hello');
    expect((await readBytes(socket, 5)).toString()).toBe('hello');
    const got = await seen;
    expect(got).toMatchObject({ version: version === 'v1' ? 1 : 2, command: 'proxy', family: 'tcp4' });
    expect(got.endpoints).toEqual({ source: { address: '127.0.0.2', port: socket.localPort }, destination: { address: '127.0.0.1', port: (target.address() as net.AddressInfo).port } });
    socket.end();
  });
});
