/**
 * The far end of the tunnel scenario, run in a side process (`side-child`,
 * commands `tunnel.far.*`): what sits behind NAT in a reverse tunnel. The
 * tunnel client and its pool, the targets, the client half of the raw-Node
 * tunnel (the floor) and the client end of one pooled stream (the
 * throughput floor). The bench process holds the other half: the tunnel
 * server, the public clients, the server half of the raw tunnel.
 *
 * The open latency is public connect (bench process) → first byte at the
 * target (here): both instants are `process.hrtime.bigint()`, the system's
 * monotonic clock, the same in both processes on Linux. The target records
 * its instants and answers one byte, so the bench opens one connection at a
 * time; the instants cross to the bench after the window (`tunnel.far.stamps`).
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientPoolOptions } from '../../lib/core/client-pool.js';
import type { ClientPool } from '../../lib/core/client-pool.js';
import { createClientPool } from '../../lib/pool-factory.js';
import { TunnelClient, type TunnelClientOptions } from '../../lib/tunnel/tunnel-client.js';
import type { Adapter, RawLink } from '../adapters.js';
import { DelayLink, join, OpenStreams } from '../util.js';

/**
 * The tunnels' shared key: authenticated, as the command line runs them
 * unless told `--insecure` (and `earlyData` only serves a client whose
 * streams proved a key).
 */
export const BENCH_KEY = 'bench-tunnel-key-0123456789abcdef';

export interface FarOpen {
  /** The tunnel server's pool port. */
  tunnelPort: number;
  /** The reverse routes' public ports on the tunnel server: one to the latency target, one to the sink. */
  publicPort: number;
  bulkPort: number;
  /** A second tunnel server, with `earlyData: false`, and its reverse route's public port (to the latency target). */
  headerTunnelPort: number;
  headerPublicPort: number;
  /**
   * Two more tunnel servers, with `earlyData` (default) and without, reached through
   * a `DelayLink` of `delayMs` each way (a WAN's round trip), each with a
   * reverse route to the latency target.
   */
  delayed: { delayMs: number; tunnelPort: number; publicPort: number; headerTunnelPort: number; headerPublicPort: number };
  /** Bytes per throughput run: the sink answers once it has them all. */
  bulk: number;
  /** The bench's raw server (`openRaw()`), the raw tunnel's plain control listener, the throughput floor's server pool. */
  rawPort: number;
  controlPort: number;
  streamPort: number;
}

/** Where the raw tunnel's client half connects a token's stream: the latency target or the sink. */
export type FarTarget = 't' | 's';

export class TunnelFar {
  private readonly open = new OpenStreams();
  /** Arrival instants (ns, `process.hrtime.bigint()`) of each connection's first byte at the target. */
  private stamps: number[] = [];
  private readonly raw = new Map<string, Duplex>();
  private sequence = 0;
  private target?: net.Server;
  private sink?: net.Server;
  /** The tunnel clients, each with its pool, closed in reverse order. */
  private readonly clients: Array<{ client: TunnelClient; pool: ClientPool }> = [];
  private readonly links: DelayLink[] = [];
  private streamPool?: ClientPool;
  private link?: RawLink;
  private control?: net.Socket;

  constructor(private readonly adapter: Adapter) {}

  async start(ports: FarOpen): Promise<void> {
    // Answers the first byte with one byte, and a FIN with its own (its connection ends on every leg instead
    // of staying half-open: each open would otherwise hold its sockets in both processes until the end).
    this.target = await this.listen((socket) => {
      socket.once('data', () => {
        this.stamps.push(Number(process.hrtime.bigint()));
        socket.write('y');
      });
      socket.once('end', () => socket.end());
    });
    // Counts `bulk` bytes, then answers with one byte: the sender's clock stops on it.
    this.sink = await this.listen((socket) => this.sinkOf(socket, ports.bulk));
    const target = `127.0.0.1:${(this.target.address() as net.AddressInfo).port}`;
    const sink = `127.0.0.1:${(this.sink.address() as net.AddressInfo).port}`;
    await this.tunnelClient(ports.tunnelPort, [
      { name: 'bench', serverPort: ports.publicPort, target },
      { name: 'bench-bulk', serverPort: ports.bulkPort, target: sink },
    ]);
    await this.tunnelClient(ports.headerTunnelPort, [{ name: 'bench-header', serverPort: ports.headerPublicPort, target }]);
    const { delayed } = ports;
    await this.tunnelClient(await this.delayLink(delayed.tunnelPort, delayed.delayMs), [{ name: 'bench-far', serverPort: delayed.publicPort, target }]);
    await this.tunnelClient(await this.delayLink(delayed.headerTunnelPort, delayed.delayMs), [{ name: 'bench-far-header', serverPort: delayed.headerPublicPort, target }]);
    this.streamPool = createClientPool(this.adapter.client(ports.streamPort, { minCap: 2, maxCap: 4, closeTimeout: 1000 } as ClientPoolOptions));
    await this.streamPool.start();
    await this.streamPool.waitForActive(1, 15_000);
    this.link = await this.adapter.dialRaw(ports.rawPort);
    const control = net.connect({ host: '127.0.0.1', port: ports.controlPort, noDelay: true });
    this.control = this.keep(control);
    await new Promise<void>((resolve, reject) => control.once('connect', resolve).once('error', reject));
    this.onLine(control, (line) => this.rawOpen(line, target, sink));
  }

  /** A tunnel client (the bench's key, the kind's pool) of the server whose pool listens on `port`, started with `routes`. */
  private async tunnelClient(port: number, routes: TunnelClientOptions['routes']): Promise<void> {
    const pool = createClientPool(this.adapter.client(port, { minCap: 16, maxCap: 64, closeTimeout: 1000, auth: { key: BENCH_KEY } } as ClientPoolOptions));
    const client = new TunnelClient({ pool, routes });
    this.clients.push({ client, pool });
    await client.start();
  }

  /** Each tunnel client's pool figures, for a failure's report. */
  poolStats(): string {
    return this.clients
      .map(({ pool }, i) => {
        const { active, capacity, dialing, failedRounds, nextRoundInMs, failures, totals } = pool.stats;
        return `client ${i}: ${JSON.stringify({ idle: active, capacity, dialing, failedRounds, nextRoundInMs, failures, totals })}`;
      })
      .join('; ');
  }

  /** A `DelayLink` to `port`: the port to dial instead. */
  private delayLink(port: number, delayMs: number): Promise<number> {
    const link = new DelayLink(port, delayMs);
    this.links.push(link);
    return link.listen();
  }

  get ports(): { target: number; sink: number } {
    return { target: (this.target!.address() as net.AddressInfo).port, sink: (this.sink!.address() as net.AddressInfo).port };
  }

  /** Opens `count` raw connections/streams to the bench's raw server, one at a time (they arrive there in this order). */
  async prepare(count: number): Promise<void> {
    for (let i = 0; i < count; i++) this.raw.set(String(this.sequence++), this.keep(await this.link!.dial()));
  }

  /** The first-byte instants since the last call. */
  takeStamps(): number[] {
    const stamps = this.stamps;
    this.stamps = [];
    return stamps;
  }

  /** The throughput floor: takes the pooled stream the bench named and sinks `bytes` from it as the sink does. */
  async takeStream(id: string, bytes: number): Promise<void> {
    this.sinkOf(this.keep(await this.streamPool!.outgoingGet(id, 10_000)), bytes);
  }

  /** Reads `bytes` from `stream`, then writes one byte back (the sender stops its clock on it; no FIN, which not every leg carries). */
  private sinkOf(stream: Duplex, bytes: number): void {
    let left = bytes;
    stream.on('data', (chunk: Buffer) => {
      left -= chunk.length;
      if (left <= 0 && left + chunk.length > 0) stream.write('k');
    });
    stream.once('end', () => stream.end());
  }

  /** A token on the raw tunnel's control line (`<token> <t|s>`): its stream joined to a fresh connection to the target, with pipe(). */
  private rawOpen(line: string, target: string, sink: string): void {
    const [token, which] = line.split(' ') as [string, FarTarget];
    const stream = this.raw.get(token);
    if (!stream) return;
    this.raw.delete(token);
    const [host, port] = (which === 's' ? sink : target).split(':') as [string, string];
    join(stream, this.keep(net.connect({ host, port: Number(port), noDelay: true, allowHalfOpen: true })));
  }

  private onLine(socket: net.Socket, handler: (line: string) => void): void {
    let pending = '';
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      pending += text;
      for (let newline = pending.indexOf('\n'); newline !== -1; newline = pending.indexOf('\n')) {
        handler(pending.slice(0, newline));
        pending = pending.slice(newline + 1);
      }
    });
  }

  private async listen(onSocket: (socket: net.Socket) => void): Promise<net.Server> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => onSocket(this.keep(socket)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return server;
  }

  private keep<T extends Duplex>(stream: T): T {
    return this.open.keep(stream);
  }

  async close(): Promise<void> {
    for (const { client, pool } of this.clients.reverse()) {
      await client.close();
      await pool.close();
    }
    for (const link of this.links) await link.close();
    await this.streamPool?.close();
    this.open.destroyAll();
    this.raw.clear();
    await this.link?.close();
    for (const server of [this.target, this.sink]) if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
