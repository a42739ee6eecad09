import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ServerPoolOptions } from '../../lib/core/server-pool.js';
import type { ClientPoolOptions } from '../../lib/core/client-pool.js';
import type { Duplex } from 'node:stream';
import { createClientPool, createServerPool } from '../../lib/pool-factory.js';
import { TunnelClient } from '../../lib/tunnel/tunnel-client.js';
import { TunnelServer } from '../../lib/tunnel/tunnel-server.js';
import { openPools, type Pools, type RawLink } from '../adapters.js';
import type { ScenarioContext } from '../context.js';
import { judge, type Row } from '../report-types.js';
import { pairedRatios, percentiles, summarize } from '../stats.js';
import { Control, finish, MiB, quiet, transfer } from '../util.js';

/** A free port on 127.0.0.1 (listened on, then closed). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Connect to `port`, write one byte, resolve with the ms until the target got it (`arrived` is fed by the target). */
function openOnce(port: number, arrived: { next?: () => void }): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    arrived.next = () => {
      resolve(performance.now() - started);
      socket.destroy();
    };
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => socket.write('x'));
    socket.on('error', (error) => (arrived.next ? reject(error) : undefined));
  });
}

/** Sends `bytes` to `port` in 64 KiB writes (then FIN); resolves with MiB/s once `sink` counted them all at the target. */
function pump(port: number, bytes: number, sink: { left: number; done?: () => void }): Promise<number> {
  return new Promise((resolve, reject) => {
    const chunk = Buffer.alloc(64 * 1024, 7);
    const started = performance.now();
    sink.left = bytes;
    sink.done = () => resolve(bytes / 1024 / 1024 / ((performance.now() - started) / 1000));
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true });
    socket.on('error', reject);
    let sent = 0;
    const write = (): void => {
      while (sent < bytes) {
        const n = Math.min(chunk.length, bytes - sent);
        sent += n;
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void socket.once('drain', write);
      }
      socket.end();
    };
    socket.once('connect', write);
  });
}

/**
 * The floor of a tunnelled open: the same path with no pool and nothing of
 * the library. A public listener; raw connections (or http2/ws streams) of
 * the kind opened beforehand, outside the clock (as the hand-off floor,
 * `PreopenedHandOff`, does); on a public connection the server side picks
 * one, joins it to the public socket and names its token on a plain
 * control connection; the client side looks its end up in a Map, connects
 * to the target and joins the two with `pipe()`. Public connect → first
 * byte at the target crosses exactly the tunnel's legs and ID hop.
 */
class RawTunnel {
  private readonly ready: Array<{ token: string; server: Duplex }> = [];
  private readonly clients = new Map<string, Duplex>();
  private readonly open = new Set<Duplex>();
  private sequence = 0;
  private publicServer?: net.Server;

  constructor(private readonly link: RawLink, private readonly control: Control, private readonly targetPort: number) {
    control.onLine((token) => {
      const client = this.clients.get(token);
      if (!client) return;
      this.clients.delete(token);
      const target = this.keep(net.connect({ host: '127.0.0.1', port: this.targetPort, noDelay: true, allowHalfOpen: true }));
      client.pipe(target);
      target.pipe(client);
      client.once('close', () => target.destroy());
      target.once('close', () => client.destroy());
    });
  }

  /** Listens on 127.0.0.1; resolves with the public port. */
  async listen(): Promise<number> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
    this.publicServer = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  get size(): number {
    return this.ready.length;
  }

  /** Opens `count` raw pairs, outside any measurement. */
  async prepare(count: number): Promise<void> {
    this.link.onServer = undefined;
    for (let i = 0; i < count; i++) {
      const { client, server } = await this.link.pair();
      const token = `r${this.sequence++}`;
      this.clients.set(token, this.keep(client));
      this.ready.push({ token, server: this.keep(server) });
    }
  }

  private accept(socket: net.Socket): void {
    this.keep(socket);
    const next = this.ready.shift();
    if (!next) return void socket.destroy();
    socket.pipe(next.server);
    next.server.pipe(socket);
    this.control.send(next.token);
    // Both ends of every leg live in this process: when the public side goes, the whole path goes.
    socket.once('close', () => next.server.destroy());
  }

  private keep<T extends Duplex>(stream: T): T {
    quiet(stream);
    this.open.add(stream);
    stream.once('close', () => this.open.delete(stream));
    return stream;
  }

  async close(): Promise<void> {
    for (const stream of [...this.open]) stream.destroy();
    this.open.clear();
    this.ready.length = 0;
    this.clients.clear();
    const server = this.publicServer;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** MiB/s of one pooled stream of the kind, server end → client end (the direction a reverse route's bytes cross it). */
async function pooledStream(pools: Pools, bytes: number, stallMs: number): Promise<number> {
  const pair = await pools.take();
  try {
    const moved = await transfer([{ client: pair.server, server: pair.client }], bytes, false, stallMs);
    return moved.bytes / MiB / moved.seconds;
  } finally {
    finish(pair.client);
    finish(pair.server);
  }
}

/**
 * `tunnel open latency`: a public connect to first byte at the target, one
 * at a time, through a reverse route with a warm pool (anonymous client,
 * the kind's pool), against a direct connection to the target (raw) and
 * the same path as a raw-Node tunnel without a pool (floor, `RawTunnel`),
 * all three in the same run (p50 and p99 of each run). The goal:
 * p99 under 1 ms on loopback. Then `tunnel throughput c→s` against a
 * direct connection (raw) and against one pooled stream of the same kind
 * in the same run (floor column; the goal ≥ 0.9× of it).
 */
export async function tunnel(context: ScenarioContext): Promise<Row[]> {
  const { adapter, sizes } = context;
  const samples = sizes.quick ? 100 : 1000;
  const warmup = sizes.quick ? 10 : 50;
  const batch = 200;
  const stallMs = sizes.quick ? 2000 : 3000;
  const arrived: { next?: () => void } = {};
  const target = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.once('data', () => {
      const next = arrived.next;
      arrived.next = undefined;
      next?.();
    });
  });
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  const targetPort = (target.address() as net.AddressInfo).port;
  const sink: { left: number; done?: () => void } = { left: 0 };
  const sinkServer = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      sink.left -= chunk.length;
      if (sink.left <= 0 && sink.done) {
        const done = sink.done;
        sink.done = undefined;
        done();
      }
    });
  });
  await new Promise<void>((resolve) => sinkServer.listen(0, '127.0.0.1', resolve));
  const sinkPort = (sinkServer.address() as net.AddressInfo).port;
  const publicPort = await freePort();
  const bulkPort = await freePort();
  const bulk = sizes.quick ? 16 * 1024 * 1024 : 256 * 1024 * 1024;
  const rate = { raw: [] as number[], pooled: [] as number[], floor: [] as number[] };
  /** The raw-Node tunnel's throughput on the same path (pipe() instead of the library's forwarding, no pool), per run. */
  const rawTunnelRate: number[] = [];
  const serverPool = createServerPool(adapter.server({ closeTimeout: 1000 } as ServerPoolOptions));
  const server = new TunnelServer({ pool: serverPool, allow: { rules: [{ clients: 'anonymous', names: ['bench', 'bench-bulk'], directions: ['reverse'], ports: [publicPort, bulkPort] }] } });
  const p50 = { raw: [] as number[], pooled: [] as number[], floor: [] as number[] };
  const p99 = { raw: [] as number[], pooled: [] as number[], floor: [] as number[] };
  let clientPool: ReturnType<typeof createClientPool> | undefined;
  let client: TunnelClient | undefined;
  let link: RawLink | undefined;
  let control: Control | undefined;
  let bulkControl: Control | undefined;
  let rawTunnel: RawTunnel | undefined;
  let rawBulk: RawTunnel | undefined;
  let stream: Pools | undefined;
  try {
    await server.start();
    clientPool = createClientPool(adapter.client(serverPool.address()!.port, { minCap: 16, maxCap: 64, closeTimeout: 1000 } as ClientPoolOptions));
    client = new TunnelClient({ pool: clientPool, routes: [
        { name: 'bench', serverPort: publicPort, target: `127.0.0.1:${targetPort}` },
        { name: 'bench-bulk', serverPort: bulkPort, target: `127.0.0.1:${sinkPort}` },
      ],
    });
    await client.start();
    link = await adapter.openRaw();
    control = await Control.open();
    rawTunnel = new RawTunnel(link, control, targetPort);
    const floorPort = await rawTunnel.listen();
    // A control connection of its own: a Control has one line handler.
    bulkControl = await Control.open();
    rawBulk = new RawTunnel(link, bulkControl, sinkPort);
    const rawBulkPort = await rawBulk.listen();
    stream = await openPools(adapter, { server: { closeTimeout: 1000 }, client: { minCap: 2, maxCap: 4, closeTimeout: 1000 } });
    await stream.full(2);
    // One unmeasured warm-up batch of each: the three paths' code optimised before the clock starts.
    await rawTunnel.prepare(warmup);
    for (let i = 0; i < warmup; i++) {
      await openOnce(targetPort, arrived);
      await openOnce(publicPort, arrived);
      await openOnce(floorPort, arrived);
    }
    for (let run = 0; run < sizes.runs; run++) {
      context.progress(`tunnel open latency run ${run + 1}/${sizes.runs}`);
      const direct: number[] = [];
      const tunnelled: number[] = [];
      const floor: number[] = [];
      for (let i = 0; i < samples; i++) {
        // The floor's raw connections are opened between samples, outside the clock, a batch at a time.
        if (rawTunnel.size === 0) await rawTunnel.prepare(Math.min(batch, samples - i));
        direct.push(await openOnce(targetPort, arrived));
        tunnelled.push(await openOnce(publicPort, arrived));
        floor.push(await openOnce(floorPort, arrived));
      }
      const d = percentiles(direct);
      const t = percentiles(tunnelled);
      const f = percentiles(floor);
      p50.raw.push(d.p50);
      p50.pooled.push(t.p50);
      p50.floor.push(f.p50);
      p99.raw.push(d.p99);
      p99.pooled.push(t.p99);
      p99.floor.push(f.p99);
      context.progress(`tunnel throughput run ${run + 1}/${sizes.runs}`);
      rate.raw.push(await pump(sinkPort, bulk, sink));
      rate.floor.push(await pooledStream(stream, bulk, stallMs));
      rate.pooled.push(await pump(bulkPort, bulk, sink));
      // Its connection is opened here, outside the clock.
      await rawBulk.prepare(1);
      rawTunnelRate.push(await pump(rawBulkPort, bulk, sink));
    }
  } finally {
    await client?.close();
    await clientPool?.close();
    await server.close();
    await serverPool.close();
    await stream?.close();
    await rawTunnel?.close();
    await rawBulk?.close();
    await control?.close();
    await bulkControl?.close();
    await link?.close();
    await new Promise<void>((resolve) => target.close(() => resolve()));
    await new Promise<void>((resolve) => sinkServer.close(() => resolve()));
  }
  const note =
    `${samples} opens per run after ${warmup} unmeasured, one at a time, rotating direct, tunnelled and floor; raw = a direct connection to the target (no tunnel); ` +
    `floor = the same path as a raw-Node tunnel without a pool: public listener → a ${adapter.name} connection/stream opened beforehand, named on a plain control connection → client connects the target, legs joined with pipe()`;
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
      `moving the same bytes server end → client end (the way a reverse route's bytes cross it) in the same process and run, and the target (the issue's ≥ 0.9× a pooled stream) is on tunnel / that stream`,
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
  return [throughputRow, versusRawTunnel, row('tunnel open latency p50', p50), row('tunnel open latency p99', p99, { label: '< 1 ms', value: 1, on: 'pooled', better: 'lower', inclusive: false })];
}
