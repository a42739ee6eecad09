/**
 * Repro: one pooled http2 stream carrying bulk data both ways at once, with
 * the server pool in another process, stalls for good with large windows
 * (8 MiB per stream, 64 MiB per session, on both ends), which were the
 * transport's first defaults; the defaults now are 1 MiB / 2 MiB.
 *
 *   npm run build
 *   node dist/bench/repro/http2-bidi-stall.js                          # defaults: completes
 *   node dist/bench/repro/http2-bidi-stall.js --window 8 --session 64  # (MiB) stalls
 *
 * Why: Node's HTTP/2 session stops reading its socket while a write to it
 * is in progress (node_http2.cc, Http2Session::MaybeStopReading). When the
 * windows let each side have more in flight than the socket buffers absorb,
 * both peers end up in a pending write with reading stopped, each waiting
 * for the other to read. Every stream of the session stops with it.
 */
import { fork } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { createSelfSignedCertificate } from '../../lib/certs/index.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { destroyHard, MiB } from '../util.js';

const { values } = parseArgs({
  options: {
    role: { type: 'string', default: 'client' },
    window: { type: 'string' },
    session: { type: 'string' },
    size: { type: 'string', default: '256' },
  },
});
const windows = {
  ...(values.window ? { initialWindowSize: Math.round(Number(values.window) * MiB) } : {}),
  ...(values.session ? { sessionWindowSize: Math.round(Number(values.session) * MiB) } : {}),
};
const total = Number(values.size) * MiB;
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

/** Writes `total` bytes honouring backpressure and counts what arrives; `received()` reports it. */
function bothWays(stream: Duplex): { received: () => number; done: Promise<void> } {
  let received = 0;
  let sent = 0;
  const write = (): void => {
    while (sent < total) {
      sent += CHUNK.length;
      if (!stream.write(CHUNK)) return void stream.once('drain', write);
    }
  };
  const done = new Promise<void>((resolve) => {
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received >= total) resolve();
    });
  });
  stream.on('error', () => undefined);
  write();
  return { received: () => received, done };
}

async function server(): Promise<void> {
  const pool = createServerPool({ transport: 'http2', host: '127.0.0.1', port: 0, tls: createSelfSignedCertificate(), ...windows });
  await pool.start();
  pool.onIncoming(([id, stream]) => {
    process.send!({ id });
    bothWays(stream);
  });
  process.send!({ port: pool.address()!.port });
  process.once('message', () => process.exit(0));
}

async function client(): Promise<void> {
  const child = fork(new URL(import.meta.url), ['--role', 'server', ...process.argv.slice(2)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const inbox: Array<{ port?: number; id?: string }> = [];
  let wake: () => void = () => undefined;
  child.on('message', (message: { port?: number; id?: string }) => {
    inbox.push(message);
    wake();
  });
  const next = async (key: 'port' | 'id'): Promise<string | number> => {
    for (;;) {
      const index = inbox.findIndex((message) => message[key] !== undefined);
      if (index !== -1) return inbox.splice(index, 1)[0]![key]!;
      await new Promise<void>((resolve) => (wake = resolve));
    }
  };
  const port = await next('port');
  const pool = createClientPool({ transport: 'http2', address: `127.0.0.1:${port}`, tls: '1', ...windows });
  pool.start();
  const stream = await pool.outgoingGet(String(await next('id')), 10_000);
  const started = performance.now();
  const { received, done } = bothWays(stream);
  let last = -1;
  const stalled = await new Promise<boolean>((resolve) => {
    const watch = setInterval(() => {
      if (received() === last) {
        clearInterval(watch);
        resolve(true);
      }
      last = received();
    }, 3000);
    void done.then(() => {
      clearInterval(watch);
      resolve(false);
    });
  });
  const label = `http2 pooled stream, ${values.size} MiB each way, windows ${values.window ? `${values.window} MiB stream / ${values.session} MiB session` : 'the transport defaults'}`;
  if (stalled) console.log(`${label}: STALLED after ${(received() / MiB).toFixed(1)} MiB received (no byte for 3 s)`);
  else console.log(`${label}: completed, ${((2 * total) / MiB / ((performance.now() - started) / 1000)).toFixed(0)} MiB/s both ways`);
  destroyHard(stream);
  child.send('bye');
  await pool.close(100);
}

void (values.role === 'server' ? server() : client());
