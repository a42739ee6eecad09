/**
 * Issue 10, item 5, "Out of file descriptors": a failed accept. Node
 * reports it as an 'error' on the listening server (when libuv's own
 * reserve descriptor is gone too: see lib/transports/common/listen.ts),
 * which without a listener would end the process. The pools' listeners
 * count it (refusals 'accept-emfile', 'accept-enfile', 'accept-error') and
 * go on accepting.
 *
 * The error is emitted on the real listening server in the shape Node gives
 * it (code, errno, syscall 'accept'): running a process out of descriptors
 * does not produce it (libuv's reserve absorbs that case silently, which
 * fd-limit.spec.ts covers).
 */
import { describe, expect, it } from '@jest/globals';
import type net from 'node:net';
import { eventually } from '../support/net.js';
import { useTestScope } from '../support/scope.js';
import { startKind, type Kind } from './support.js';

const scope = useTestScope();

function acceptError(code: string, errno: number): Error {
  return Object.assign(new Error(`accept ${code}`), { code, errno, syscall: 'accept' });
}

describe.each<Kind>(['tcp', 'tls', 'http2', 'ws'])('%s: a failed accept on the pool listener', (kind) => {
  it('is counted, does not end the process, and the pool goes on accepting', async () => {
    const p = await scope.pair(startKind, kind, {}, { minCap: 2, maxCap: 2 });
    await p.client.waitForActive(2, 10_000);
    // tcp: its server; http2: its listener; ws: its own port's listener.
    const transport = p.server.transport as unknown as { server?: net.Server; listener?: net.Server; ownPort?: { listener: net.Server } };
    const listener = transport.listener ?? transport.server ?? transport.ownPort?.listener;
    expect(listener?.listening).toBe(true);
    expect(() => {
      listener!.emit('error', acceptError('EMFILE', -24));
      listener!.emit('error', acceptError('ENFILE', -23));
      listener!.emit('error', acceptError('ENOBUFS', -105));
    }).not.toThrow();
    expect(p.server.stats.refusals).toMatchObject({ 'accept-emfile': 1, 'accept-enfile': 1, 'accept-error': 1 });
    // Still accepting: the idle streams go, and the client dials new ones.
    p.server.flush();
    await eventually(() => p.server.stats.totals.accepted >= 4, 10_000, 'two more streams accepted');
    await p.client.waitForActive(2, 10_000);
  }, 30_000);
});
