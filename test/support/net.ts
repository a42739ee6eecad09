import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Duplex, Readable } from 'node:stream';

/** A raw TCP server on 127.0.0.1:0 that the test drives byte by byte. */
export interface RawServer {
  port: number;
  sockets: net.Socket[];
  close(): Promise<void>;
}

export async function listenRaw(onSocket: (socket: net.Socket) => void = () => undefined, host = '127.0.0.1', options: net.ServerOpts = {}): Promise<RawServer> {
  const sockets: net.Socket[] = [];
  const server = net.createServer(options, (socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Reads exactly `length` bytes (or everything until end when fewer come). */
export function readBytes(stream: Readable, length: number, timeout = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.pause();
      const all = Buffer.concat(chunks);
      if (all.length > length) stream.unshift(all.subarray(length));
      if (error) reject(error);
      else resolve(all.subarray(0, length));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      total += chunk.length;
      if (total >= length) finish();
    };
    const onEnd = (): void => finish();
    const onError = (error: Error): void => finish(error);
    const timer = setTimeout(() => finish(new Error(`readBytes: only ${total} of ${length} bytes within ${timeout} ms`)), timeout);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    // A 'data' listener alone does not restart a stream paused by an earlier readBytes().
    stream.resume();
  });
}

/** Resolves with every byte until the stream ends. */
export function readToEnd(stream: Readable, timeout = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`readToEnd: no end within ${timeout} ms`)), timeout);
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    stream.resume(); // readBytes() leaves a stream paused
  });
}

/**
 * A request, FIN, then the reply, as a tunnel carries it: `asker` writes
 * `request` and ends its side; `answerer` reads to the end and only then
 * writes `reply` and ends. Resolves with what each side read. Needs
 * half-open streams: a stream that ends its side on the peer's end sends
 * an empty reply (or fails the write).
 */
export async function requestThenReply(asker: Duplex, answerer: Duplex, request: Buffer, reply: Buffer, timeout = 5000): Promise<{ request: Buffer; reply: Buffer }> {
  const replied = readToEnd(asker, timeout);
  replied.catch(() => undefined); // awaited below; not unhandled if the answerer fails first
  asker.end(request);
  const got = await readToEnd(answerer, timeout);
  answerer.end(reply);
  return { request: got, reply: await replied };
}

/** Polls `check` until it returns true: for asserting on state that settles asynchronously. */
export async function eventually(check: () => boolean, timeout = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`eventually: ${what} not met within ${timeout} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host }, () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** Destroys streams that a test took from a pool. */
export function destroyAll(...streams: Array<Duplex | undefined>): void {
  for (const stream of streams) stream?.destroy();
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `count` distinct ports on 127.0.0.1 that nothing listens on now, for a spec
 * that must name a port before something listens on it (a reverse route's
 * public port, a forward route's listener, a CLI flag).
 *
 * A port from `listen(0)` comes from the kernel's ephemeral range, the range
 * every outgoing connection of every parallel Jest worker also draws its local
 * port from: between the spec's pick and its listen, another worker's connect
 * could take it (EADDRINUSE, seen in CI). So the ports come from below the
 * ephemeral range, in a block of its own for each Jest worker, taken in turn
 * and each checked by a listen: no other worker and no outgoing connection
 * draws from that block. Where the ephemeral range leaves no room below it,
 * the kernel picks as before.
 */
export async function freePorts(count: number): Promise<number[]> {
  const block = workerBlock();
  if (block === undefined) return kernelPorts(count);
  const ports: number[] = [];
  for (let tried = 0; ports.length < count; tried += 1) {
    if (tried >= block.size) throw new Error(`no free port left in ${block.first}..${block.first + block.size - 1} for this Jest worker`);
    const port = block.first + (nextInBlock++ % block.size);
    if (await canListen(port)) ports.push(port);
  }
  return ports;
}

const WORKER_BLOCKS = 16;
let nextInBlock = 0;
let cachedBlock: { first: number; size: number } | null | undefined;

/** This worker's block of ports below the ephemeral range (from 10000), or undefined when there is no room. */
function workerBlock(): { first: number; size: number } | undefined {
  if (cachedBlock === undefined) {
    let ephemeralLow = 0;
    try {
      ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    } catch {
      ephemeralLow = 0;
    }
    const room = ephemeralLow - 10_000;
    const size = Math.floor(room / WORKER_BLOCKS);
    const worker = (Number(process.env.JEST_WORKER_ID ?? '1') - 1) % WORKER_BLOCKS;
    cachedBlock = Number.isInteger(ephemeralLow) && size >= 64 ? { first: 10_000 + worker * size, size } : null;
    nextInBlock = (process.pid * 7) % Math.max(1, cachedBlock?.size ?? 1);
  }
  return cachedBlock ?? undefined;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const server = net.createServer();
    server.once('error', () => resolvePromise(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePromise(true)));
  });
}

async function kernelPorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => new Promise<net.Server>((resolvePromise, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolvePromise(server));
    })),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  return ports;
}
