import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { Duplex, Readable, Writable } from 'node:stream';
import tls from 'node:tls';
import { cutStream, forward, type ForwardOptions, type Forwarding } from '../../lib/tunnel/forward.js';
import { connectTarget, type TargetOptions } from '../../lib/tunnel/target.js';
import { testCertificate } from '../support/certificate.js';

/**
 * client ⇄ public listener ⇄ forward() ⇄ connectTarget() ⇄ target server,
 * all real sockets on 127.0.0.1 (the public side optionally TLS). Each
 * public connection is forwarded to a new target connection.
 */
export interface Harness {
  readonly publicPort: number;
  readonly targetPort: number;
  /** Target-server sockets, in accept order. */
  readonly targetSockets: net.Socket[];
  /** One per public connection forwarded, in order. */
  readonly forwardings: Forwarding[];
  /** Errors of connectTarget, in order. */
  readonly connectErrors: Error[];
  /** The next forwarding to start. */
  nextForwarding(): Promise<Forwarding>;
  /** The next target-server socket. */
  nextTarget(): Promise<net.Socket>;
  connect(): Promise<Duplex>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** What the target server does with each accepted socket. */
  onTarget?: (socket: net.Socket) => void;
  /** Make the public side TLS (a tls.Server; the client dials TLS). */
  tls?: boolean;
  forward?: ForwardOptions;
  /** The target to dial instead of the harness's own server (e.g. a closed port). */
  target?: Partial<TargetOptions>;
  /** Called with both sockets before forward() takes them. */
  beforeForward?: (publicSide: Duplex, targetSide: net.Socket) => void;
}

function waiterList<T>(): { push(value: T): void; next(): Promise<T> } {
  const values: T[] = [];
  const waiting: ((value: T) => void)[] = [];
  return {
    push(value) {
      const waiter = waiting.shift();
      if (waiter) waiter(value);
      else values.push(value);
    },
    next() {
      const value = values.shift();
      return value !== undefined ? Promise.resolve(value) : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const targetSockets: net.Socket[] = [];
  const forwardings: Forwarding[] = [];
  const connectErrors: Error[] = [];
  const clients: Duplex[] = [];
  const publicSockets: Duplex[] = [];
  const targetQueue = waiterList<net.Socket>();
  const forwardQueue = waiterList<Forwarding>();

  const targetServer = net.createServer({ allowHalfOpen: true }, (socket) => {
    targetSockets.push(socket);
    socket.on('error', () => undefined);
    options.onTarget?.(socket);
    targetQueue.push(socket);
  });
  await new Promise<void>((resolve) => targetServer.listen(0, '127.0.0.1', resolve));
  const targetPort = (targetServer.address() as net.AddressInfo).port;

  const onPublic = (socket: Duplex & { remoteAddress?: string }): void => {
    publicSockets.push(socket);
    socket.on('error', () => undefined);
    connectTarget({ host: '127.0.0.1', port: targetPort, timeout: 10_000, ...options.target }).then(
      (target) => {
        options.beforeForward?.(socket, target);
        const forwarding = forward(socket, target, options.forward);
        forwardings.push(forwarding);
        forwardQueue.push(forwarding);
      },
      (error: Error) => {
        connectErrors.push(error);
        cutStream(socket, error);
      },
    );
  };
  const certificate = options.tls ? testCertificate() : undefined;
  const publicServer = certificate
    ? tls.createServer({ key: certificate.key, cert: certificate.cert, allowHalfOpen: true }, onPublic)
    : net.createServer({ allowHalfOpen: true }, onPublic);
  await new Promise<void>((resolve) => publicServer.listen(0, '127.0.0.1', resolve));
  const publicPort = (publicServer.address() as net.AddressInfo).port;

  return {
    publicPort,
    targetPort,
    targetSockets,
    forwardings,
    connectErrors,
    nextForwarding: () => forwardQueue.next(),
    nextTarget: () => targetQueue.next(),
    connect: () =>
      new Promise((resolve, reject) => {
        const client: Duplex = certificate
          ? tls.connect({ host: '127.0.0.1', port: publicPort, ca: certificate.cert, servername: 'localhost', allowHalfOpen: true } as tls.ConnectionOptions, () => resolve(client))
          : net.connect({ host: '127.0.0.1', port: publicPort, allowHalfOpen: true }, () => resolve(client));
        clients.push(client);
        client.once('error', reject);
      }),
    close: async () => {
      for (const socket of [...clients, ...publicSockets, ...targetSockets]) {
        socket.on('error', () => undefined);
        socket.destroy();
      }
      await Promise.all(forwardings.map((forwarding) => forwarding.done));
      await Promise.all([
        new Promise<void>((resolve) => publicServer.close(() => resolve())),
        new Promise<void>((resolve) => targetServer.close(() => resolve())),
      ]);
    },
  };
}

/** Writes `total` bytes of random data in 256 KiB chunks, honouring back-pressure; resolves with their SHA-256. */
export async function writeRandom(stream: Writable, total: number, end = true): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(256 * 1024);
  let written = 0;
  while (written < total) {
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, total - written)));
    chunk.writeUInt32BE(written / 1024, 0); // no two chunks alike
    hash.update(chunk);
    written += chunk.length;
    if (!stream.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => {
          stream.off('error', onError);
          resolve();
        };
        const onError = (error: Error): void => {
          stream.off('drain', onDrain);
          reject(error);
        };
        stream.once('drain', onDrain);
        stream.once('error', onError);
      });
    }
  }
  if (end) stream.end();
  return hash.digest('hex');
}

/** Reads until the end; resolves with the byte count and SHA-256, rejects on an error (a cut). */
export function readAll(stream: Readable): Promise<{ bytes: number; sha256: string; data: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let bytes = 0;
    const kept: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
      if (bytes <= 1024 * 1024) kept.push(chunk);
    });
    stream.once('end', () => resolve({ bytes, sha256: hash.digest('hex'), data: bytes <= 1024 * 1024 ? Buffer.concat(kept) : undefined }));
    stream.once('error', reject);
  });
}

/** How a read side finished: 'end' (a clean end) or the error's code. */
export function howItEnds(stream: Readable): Promise<string> {
  return new Promise((resolve) => {
    stream.once('end', () => resolve('end'));
    stream.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    stream.resume();
  });
}
