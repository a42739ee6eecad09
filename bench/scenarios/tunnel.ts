import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { ServerPool, ServerPoolOptions } from '../../lib/core/server-pool.js';
import { createServerPool } from '../../lib/pool-factory.js';
import { TunnelServer } from '../../lib/tunnel/tunnel-server.js';
import type { RawLink } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { Side } from '../side-process.js';
import { pairedRatios, type Percentiles, percentiles, summarize } from '../stats.js';
import { join, MiB, OpenStreams, within } from '../util.js';
import { BENCH_KEY, type FarTarget } from './tunnel-far.js';

/** The one-way delay of the link in the rows `tunnel open latency … over a link`. */
const DELAY_MS = 5;

/** A free port on 127.0.0.1 (listened on, then closed). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Connects to `port` and writes one byte; resolves with the connect's start (ns, monotonic) once the target's answer came back. */
function openOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Number(process.hrtime.bigint());
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => socket.write('x'));
    socket.once('data', () => {
      resolve(started);
      socket.destroy();
    });
    socket.on('error', (error) => reject(new Error(`the connection to ${port}: ${error.message}`)));
    socket.once('close', () => reject(new Error(`the connection to ${port} closed before the target answered`)));
  });
}

/** Writes `bytes` into `stream` in 64 KiB writes; resolves with MiB/s once the far end's sink answered (it counted them all). */
function send(what: string, stream: Duplex, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const started = performance.now();
    stream.once('data', () => resolve(bytes / MiB / ((performance.now() - started) / 1000)));
    stream.on('error', reject);
    stream.once('close', () => reject(new Error(`${what}: closed before the sink answered`)));
    let sent = 0;
    const write = (): void => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!stream.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void stream.once('drain', write);
      }
    };
    write();
  });
}

/** `send` on a fresh connection to `port`. */
async function pump(what: string, port: number, bytes: number): Promise<number> {
  const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  try {
    return await send(what, socket, bytes);
  } finally {
    socket.destroy();
  }
}

/**
 * The server half of the floor of a tunnelled open: the same path with no
 * pool and nothing of the library, across the same two processes. Raw
 * connections (or http2/ws streams) of the kind, dialed by the far process
 * beforehand outside the clock (token: their order of arrival); a public
 * connection here is joined to the next one with pipe() and its token
 * named on a plain control connection; the far half (`TunnelFar`) looks
 * its end up in a Map, connects the target and joins the two with pipe().
 * Public connect → first byte at the target crosses exactly the tunnel's
 * legs and ID hop.
 */
class RawTunnelNear {
  private readonly ready: Array<{ token: string; end: Duplex }> = [];
  private readonly open = new OpenStreams();
  private readonly servers: net.Server[] = [];
  private arrivals = 0;
  private waiting?: { count: number; resolve: () => void };
  private control?: net.Socket;
  private readonly controlServer = net.createServer({ noDelay: true });
  private readonly controlAccepted: Promise<void>;

  constructor(link: RawLink) {
    link.onServer = (end) => this.arrived(end);
    this.controlAccepted = new Promise((resolve) =>
      this.controlServer.once('connection', (socket) => {
        this.control = this.keep(socket);
        resolve();
      }),
    );
  }

  async listenControl(): Promise<number> {
    return listenLocal(this.controlServer);
  }

  connected(): Promise<void> {
    return within(this.controlAccepted, 15_000, 'the raw tunnel\'s control connection');
  }

  /** A public listener whose connections go to the far end's target `t` or sink `s`. */
  async listen(to: FarTarget): Promise<number> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket, to));
    this.servers.push(server);
    return listenLocal(server);
  }

  get size(): number {
    return this.ready.length;
  }

  /** Has the far process dial `count` more, and waits until they are all here. */
  async prepare(far: Side, count: number): Promise<void> {
    const arrived = new Promise<void>((resolve) => (this.waiting = { count: this.arrivals + count, resolve }));
    await far.call('tunnel.far.prepare', { count });
    await within(arrived, 15_000, `${count} raw connections from the far process`);
  }

  private arrived(end: Duplex): void {
    this.ready.push({ token: String(this.arrivals++), end: this.keep(end) });
    if (this.waiting && this.arrivals >= this.waiting.count) {
      const { resolve } = this.waiting;
      this.waiting = undefined;
      resolve();
    }
  }

  private accept(socket: net.Socket, to: FarTarget): void {
    this.keep(socket);
    const next = this.ready.shift();
    if (!next) return void socket.destroy();
    join(socket, next.end);
    this.control!.write(`${next.token} ${to}\n`);
  }

  private keep<T extends Duplex>(stream: T): T {
    return this.open.keep(stream);
  }

  async close(): Promise<void> {
    this.open.destroyAll();
    this.ready.length = 0;
    for (const server of [...this.servers, this.controlServer]) {
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }
}

function listenLocal(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

/**
 * `tunnel open latency`: a public connect to first byte at the target, one
 * at a time, through a reverse route with a warm pool (a client with the bench's key,
 * the kind's pool), against a direct connection to the target (raw) and
 * the same path as a raw-Node tunnel without a pool (floor, `RawTunnelNear`
 * and its far half), all three in the same run (p50 and p99 of each run).
 * Laid out as a reverse tunnel is deployed: the public clients and the
 * tunnel server in this process, the tunnel client and the targets in a
 * side process (`TunnelFar`), so each end has its own event loop (and, on
 * 2 cores, its own core). The goal: p99 under 1 ms on loopback.
 * Then `tunnel throughput c→s` against a direct connection (raw) and
 * against one pooled stream of the same kind across the same two
 * processes (floor column; the goal ≥ 0.9× of it).
 */
export async function tunnel(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const samples = sizes.quick ? 100 : 1000;
  const warmup = sizes.quick ? 10 : 50;
  const batch = 200;
  const publicPort = await freePort();
  const bulkPort = await freePort();
  const headerPort = await freePort();
  const bulk = sizes.quick ? 16 * 1024 * 1024 : 256 * 1024 * 1024;
  const rate = { raw: [] as number[], pooled: [] as number[], floor: [] as number[] };
  /** The raw-Node tunnel's throughput on the same path (pipe() instead of the library's forwarding, no pool), per run. */
  const rawTunnelRate: number[] = [];
  const farPort = await freePort();
  const farHeaderPort = await freePort();
  /** Why opens failed on the tunnel servers (a failed open would otherwise be only a reset in the bench's error). */
  const failures: string[] = [];
  /** A tunnel server of the kind (clients with the bench's key, reverse routes `names` on `ports`), `earlyData` as given or by default (on). */
  const tunnels: Array<{ server: TunnelServer; pool: ServerPool }> = [];
  const reverseServer = (names: string[], ports: number[], earlyData?: boolean): { server: TunnelServer; pool: ServerPool } => {
    const pool = createServerPool(adapter.server({ closeTimeout: 1000, auth: { key: [{ id: 'bench', key: BENCH_KEY }] } } as ServerPoolOptions));
    const server = new TunnelServer({ pool, ...(earlyData === undefined ? {} : { earlyData }), allow: { rules: [{ clients: 'key:bench', names, directions: ['reverse'], ports }] } });
    tunnels.push({ server, pool });
    // A failed open resets its public connection: the bench's error then says why, from the server's side.
    server.on('open-failed', ({ route, error }) => failures.push(`route ${route}: ${error.message}`));
    server.on('connection', ({ route, result }) => {
      if (result.error) failures.push(`route ${route}, cut: ${result.error.message}`);
    });
    return { server, pool };
  };
  const { pool: serverPool } = reverseServer(['bench', 'bench-bulk'], [publicPort, bulkPort]);
  // The same tunnel with `earlyData: false`: the public side's bytes wait for the client's stream header.
  const { pool: headerPool } = reverseServer(['bench-header'], [headerPort], false);
  // Both again, their clients behind a link of DELAY_MS each way: what a round trip less is worth on a WAN.
  const { pool: farPool } = reverseServer(['bench-far'], [farPort]);
  const { pool: farHeaderPool } = reverseServer(['bench-far-header'], [farHeaderPort], false);
  const delayedSamples = sizes.quick ? 20 : 200;
  const delayed = { p50: { raw: [] as number[], pooled: [] as number[] }, p99: { raw: [] as number[], pooled: [] as number[] } };
  const streamPool = createServerPool(adapter.server({ closeTimeout: 1000 } as ServerPoolOptions));
  const p50 = { raw: [] as number[], pooled: [] as number[], floor: [] as number[] };
  const p99 = { raw: [] as number[], pooled: [] as number[], floor: [] as number[] };
  const header = { p50: { raw: [] as number[], pooled: [] as number[], floor: [] as number[] }, p99: { raw: [] as number[], pooled: [] as number[], floor: [] as number[] } };
  let far: Side | undefined;
  let link: RawLink | undefined;
  let rawTunnel: RawTunnelNear | undefined;
  try {
    for (const { server } of tunnels) await server.start();
    await streamPool.start();
    link = await adapter.openRaw();
    rawTunnel = new RawTunnelNear(link);
    const controlPort = await rawTunnel.listenControl();
    const floorPort = await rawTunnel.listen('t');
    const rawBulkPort = await rawTunnel.listen('s');
    far = Side.start(adapter.name, 'pooled');
    const ports = await far.call('tunnel.far.open', {
      tunnelPort: serverPool.address()!.port,
      publicPort,
      bulkPort,
      headerTunnelPort: headerPool.address()!.port,
      headerPublicPort: headerPort,
      delayed: { delayMs: DELAY_MS, tunnelPort: farPool.address()!.port, publicPort: farPort, headerTunnelPort: farHeaderPool.address()!.port, headerPublicPort: farHeaderPort },
      bulk,
      rawPort: link.port,
      controlPort,
      streamPort: streamPool.address()!.port,
    });
    await rawTunnel.connected();
    const farSide = far;
    /** Public connect → first byte at the target of each open (ms), from this side's starts and the far side's arrivals. */
    const latencies = async (starts: number[]): Promise<number[]> => {
      const arrivals = await farSide.call('tunnel.far.stamps', {});
      if (arrivals.length !== starts.length) throw new Error(`${starts.length} opens but ${arrivals.length} first bytes at the target`);
      return starts.map((start, i) => (arrivals[i]! - start) / 1e6);
    };
    // One unmeasured warm-up batch of each: the three paths' code optimised before the clock starts.
    await rawTunnel.prepare(far, warmup);
    const warm: number[] = [];
    for (let i = 0; i < warmup; i++) warm.push(await openOnce(ports.target), await openOnce(publicPort), await openOnce(headerPort), await openOnce(floorPort));
    for (let i = 0; i < 5; i++) warm.push(await openOnce(farPort), await openOnce(farHeaderPort));
    await latencies(warm);
    for (let run = 0; run < sizes.runs; run++) {
      context.progress(`tunnel open latency run ${run + 1}/${sizes.runs}`);
      const starts: number[] = [];
      for (let i = 0; i < samples; i++) {
        // The floor's raw connections are opened between samples, outside the clock, a batch at a time.
        if (rawTunnel.size === 0) await rawTunnel.prepare(far, Math.min(batch, samples - i));
        starts.push(await openOnce(ports.target), await openOnce(publicPort), await openOnce(headerPort), await openOnce(floorPort));
      }
      const all = await latencies(starts);
      const [d, t, e, f] = [0, 1, 2, 3].map((k) => percentiles(all.filter((_, i) => i % 4 === k))) as [Percentiles, Percentiles, Percentiles, Percentiles];
      for (const [which, of] of [['p50', 'p50'], ['p99', 'p99']] as const) {
        header[which].raw.push(d[of]);
        header[which].pooled.push(e[of]);
        header[which].floor.push(f[of]);
      }
      p50.raw.push(d.p50);
      p50.pooled.push(t.p50);
      p50.floor.push(f.p50);
      p99.raw.push(d.p99);
      p99.pooled.push(t.p99);
      p99.floor.push(f.p99);
      context.progress(`tunnel open latency over a ${DELAY_MS} ms link, run ${run + 1}/${sizes.runs}`);
      const slow: number[] = [];
      for (let i = 0; i < delayedSamples; i++) slow.push(await openOnce(farPort), await openOnce(farHeaderPort));
      const slowAll = await latencies(slow);
      const [withEarly, plain] = [0, 1].map((k) => percentiles(slowAll.filter((_, i) => i % 2 === k))) as [Percentiles, Percentiles];
      for (const which of ['p50', 'p99'] as const) {
        delayed[which].raw.push(plain[which]);
        delayed[which].pooled.push(withEarly[which]);
      }
      context.progress(`tunnel throughput run ${run + 1}/${sizes.runs}`);
      rate.raw.push(await pump('a direct connection', ports.sink, bulk));
      // One pooled stream across the two processes: taken here, named to the far side, which sinks it (outside the clock).
      const [id, stream] = await streamPool.incomingGet({ timeout: 15_000 });
      await far.call('tunnel.far.take', { id, bytes: bulk });
      try {
        rate.floor.push(await send(`one pooled ${adapter.name} stream`, stream, bulk));
      } finally {
        stream.destroy();
      }
      rate.pooled.push(await pump('the tunnel', bulkPort, bulk));
      // Its connection is opened here, outside the clock.
      await rawTunnel.prepare(far, 1);
      rawTunnelRate.push(await pump('the raw-Node tunnel', rawBulkPort, bulk));
    }
  } catch (error) {
    if (failures.length > 0 && error instanceof Error) error.message += ` (the tunnel servers' failed opens: ${failures.slice(0, 3).join('; ')})`;
    if (error instanceof Error && far) error.message += ` [far side: ${await far.call('tunnel.far.debug', {}).catch(() => '?')}; server pools idle: ${tunnels.map(({ pool }) => pool.active).join(', ')}]`;
    throw error;
  } finally {
    await far?.close();
    for (const { server, pool } of tunnels) {
      await server.close();
      await pool.close();
    }
    await streamPool.close();
    await rawTunnel?.close();
    await link?.close();
  }
  const note =
    `${samples} opens per run after ${warmup} unmeasured, one at a time, rotating direct, tunnelled (the server's earlyData on, its default), tunnelled with earlyData off (a second tunnel server and client) and floor; public client and tunnel server in the bench process, tunnel client and target in a side process ` +
    `(public connect → first byte at the target on the monotonic clock both share); raw = a direct connection to the target (no tunnel); ` +
    `floor = the same path across the same two processes as a raw-Node tunnel without a pool: public listener → a ${adapter.name} connection/stream opened beforehand, named on a plain control connection → far side connects the target, legs joined with pipe()`;
  const row = (metric: string, values: { raw: number[]; pooled: number[]; floor: number[] }, goal?: Row['target']): Row =>
    judge({
      transport: adapter.name,
      scenario: 'tunnel',
      metric,
      unit: 'ms',
      raw: summarize(values.raw),
      pooled: summarize(values.pooled),
      ratio: summarize(pairedRatios(values.pooled, values.raw)),
      floor: summarize(values.floor),
      floorRatio: summarize(pairedRatios(values.pooled, values.floor)),
      ...(goal ? { target: goal } : {}),
      note,
    });
  const throughputRow = judge({
    transport: adapter.name,
    scenario: 'tunnel',
    metric: 'tunnel throughput c→s',
    unit: 'MiB/s',
    raw: summarize(rate.raw),
    pooled: summarize(rate.pooled),
    ratio: summarize(pairedRatios(rate.pooled, rate.raw)),
    floor: summarize(rate.floor),
    floorRatio: summarize(pairedRatios(rate.pooled, rate.floor)),
    target: { label: '≥ 0.9', value: 0.9, on: 'floor', better: 'higher', inclusive: true },
    note:
      `${bulk / MiB} MiB per run public → target; raw = a direct connection to the target; here the floor column is ONE pooled ${adapter.name} stream ` +
      `moving the same bytes server end (bench process) → client end (side process), the way a reverse route's bytes cross it, in the same run, and the target (the issue's ≥ 0.9× a pooled stream) is on tunnel / that stream`,
  });
  const versusRawTunnel: Row = {
    transport: adapter.name,
    scenario: 'tunnel',
    metric: 'tunnel throughput c→s vs raw-Node tunnel',
    unit: 'MiB/s',
    raw: summarize(rawTunnelRate),
    pooled: summarize(rate.pooled),
    ratio: summarize(pairedRatios(rate.pooled, rawTunnelRate)),
    note:
      `the same ${bulk / MiB} MiB per run; here raw = the raw-Node tunnel of the same path (the open-latency rows' floor: a ${adapter.name} connection/stream opened beforehand, ` +
      `legs joined with pipe(), no pool, no library), pooled = the tunnel: what the library's forwarding and control channel cost against Node's own plumbing on the same three legs`,
  };
  const goal: Row['target'] = { label: '< 1 ms', value: 1, on: 'pooled', better: 'lower', inclusive: false };
  return [
    throughputRow,
    versusRawTunnel,
    row('tunnel open latency p50', p50),
    row('tunnel open latency p99', p99, goal),
    row('tunnel open latency p50, earlyData off', header.p50),
    row('tunnel open latency p99, earlyData off', header.p99, goal),
    ...(['p50', 'p99'] as const).map((which): Row => ({
      transport: adapter.name,
      scenario: 'tunnel',
      metric: `tunnel open latency ${which} over a ${DELAY_MS} ms link, earlyData on/off`,
      unit: 'ms',
      raw: summarize(delayed[which].raw),
      pooled: summarize(delayed[which].pooled),
      ratio: summarize(pairedRatios(delayed[which].pooled, delayed[which].raw)),
      note:
        `${delayedSamples} opens of each per run, one at a time, alternating; the tunnel client's connections (its pool's streams and its control channel) pass a relay in its process that holds every chunk ${DELAY_MS} ms each way (a WAN's ${2 * DELAY_MS} ms round trip); ` +
        `raw = the tunnel with the server's earlyData off (the public side's first bytes wait for the client's stream header, a round trip after the OPEN), pooled = as by default, earlyData on (they follow the OPEN at once); the target is local to the tunnel client`,
    })),
  ];
}
