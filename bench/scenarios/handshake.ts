import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { ClientPoolOptions } from '../../lib/core/client-pool.js';
import type { ServerPoolOptions } from '../../lib/core/server-pool.js';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import type { ScenarioContext } from '../context.js';
import type { Row } from '../report-types.js';
import { pairedRatios, summarize } from '../stats.js';
import { sleep, within } from '../util.js';

/** The TLS socket under a pooled stream, where one can be reached: the stream itself (tls), its session's socket (http2), its WebSocket's (wss). */
function tlsSocketOf(stream: Duplex): tls.TLSSocket | undefined {
  const candidates: unknown[] = [
    stream,
    (stream as { session?: { socket?: unknown } }).session?.socket,
    (stream as { ws?: { _socket?: unknown } }).ws?._socket,
    (stream as { socket?: unknown }).socket,
  ];
  for (const candidate of candidates) {
    if (candidate && typeof (candidate as tls.TLSSocket).isSessionReused === 'function') return candidate as tls.TLSSocket;
  }
  return undefined;
}

interface Batch {
  /** CPU time (user + system, both ends: one process) per dial, µs. */
  cpu: number;
  /** Wall time per dial (sequential), µs. */
  wall: number;
  /** Dials whose TLS session was resumed, and dials where that could be seen at all. */
  resumed: number;
  seen: number;
}

/**
 * `handshake CPU per dial`, with TLS session resumption on (the default
 * between two ends of this library) and off (`tlsResume: false`: every dial
 * a full handshake), in the same run. Per run and setting: a fresh client
 * transport of the kind (as a client pool builds it) against one server
 * pool, one unmeasured dial (it fetches the first ticket), then `count`
 * sequential dials (TCP, TLS, the ID handshake), each held open until the
 * batch ends, timed with `process.cpuUsage()` of this process, which holds
 * both ends. For http2 the server allows one stream per session
 * (`maxConcurrentStreams: 1`), so every dial opens a session and a TLS
 * handshake, as dials do when the pool's sessions are full or gone.
 * tcp and ws have no TLS: no row.
 */
export async function handshake(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  if (adapter.name !== 'tls' && adapter.name !== 'http2' && adapter.name !== 'wss') return [];
  const count = sizes.quick ? 16 : 100;
  const h2 = adapter.name === 'http2';
  const serverCore = { closeTimeout: 1000, ...(h2 ? { maxConcurrentStreams: 1, maxSessionsPerPeer: count + 8 } : {}) } as ServerPoolOptions;
  const serverPool = createServerPool(adapter.server(serverCore));
  const values = { on: [] as number[], off: [] as number[] };
  const walls = { on: [] as number[], off: [] as number[] };
  const resumed = { on: { reused: 0, seen: 0 }, off: { reused: 0, seen: 0 } };
  const batch = async (resume: boolean): Promise<Batch> => {
    const core = { closeTimeout: 1000, tlsResume: resume, ...(h2 ? { maxSessions: count + 8 } : {}) } as ClientPoolOptions;
    const pool = createClientPool(adapter.client(serverPool.address()!.port, core));
    const controller = new AbortController();
    const held: Duplex[] = [];
    const dial = async (): Promise<Duplex> => {
      const { stream } = await within(pool.transport.dial({ signal: controller.signal, readId: true }), 15_000, `a ${adapter.name} dial`);
      stream.on('error', () => undefined);
      held.push(stream);
      return stream;
    };
    try {
      await dial();
      // The ticket of the first handshake arrives just after it: let it in.
      await sleep(20);
      let reused = 0;
      let seen = 0;
      const wallStart = performance.now();
      const cpuStart = process.cpuUsage();
      for (let i = 0; i < count; i++) {
        const socket = tlsSocketOf(await dial());
        if (socket) {
          seen++;
          if (socket.isSessionReused()) reused++;
        }
      }
      const cpu = process.cpuUsage(cpuStart);
      const wall = performance.now() - wallStart;
      return { cpu: (cpu.user + cpu.system) / count, wall: (wall * 1000) / count, resumed: reused, seen };
    } finally {
      for (const stream of held) stream.destroy();
      controller.abort();
      await within(pool.close(), 15_000, `closing the ${adapter.name} client pool`);
    }
  };
  try {
    await serverPool.start();
    // Unmeasured: both settings' code paths warmed before the first measured batch.
    await batch(true);
    await batch(false);
    for (let run = 0; run < sizes.runs; run++) {
      // Which setting goes first alternates per run.
      const order = run % 2 === 0 ? [true, false] : [false, true];
      for (const resume of order) {
        context.progress(`handshake CPU per dial, tlsResume ${resume ? 'on' : 'off'} · run ${run + 1}/${sizes.runs}`);
        const result = await batch(resume);
        const key = resume ? 'on' : 'off';
        values[key].push(result.cpu);
        walls[key].push(result.wall);
        resumed[key].reused += result.resumed;
        resumed[key].seen += result.seen;
      }
    }
  } finally {
    await within(serverPool.close(), 15_000, `closing the ${adapter.name} server pool`);
  }
  const seen = (key: 'on' | 'off'): string => (resumed[key].seen > 0 ? `${resumed[key].reused} of ${resumed[key].seen} resumed` : 'resumption not observable on this stream');
  const wall = (key: 'on' | 'off'): string => `${Math.round(summarize(walls[key]).median)} µs`;
  return [
    {
      transport: adapter.name,
      scenario: 'handshake',
      metric: 'handshake CPU per dial',
      unit: 'µs',
      raw: summarize(values.off),
      pooled: summarize(values.on),
      ratio: summarize(pairedRatios(values.on, values.off)),
      note:
        `here raw = tlsResume off (every dial a full TLS 1.3 handshake), pooled = tlsResume on (the default: a ticket, with a fresh (EC)DHE); ` +
        `${count} sequential dials per run and setting (TCP + TLS + ID handshake, both ends in this process, process.cpuUsage()), after one unmeasured dial` +
        `${h2 ? '; the server allows one stream per session, so every dial is a new session' : ''}; off: ${seen('off')}, on: ${seen('on')}; ` +
        `wall time per dial (median of runs): off ${wall('off')}, on ${wall('on')}`,
    },
  ];
}
