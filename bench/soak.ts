/**
 * Soak run (issue 6): hand-offs in a loop on loopback while faults are
 * injected, one status line per second, a summary at the end.
 *
 *   npm run soak -- --seconds 30 --transport tls --concurrency 8
 *   node dist/bench/soak.js --help            (after npm run build)
 *
 * Each hand-off takes `[id, stream]` on the server side, `outgoingGet(id)`
 * on the client side, sends 1 B to 32 KiB of random bytes client → server,
 * echoes them back, checks them byte for byte, and ends both streams.
 *
 * Faults, at random: a taken stream destroyed mid-transfer (either end); an
 * idle server-side stream reset (RST of its TCP connection; RST_STREAM on
 * http2, where the connection carries the whole session); the client pool
 * flushed; and every ~10 s the server pool closed and a new one started on
 * the same port.
 *
 * With --attacks (off by default), hostile peers from 127.0.0.2 hit the
 * server port every ~1.5 s (bench/soak-attacks.ts): connect + reset floods,
 * a 500-connection slowloris held 3 s, junk + FIN, an oversized ws message
 * (must be closed with 1009), a 256-stream HTTP/2 flood on one connection
 * (must hold no more than its share of handshake slots).
 *
 * Exit status: 0 after --seconds with everything closed and the process
 * leaving on its own; 1 when hand-offs stall completely for more than 10 s;
 * 2 when the process would have crashed (uncaught exception, unhandled
 * rejection); 3 when bytes arrived corrupted; 5 when a cut stream was read
 * as a clean end (bench/soak-cuts.ts); 4 when something still held
 * the process open after the pools closed; 64 for a bad command line; 137
 * (SIGKILL from the watchdog thread) when the event loop itself was blocked
 * for more than 10 s or RSS passed 4 GiB, which no timer on the main thread
 * could see.
 */
import { randomFillSync } from 'node:crypto';
import { constants as http2Constants, type Http2Stream } from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createSelfSignedCertificate } from '../lib/certs/index.js';
import type { ClientPool } from '../lib/core/client-pool.js';
import type { ServerPool } from '../lib/core/server-pool.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../lib/pool-factory.js';
import { ATTACKS, parseAttacks, startAttacks, type Attack } from './soak-attacks.js';
import { startCutChecks } from './soak-cuts.js';

type SoakTransport = 'tcp' | 'tls' | 'http2' | 'ws';
const TRANSPORTS: readonly SoakTransport[] = ['tcp', 'tls', 'http2', 'ws'];

const MAX_SECONDS = 3600;
const STALL_MS = 10_000;
/** RSS past which the watchdog kills the run: a native allocation running away. */
const RSS_LIMIT = 4 * 1024 * 1024 * 1024;
const RESTART_EVERY_MS = 10_000;
const FAULT_TICK_MS = 100;
const STEP_TIMEOUT = 3000;
const MiB = 1 << 20;

// ---- command line -----------------------------------------------------------

const FAULTS = ['destroy', 'rst', 'flush', 'restart'] as const;
type Fault = (typeof FAULTS)[number];

interface Options {
  seconds: number;
  transport: SoakTransport;
  concurrency: number;
  faults: ReadonlySet<Fault>;
  attacks: ReadonlySet<Attack>;
}

function usage(): string {
  return [
    'usage: npm run soak -- [--seconds N] [--transport tcp|tls|http2|ws] [--concurrency C] [--faults LIST] [--attacks LIST]',
    `  --seconds      run time, 1..${MAX_SECONDS} (default 30)`,
    '  --transport    tcp (default), tls (tcp over TLS 1.3), http2, ws',
    '  --concurrency  hand-offs in flight at once, 1..256 (default 8)',
    `  --faults       comma-separated, from ${FAULTS.join(', ')}; "none" for none (default: all)`,
    `  --attacks      hostile peers from 127.0.0.2 (bench/soak-attacks.ts), comma-separated from ${ATTACKS.join(', ')}; "all" or "none" (default: none)`,
  ].join('\n');
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      seconds: { type: 'string', default: '30' },
      transport: { type: 'string', default: 'tcp' },
      concurrency: { type: 'string', default: '8' },
      faults: { type: 'string', default: FAULTS.join(',') },
      attacks: { type: 'string', default: 'none' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  const seconds = Number(values.seconds);
  const concurrency = Number(values.concurrency);
  const transport = values.transport as SoakTransport;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > MAX_SECONDS) throw new Error(`--seconds must be an integer from 1 to ${MAX_SECONDS}, got ${values.seconds}`);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) throw new Error(`--concurrency must be an integer from 1 to 256, got ${values.concurrency}`);
  if (!TRANSPORTS.includes(transport)) throw new Error(`--transport must be one of ${TRANSPORTS.join(', ')}, got ${values.transport}`);
  const faults = new Set<Fault>();
  for (const name of values.faults === 'none' ? [] : values.faults!.split(',')) {
    if (!(FAULTS as readonly string[]).includes(name.trim())) throw new Error(`--faults takes ${FAULTS.join(', ')} or none, got ${name}`);
    faults.add(name.trim() as Fault);
  }
  return { seconds, transport, concurrency, faults, attacks: parseAttacks(values.attacks!) };
}

// ---- pools ---------------------------------------------------------------------

function poolConfigs(transport: SoakTransport): { server: ServerPoolConfig; client: Omit<ClientPoolConfig, 'address'> } {
  const core = { minCap: 16, maxCap: 64, minIvl: 5, maxIvl: 200, maxBackoff: 1000, getTimeout: STEP_TIMEOUT };
  const needsCert = transport !== 'tcp' && transport !== 'ws';
  const { key, cert } = needsCert ? createSelfSignedCertificate() : { key: '', cert: '' };
  switch (transport) {
    case 'tcp':
      return { server: { transport: 'tcp', host: '127.0.0.1', port: 0, maxCap: 1024, handshakeTimeout: 5000 }, client: { transport: 'tcp', ...core } };
    case 'tls':
      return { server: { transport: 'tcp', host: '127.0.0.1', port: 0, tls: { key, cert }, maxCap: 1024, handshakeTimeout: 5000 }, client: { transport: 'tcp', tls: '1', ...core } };
    case 'http2':
      return { server: { transport: 'http2', host: '127.0.0.1', port: 0, tls: { key, cert }, maxCap: 1024, handshakeTimeout: 5000 }, client: { transport: 'http2', tls: '1', ...core } };
    case 'ws':
      return { server: { transport: 'ws', host: '127.0.0.1', port: 0, maxCap: 1024, handshakeTimeout: 5000 }, client: { transport: 'ws', ...core } };
  }
}

// ---- small helpers -----------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const noop = (): void => undefined;

function add(into: Record<string, number>, from: Record<string, number>): void {
  for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
}

function summed(...maps: Array<Record<string, number>>): Record<string, number> {
  const total: Record<string, number> = {};
  for (const map of maps) add(total, map);
  return total;
}

function show(map: Record<string, number>): string {
  const entries = Object.entries(map).filter(([, value]) => value > 0);
  return entries.length === 0 ? '-' : entries.map(([key, value]) => `${key}=${value}`).join(',');
}

const mib = (bytes: number): string => `${(bytes / MiB).toFixed(1)}MiB`;

function codeOf(error: unknown): string {
  if (error && typeof error === 'object' && 'code' in error && typeof error.code === 'string') return error.code;
  return error instanceof Error ? error.message.slice(0, 40) : String(error);
}

/** Reads exactly `length` bytes, bounded by `timeout`; leaves the stream paused. */
function readExactly(stream: Duplex, length: number, timeout: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (error) reject(error);
      else resolve(Buffer.concat(chunks, got));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      got += chunk.length;
      if (got >= length) finish(got > length ? Object.assign(new Error(`${got - length} bytes more than expected`), { code: 'EXTRA_BYTES' }) : undefined);
    };
    const onEnd = (): void => finish(Object.assign(new Error(`ended after ${got} of ${length} bytes`), { code: 'SHORT_READ' }));
    const onError = (error: Error): void => finish(error);
    const timer = setTimeout(() => finish(Object.assign(new Error(`${got} of ${length} bytes within ${timeout} ms`), { code: 'READ_TIMEOUT' })), timeout);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
  });
}

/** The TCP socket under a pooled stream (TLSSocket → its socket, ws duplex → its socket); undefined for http2. */
function tcpSocketOf(stream: Duplex): net.Socket | undefined {
  let current: unknown = stream;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth++) {
    const handle = (current as { _handle?: { constructor?: { name?: string } } })._handle;
    if (current instanceof net.Socket && handle?.constructor?.name === 'TCP') return current;
    const next = current as { _parent?: unknown; socket?: unknown };
    current = next._parent ?? next.socket;
  }
  return undefined;
}

/** The server pool's idle streams (a private map: the fault needs streams nobody took). */
function idleStreamsOf(pool: ServerPool): Duplex[] | undefined {
  const entries = (pool as unknown as { idle?: { entries?: unknown } }).idle?.entries;
  if (!(entries instanceof Map)) return undefined;
  return [...entries.values()].map((entry: { stream: Duplex }) => entry.stream);
}

// ---- watchdog ------------------------------------------------------------------------

/**
 * A thread of its own that sees what the main thread cannot: an event loop
 * blocked for STALL_MS (a spin in native code, where no timer of ours
 * fires) or RSS past RSS_LIMIT. It says so on stderr and kills the process
 * (SIGKILL, exit status 137). The main thread beats every 200 ms.
 */
function startWatchdog(): { beat(): void; stop(): Promise<number> } {
  const heartbeat = new BigInt64Array(new SharedArrayBuffer(8));
  const beat = (): void => void Atomics.store(heartbeat, 0, BigInt(Date.now()));
  beat();
  const worker = new Worker(
    `
    const { workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const heartbeat = new BigInt64Array(workerData.buffer);
    const die = (why) => {
      fs.writeSync(2, 'soak: FAILED: ' + why + '; killing the process\\n');
      process.kill(process.pid, 'SIGKILL');
    };
    setInterval(() => {
      const silent = Date.now() - Number(Atomics.load(heartbeat, 0));
      if (silent > workerData.stallMs) die('the event loop has been blocked for ' + silent + ' ms (a native spin?)');
      const rss = process.memoryUsage.rss();
      if (rss > workerData.rssLimit) die('RSS at ' + Math.round(rss / 1048576) + ' MiB (a native allocation running away?)');
    }, 250);
    `,
    { eval: true, workerData: { buffer: heartbeat.buffer, stallMs: STALL_MS, rssLimit: RSS_LIMIT } },
  );
  worker.unref();
  const timer = setInterval(beat, 200);
  timer.unref();
  return {
    beat,
    stop: () => {
      clearInterval(timer);
      return worker.terminate();
    },
  };
}

// ---- the run --------------------------------------------------------------------------

interface Counters {
  handOffs: number;
  /** Hand-offs cut on purpose (a stream destroyed mid-transfer). */
  cut: number;
  bytes: number;
  corrupt: number;
  /** Errors the application saw, by code and step. */
  errors: Record<string, number>;
  faults: Record<string, number>;
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n${usage()}`);
    return 64;
  }
  const crashes: string[] = [];
  // Never removed: a crash while the run winds down still fails it.
  const onCrash = (kind: string) => (error: unknown): void => {
    crashes.push(`${kind}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    console.error(`soak: ${kind}:`, error);
    process.exitCode = 2;
  };
  const onUncaught = onCrash('uncaught exception');
  const onUnhandled = onCrash('unhandled rejection');
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUnhandled);

  const { seconds, transport, concurrency, faults, attacks } = options;
  const watchdog = startWatchdog();
  const configs = poolConfigs(transport);
  const source = randomFillSync(Buffer.allocUnsafe(MiB));
  const counters: Counters = { handOffs: 0, cut: 0, bytes: 0, corrupt: 0, errors: {}, faults: {} };
  const fault = (what: string): void => void (counters.faults[what] = (counters.faults[what] ?? 0) + 1);
  const failed = (what: string): void => void (counters.errors[what] = (counters.errors[what] ?? 0) + 1);
  /** What earlier server pools counted before a restart replaced them. */
  const retired = { refusals: {} as Record<string, number>, drops: {} as Record<string, number> };

  let server: ServerPool | undefined = createServerPool(configs.server);
  await server.start();
  const port = server.address()!.port;
  const client: ClientPool = createClientPool({ ...configs.client, address: `127.0.0.1:${port}` } as ClientPoolConfig);
  client.start();
  console.log(`soak: ${transport} on 127.0.0.1:${port}, ${seconds} s, concurrency ${concurrency}, faults ${[...faults].join(',') || 'none'}, attacks ${[...attacks].join(',') || 'none'}, pid ${process.pid}`);

  const startedAt = Date.now();
  const endAt = startedAt + seconds * 1000;
  let running = true;
  let lastProgress = Date.now();
  let stalled = false;
  const taken = new Set<Duplex>();

  // One hand-off with a checked echo; sometimes cut on purpose.
  const handOff = async (): Promise<void> => {
    const pool = server;
    if (!pool) return sleep(20);
    let serverSide: Duplex | undefined;
    let clientSide: Duplex | undefined;
    try {
      const [id, stream] = await pool.incomingGet(STEP_TIMEOUT);
      serverSide = stream;
      taken.add(serverSide);
      serverSide.on('error', noop);
      try {
        clientSide = await client.outgoingGet(id, STEP_TIMEOUT);
      } catch (error) {
        failed(`client-get:${codeOf(error)}`);
        return;
      }
      taken.add(clientSide);
      clientSide.on('error', noop);
      const length = 1 + Math.floor(Math.random() * 32 * 1024);
      const offset = Math.floor(Math.random() * (source.length - length));
      const payload = source.subarray(offset, offset + length);
      const cut = faults.has('destroy') && Math.random() < 0.01;
      if (cut) {
        const clientIsVictim = Math.random() < 0.5;
        fault(`destroy-${clientIsVictim ? 'client' : 'server'}-mid-transfer`);
        clientSide.write(payload.subarray(0, length >> 1));
        const [victim, other] = clientIsVictim ? [clientSide, serverSide] : [serverSide, clientSide];
        victim.destroy();
        // The other end must learn of it (end, close or error) within the step timeout.
        await readExactly(other, length, STEP_TIMEOUT).then(
          () => failed('cut:other-end-read-everything'),
          (error: unknown) => {
            if (codeOf(error) === 'READ_TIMEOUT') failed('cut:other-end-never-told');
          },
        );
        counters.cut++;
        lastProgress = Date.now();
        return;
      }
      clientSide.write(payload);
      const arrived = await readExactly(serverSide, length, STEP_TIMEOUT);
      serverSide.write(arrived);
      const echoed = await readExactly(clientSide, length, STEP_TIMEOUT);
      if (!arrived.equals(payload) || !echoed.equals(payload)) {
        counters.corrupt++;
        failed('corrupt');
      }
      counters.handOffs++;
      counters.bytes += 2 * length;
      lastProgress = Date.now();
    } catch (error) {
      const code = codeOf(error);
      // A closed server pool during a restart is the fault at work, not an error.
      if (code === 'POOL_ERR_CLOSED') await sleep(20);
      else failed(`${serverSide ? 'transfer' : 'server-get'}:${code}`);
    } finally {
      for (const stream of [clientSide, serverSide]) {
        if (!stream) continue;
        taken.delete(stream);
        stream.resume();
        stream.end();
        // A stream the peer never closes is destroyed after the step timeout.
        setTimeout(() => stream.destroy(), STEP_TIMEOUT).unref();
      }
    }
  };

  // While waiters are queued the server hands every arrival straight to one,
  // so nothing is ever idle there: the idle-reset fault closes this gate for a
  // moment to let a few streams pile up.
  let gate: Promise<void> | undefined;
  const workers = Array.from({ length: concurrency }, async () => {
    while (running && !stalled) {
      if (gate) await gate;
      await handOff();
    }
  });
  // Beside them: cut streams under churn (every stream delivers every byte or errors).
  const cutChecks = startCutChecks({ server: () => server, client, running: () => running && !stalled, stepTimeout: STEP_TIMEOUT });
  workers.push(cutChecks.done);

  // Faults.
  // The first restart comes after about half the period, so a short run sees one too.
  let nextRestart = startedAt + (RESTART_EVERY_MS / 2) * (0.9 + Math.random() * 0.2);
  let restarting: Promise<void> | undefined;
  const restart = async (): Promise<void> => {
    const old = server;
    if (!old) return;
    fault('server-restart');
    server = undefined;
    await old.close();
    add(retired.refusals, old.stats.refusals);
    add(retired.drops, old.stats.drops);
    for (let attempt = 0; attempt < 50 && running; attempt++) {
      const next = createServerPool({ ...configs.server, port } as ServerPoolConfig);
      try {
        await next.start();
        server = next;
        return;
      } catch (error) {
        failed(`restart:${codeOf(error)}`);
        await sleep(100);
      }
    }
  };
  /** Resets an idle server-side stream: its client end must be dropped, never handed out. */
  const resetIdle = (): void => {
    if (!server || !running) return;
    const idle = idleStreamsOf(server);
    if (!idle) return fault('rst-idle-unavailable');
    const victim = idle[Math.floor(Math.random() * idle.length)];
    if (!victim) return fault('rst-idle-none-idle');
    const socket = tcpSocketOf(victim);
    if (socket) {
      socket.resetAndDestroy();
      fault('rst-idle-server-socket');
    } else if ('session' in victim && typeof (victim as Partial<Http2Stream>).close === 'function') {
      (victim as unknown as Http2Stream).close(http2Constants.NGHTTP2_INTERNAL_ERROR);
      fault('rst-idle-server-stream');
    } else {
      fault('rst-idle-no-socket');
    }
  };
  const faultTimer = setInterval(() => {
    if (!running) return;
    const now = Date.now();
    if (faults.has('restart') && !restarting && now >= nextRestart && now < endAt - 2000) {
      nextRestart = now + RESTART_EVERY_MS * (0.9 + Math.random() * 0.2);
      restarting = restart().finally(() => (restarting = undefined));
      return;
    }
    const roll = Math.random();
    if (faults.has('rst') && roll < 0.2 && server && !gate) {
      // Takes wait 30 ms (streams pile up), one is reset, and they wait 20 ms
      // more: the reset is done here, in this process, and the stream over
      // the socket (TLS, WebSocket) hears of it an event later, as it would
      // hear of a peer's RST. The pool must not hand it out after that.
      gate = sleep(30)
        .then(resetIdle)
        .then(() => sleep(20))
        .then(() => {
          gate = undefined;
        });
    } else if (faults.has('flush') && roll >= 0.2 && roll < 0.23) {
      client.flush();
      fault('flush-client');
    }
  }, FAULT_TICK_MS);

  // Hostile peers (--attacks), counted with the faults.
  const attackRun = startAttacks({ transport, attacks, port: () => (server ? port : undefined), count: fault, failed });

  // Status once a second; the stall watchdog.
  let lastHandOffs = 0;
  let lastTick = Date.now();
  const status = setInterval(() => {
    const now = Date.now();
    const rate = ((counters.handOffs - lastHandOffs) * 1000) / Math.max(1, now - lastTick);
    lastHandOffs = counters.handOffs;
    lastTick = now;
    const memory = process.memoryUsage();
    const s = server?.stats;
    console.log(
      [
        `t=${Math.round((now - startedAt) / 1000)}s`,
        `handoffs/s=${Math.round(rate)}`,
        `total=${counters.handOffs}`,
        `cut=${counters.cut}`,
        `idle=${client.active}/${s ? s.active : '-'}`,
        `errors{${show(counters.errors)}}`,
        `client.failures{${show(client.stats.failures)}}`,
        `client.drops{${show(client.stats.drops)}}`,
        `server.drops{${show(summed(retired.drops, s?.drops ?? {}))}}`,
        `refusals{${show(summed(retired.refusals, s?.refusals ?? {}))}}`,
        `faults{${show(counters.faults)}}`,
        `rss=${mib(memory.rss)}`,
        `heap=${mib(memory.heapUsed)}`,
      ].join(' '),
    );
    if (now - lastProgress > STALL_MS) {
      stalled = true;
      console.error(`soak: STALL: no hand-off completed for ${Math.round((now - lastProgress) / 1000)} s`);
    }
  }, 1000);

  // Run until the time is up or a stall.
  while (Date.now() < endAt && !stalled) await sleep(Math.min(200, Math.max(1, endAt - Date.now())));
  running = false;
  clearInterval(faultTimer);
  clearInterval(status);
  await attackRun.stop();
  await restarting;
  let drainTimer: NodeJS.Timeout | undefined;
  const drained = await Promise.race([
    Promise.all(workers).then(() => true),
    new Promise<boolean>((resolve) => (drainTimer = setTimeout(() => resolve(false), 3 * STEP_TIMEOUT + 2000))),
  ]);
  clearTimeout(drainTimer);
  const finalServer = server as ServerPool | undefined;
  const serverStats = finalServer?.stats;
  const clientStats = client.stats;
  for (const stream of taken) stream.destroy();
  await Promise.all([client.close(), finalServer?.close()]);

  await watchdog.stop();
  const elapsed = (Date.now() - startedAt) / 1000;
  const memory = process.memoryUsage();
  console.log('soak: summary');
  console.log(`  transport ${transport}, ${elapsed.toFixed(1)} s, concurrency ${concurrency}`);
  console.log(`  hand-offs ${counters.handOffs} (${Math.round(counters.handOffs / elapsed)}/s), cut on purpose ${counters.cut}, ${mib(counters.bytes)} echoed, corrupt ${counters.corrupt}`);
  console.log(`  faults    ${show(counters.faults)}`);
  console.log(`  errors    ${show(counters.errors)}`);
  console.log(`  client    failures ${show(clientStats.failures)}; drops ${show(clientStats.drops)}; totals ${show(clientStats.totals)}`);
  console.log(`  server    refusals ${show(summed(retired.refusals, serverStats?.refusals ?? {}))}; drops ${show(summed(retired.drops, serverStats?.drops ?? {}))}`);
  console.log(`  memory    rss ${mib(memory.rss)}, heap ${mib(memory.heapUsed)}`);
  const cuts = cutChecks.counters;
  console.log(`  cuts      ${cuts.checked} checked: ${cuts.delivered} delivered whole, ${cuts.errored} errored, ${cuts.truncated} read as a clean end short${cuts.samples.length ? ` (${cuts.samples.join('; ')})` : ''}`);
  if (!drained) console.log('  workers   did not finish within their step timeouts');

  if (crashes.length > 0) {
    console.log(`soak: FAILED: ${crashes.length} crash(es)`);
    return 2;
  }
  if (stalled) {
    console.log('soak: FAILED: hand-offs stalled');
    return 1;
  }
  if (cuts.truncated > 0) {
    console.log(`soak: FAILED: ${cuts.truncated} cut stream(s) read as a clean end`);
    return 5;
  }
  if (counters.corrupt > 0) {
    console.log(`soak: FAILED: ${counters.corrupt} corrupted transfer(s)`);
    return 3;
  }
  return 0;
}

/**
 * Exits with `code` once the event loop is empty (it must empty on its
 * own: every pool and stream closed); if something still holds it after a
 * few seconds, says what and exits 4.
 */
function leaveWith(code: number): void {
  process.exitCode ||= code;
  if (code === 64) return;
  const guard = setTimeout(() => {
    const held = process.getActiveResourcesInfo().filter((type) => type !== 'TTYWrap' && type !== 'PipeWrap' && type !== 'Timeout');
    console.error(`soak: FAILED: still open after the pools closed: ${held.join(', ') || '(timers only)'}`);
    process.exit(code === 0 ? 4 : code);
  }, 5000);
  guard.unref();
  if (code === 0) process.once('beforeExit', () => console.log(process.exitCode ? 'soak: FAILED after the summary' : 'soak: OK, everything closed'));
  else setImmediate(() => process.exit(code)); // a failed run does not wait for stragglers
}

main().then(leaveWith, (error: unknown) => {
  console.error('soak: FAILED:', error);
  process.exit(2);
});
