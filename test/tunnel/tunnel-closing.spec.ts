/**
 * A public connection that arrives while the tunnel client is closing, on
 * every kind: the client refuses the OPEN, and the public side is reset
 * promptly (never ended cleanly, never left waiting for a close timeout):
 * the connection in flight that keeps the client's close waiting is still
 * open when the refused one is reset, even when the client's FAIL never
 * reaches the server (the client cuts the stream it was named).
 */
import { describe, expect, it, jest } from '@jest/globals';
import net from 'node:net';
import { KIND_NAMES } from '../support/kinds.js';
import { freePorts, readBytes } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { startTunnelClient, startTunnelServer } from './tunnel-harness.js';

jest.setTimeout(15_000); // well under the client's closeTimeout (20 s): a reset that waits for it fails the test
const scope = useTestScope();

describe.each(KIND_NAMES)('tunnel over %s: an OPEN while the client closes', (kind) => {
  it('is refused and the public side is reset while the client still drains', async () => {
    const target = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    scope.defer(() => new Promise<void>((resolve) => target.close(() => resolve())));
    const [publicPort] = await freePorts(1);
    const server = await startTunnelServer(scope, [{ clients: 'key:site-a', names: 'echo', directions: ['reverse'], ports: [publicPort!] }], kind);
    const client = startTunnelClient(scope, server, 'site-a', [{ name: 'echo', serverPort: publicPort, target: `127.0.0.1:${(target.address() as net.AddressInfo).port}` }], { closeTimeout: 20_000 });
    await client.start();
    const first = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    first.on('error', () => undefined);
    first.write('one');
    expect((await readBytes(first, 3)).toString()).toBe('one');
    // The FAIL does not reach the server, as when the client's control channel closes before it could go.
    const channel = (client as unknown as { channel: { fail: () => Promise<void> } }).channel;
    channel.fail = () => Promise.reject(new Error('the control channel closed before the FAIL'));
    const refused = new Promise<unknown>((resolve) => client.once('open-failed', resolve));
    const closed = client.close(); // waits for `first` (closeTimeout 20 s)
    const second = scope.track(net.connect({ host: '127.0.0.1', port: publicPort! }));
    let ended = false;
    let error: NodeJS.ErrnoException | undefined;
    second.on('end', () => (ended = true));
    second.on('error', (e) => (error = e));
    await new Promise<void>((resolve) => second.on('close', () => resolve()));
    await refused;
    expect(ended).toBe(false);
    expect(error?.code).toBe('ECONNRESET');
    // The client's close is still waiting for the first connection: the reset did not wait for it.
    expect(first.destroyed).toBe(false);
    first.end();
    await closed;
  });
});
