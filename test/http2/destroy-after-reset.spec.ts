/**
 * Node 20's HTTP/2 spins for ever (native SendPendingData under
 * SubmitRstStream, memory growing by hundreds of MiB a second) when a
 * stream is destroyed with Node's default RST code while the session is
 * still inside the callback that reported a peer's RST_STREAM: in a
 * 'close' handler, or a promise that handler resolves. A pool does that
 * itself when it closes or flushes right after a reset, and so does an
 * application that tears down a tunnel when one of its streams is reset.
 *
 * The hang blocks the event loop, so no timer in the process can end it:
 * each scenario runs in its own Node process (the built package, as
 * `npm test` builds it first) under a time limit, and must exit on its
 * own with its line of output.
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function runNode(source: string): Promise<{ code: number | string | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      ['--input-type=module', '--max-old-space-size=256', '-e', source],
      { cwd: root, timeout: 15_000, killSignal: 'SIGKILL' },
      (error, stdout, stderr) => {
        const failure = error as (Error & { code?: number | string; signal?: string }) | null;
        resolvePromise({ code: failure ? (failure.code ?? 1) : 0, signal: failure?.signal ?? null, stdout, stderr });
      },
    );
  });
}

/**
 * A warm pair; one hand-off whose `resetSide` stream is destroyed by its
 * application, so the other side sees RST_STREAM; then `act` runs in the
 * same tick as the other side's 'close' event.
 */
function scenario(resetSide: 'server' | 'client', act: string): string {
  return `
    import { createClientPool, createServerPool, createSelfSignedCertificate } from 'nestjs-tunnel-pool';
    const server = createServerPool({ transport: 'http2', port: 0, tls: createSelfSignedCertificate() });
    await server.start();
    const client = createClientPool({ transport: 'http2', tls: '1', address: '127.0.0.1:' + server.address().port, minCap: 4, maxCap: 4, minIvl: 60000, maxIvl: 60000 });
    client.start();
    await client.waitForActive(4, 5000);
    const taken = [];
    for (let i = 0; i < 2; i++) {
      const [id, serverSide] = await server.incomingGet(5000);
      const clientSide = await client.outgoingGet(id, 5000);
      serverSide.on('error', () => undefined);
      clientSide.on('error', () => undefined);
      serverSide.resume();
      clientSide.resume();
      taken.push({ serverSide, clientSide });
    }
    const [reset, other] = taken;
    const resetter = reset.${resetSide}Side;
    const victim = reset.${resetSide === 'server' ? 'client' : 'server'}Side;
    victim.write(Buffer.alloc(8192, 1));
    await new Promise((r) => setTimeout(r, 50));
    resetter.destroy();
    await new Promise((r) => victim.once('close', r));
    ${act}
    for (const { serverSide, clientSide } of taken) {
      serverSide.destroy();
      clientSide.destroy();
    }
    await client.close(2000);
    await server.close(2000);
    console.log('done');
  `;
}

const cases: Array<[string, 'server' | 'client', string]> = [
  ['the client pool closes (destroys its idle streams)', 'server', 'void client.close(2000);'],
  ['the client pool flushes its idle streams', 'server', 'client.flush();'],
  ['the client application destroys another stream of the session', 'server', 'other.clientSide.destroy();'],
  ['the server pool closes (destroys its idle streams)', 'client', 'void server.close(2000);'],
  ['the server application destroys another stream of the session', 'client', 'other.serverSide.destroy();'],
];

describe('http2: destroying streams right after a peer reset one (Node 20 hang)', () => {
  it.each(cases)('%s', async (_name, resetSide, act) => {
    const { code, signal, stdout, stderr } = await runNode(scenario(resetSide, act));
    expect({ code, signal, stderr }).toEqual({ code: 0, signal: null, stderr: '' });
    expect(stdout.trim()).toBe('done');
  }, 30_000);
});
