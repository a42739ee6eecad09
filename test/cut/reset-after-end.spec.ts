// A reset asked for while a socket's shutdown is in flight (right after end())
// failed with EINVAL inside Node, which then never closed the handle: the
// process printed its 'exit' event and hung for good (seen as the sample's
// client-role process not ending after "sample stopped" on SIGTERM, with
// "reset EINVAL" logged just before). Run in child processes from dist/, as a
// hang cannot be observed from inside the process that hangs.
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { canReset } from '../../lib/transports/common/tcp-handle.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs `body` (an ES module with `socket`, connected, and the helpers imported) to its exit; killed after 10 s. */
function runChild(body: string): Promise<{ code: number | null; signal: string | null; output: string }> {
  const source = `
    import net from 'node:net';
    import { resetSocket } from './dist/lib/tunnel/tunnel-common.js';
    import { canReset, closeWithReset } from './dist/lib/transports/common/tcp-handle.js';
    const peers = new Set();
    const server = net.createServer({ allowHalfOpen: true }, (peer) => { peers.add(peer); peer.on('error', () => {}); });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    const socket = net.connect({ port: server.address().port, host: '127.0.0.1', allowHalfOpen: true });
    await new Promise((r) => socket.once('connect', r));
    socket.on('error', (error) => console.log('socket error: ' + error.message));
    process.on('exit', (code) => console.log('exit event ' + code));
    const done = () => { server.close(); for (const peer of peers) peer.destroy(); };
    ${body}
  `;
  return new Promise((resolvePromise) => {
    execFile(process.execPath, ['--input-type=module', '-e', source], { cwd: ROOT, timeout: 10_000, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const failed = error as (Error & { code?: number; signal?: string }) | null;
      resolvePromise({ code: failed ? (typeof failed.code === 'number' ? failed.code : null) : 0, signal: failed?.signal ?? null, output: stdout + stderr });
    });
  });
}

describe('a reset right after end() (shutdown in flight)', () => {
  it('dist/ is built (npm test builds it before Jest)', () => {
    expect(existsSync(resolve(ROOT, 'dist/lib/tunnel/tunnel-common.js'))).toBe(true);
  });

  it('canReset is false between end() and finish, true before and after', async () => {
    const peers = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (peer) => peers.add(peer.on('error', () => undefined)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const socket = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    try {
      await new Promise((r) => socket.once('connect', r));
      expect(canReset(socket)).toBe(true);
      const finished = new Promise((r) => socket.once('finish', r));
      socket.end();
      expect(canReset(socket)).toBe(false);
      await finished;
      expect(canReset(socket)).toBe(true);
    } finally {
      socket.destroy();
      for (const peer of peers) peer.destroy();
      await new Promise((r) => server.close(r));
    }
  });

  it.each([
    ['the tunnel resetting a public socket (resetSocket)', 'socket.end(); resetSocket(socket); done();'],
    ['a cut closing a TCP handle with a reset when it can (canReset, closeWithReset)', 'socket.end(); if (canReset(socket)) closeWithReset(socket); socket.destroy(); done();'],
  ])('%s: no "reset EINVAL", and the process exits by itself', async (_what, body) => {
    const { code, signal, output } = await runChild(body);
    expect(output).not.toContain('reset EINVAL');
    expect(output).toContain('exit event 0');
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  }, 20_000);
});
