/**
 * A transport written the way a third party would: outside lib/, from the
 * package's public exports only, registered nowhere inside the library. It
 * carries pooled streams over a Unix domain socket (`path`) or TCP
 * (`address` / `host`+`port`), with its own small wire: the server sends
 * the stream's ID as 8 lowercase hex characters and a line feed ("0000002a\n"),
 * then the stream is the application's.
 *
 * The conformance suite runs it over TCP on 127.0.0.1 (which its specs
 * address by port); socket-transport.spec.ts runs it over a socket path.
 */
import { once } from 'node:events';
import net from 'node:net';
import {
  DialError,
  HandshakeError,
  InvalidIdError,
  InvalidOptionsError,
  PoolAbortedError,
  PoolRefusedError,
  defineTransport,
  isValidId,
  type Admission,
  type ClientTransport,
  type DialContext,
  type DialResult,
  type OptionReader,
  type RefusalReason,
  type ServerAcceptor,
  type ServerTransport,
} from '../../lib/core-entry.js';

export interface SocketClientOptions {
  /** The server's socket path (a Unix domain socket, or a Windows named pipe). */
  path?: string;
  /** Or its TCP address, "host:port". */
  address?: string;
  /** Bound on connecting, in ms (default 5000). */
  dialTimeout?: number;
  /** Bound on reading the ID line, in ms (default 5000). */
  handshakeTimeout?: number;
}

export interface SocketServerOptions {
  /** The socket path to listen on; or TCP on `host`/`port`. */
  path?: string;
  host?: string;
  port?: number;
  /** Bound on writing the ID line, in ms (default 5000). */
  handshakeTimeout?: number;
}

/** What `net.connect` / `server.listen` take. */
type Target = { path: string } | { host: string; port: number };

const ID_LINE = 9; // 8 hex characters and "\n"
const noop = (): void => undefined;

function clientTarget(read: OptionReader): Target {
  const path = read.string('path');
  const address = read.string('address');
  if (path !== undefined && address !== undefined) throw new InvalidOptionsError(read.name('path'), 'set path or address, not both');
  if (path !== undefined) return { path };
  if (address === undefined) throw new InvalidOptionsError(read.name('address'), 'a socket client pool needs path or address ("host:port")');
  const colon = address.lastIndexOf(':');
  const port = Number(address.slice(colon + 1));
  if (colon <= 0 || !Number.isInteger(port) || port < 1 || port > 65535) read.fail('address', '"host:port"');
  return { host: address.slice(0, colon).replace(/^\[|\]$/g, ''), port };
}

function describe(target: Target): string {
  return 'path' in target ? target.path : `${target.host}:${target.port}`;
}

/** Reads the ID line, leaving every byte after it in the stream. */
function readIdLine(socket: net.Socket, timeout: number, signal: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    const finish = (error: Error | undefined, id?: string): void => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(id!);
    };
    const onReadable = (): void => {
      const line: Buffer | null = socket.read(ID_LINE);
      if (line === null) return;
      if (line.length < ID_LINE) return finish(new HandshakeError(`the server closed after ${line.length} bytes of the ID line`));
      const id = line.subarray(0, 8).toString('latin1');
      if (line[8] !== 0x0a || !isValidId(id)) return finish(new InvalidIdError(`not an ID line: ${JSON.stringify(line.toString('latin1'))}`));
      finish(undefined, id);
    };
    const onEnd = (): void => finish(new PoolRefusedError('the server closed the connection before the ID (it refuses: pool full or this address is not allowed)'));
    const onError = (error: Error): void => finish(new HandshakeError(`the connection failed while reading the ID: ${error.message}`, { cause: error }));
    const onAbort = (): void => finish(new PoolAbortedError('the pool closed during the handshake'));
    const timer = setTimeout(() => finish(new HandshakeError(`no ID line within ${timeout} ms`)), timeout);
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

class SocketClientTransport implements ClientTransport {
  readonly kind = 'socket';

  constructor(
    private readonly target: Target,
    private readonly dialTimeout: number,
    private readonly handshakeTimeout: number,
  ) {}

  async dial({ signal, readId }: DialContext): Promise<DialResult> {
    if (signal.aborted) throw new PoolAbortedError('the pool closed');
    const socket = net.connect({ ...this.target, allowHalfOpen: true });
    try {
      try {
        await once(socket, 'connect', { signal: AbortSignal.any([signal, AbortSignal.timeout(this.dialTimeout)]) });
      } catch (error) {
        if (signal.aborted) throw new PoolAbortedError('the pool closed');
        const reason = (error as Error).name === 'AbortError' ? `no connection within ${this.dialTimeout} ms` : (error as Error).message;
        throw new DialError(`dialing ${describe(this.target)} failed: ${reason}`, { cause: error });
      }
      if (!readId) return { id: null, stream: socket };
      return { id: await readIdLine(socket, this.handshakeTimeout, signal), stream: socket };
    } catch (error) {
      socket.on('error', noop);
      socket.destroy();
      throw error;
    }
  }

  async close(): Promise<void> {
    // Nothing shared between streams.
  }
}

class SocketServerTransport implements ServerTransport {
  readonly kind = 'socket';
  /** Like the ws and http2 wires, this one issues 00000000 first: a client may wait for it before any dial. */
  readonly firstIdZero = true;
  private server?: net.Server;
  private readonly handshakes = new Set<net.Socket>();

  constructor(
    private readonly target: Target,
    private readonly handshakeTimeout: number,
  ) {}

  async listen(acceptor: ServerAcceptor): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.handle(socket, acceptor));
    this.server = server;
    server.listen(this.target);
    await once(server, 'listening');
  }

  address(): { address: string; port: number; family: string } | null {
    const bound = this.server?.address();
    if (typeof bound === 'string') return { address: bound, port: 0, family: 'unix' };
    return bound ?? null;
  }

  async close(): Promise<void> {
    for (const socket of this.handshakes) socket.destroy();
    this.handshakes.clear();
    // Frees the address now; pooled connections are the pool's to end.
    if (this.server?.listening) this.server.close();
  }

  private handle(socket: net.Socket, acceptor: ServerAcceptor): void {
    const admission: Admission | string = acceptor.admit(socket.remoteAddress);
    if (typeof admission === 'string') {
      socket.destroy();
      return;
    }
    this.handshakes.add(socket);
    const fail = (reason: RefusalReason, error?: unknown): void => {
      cleanup();
      socket.on('error', noop);
      socket.destroy();
      admission.fail(reason, error);
    };
    const onError = (error: Error): void => fail('socket-error', error);
    const onClose = (): void => fail('closed-in-handshake');
    const cleanup = (): void => {
      clearTimeout(timer);
      this.handshakes.delete(socket);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.off('end', onClose);
    };
    const timer = setTimeout(() => fail('handshake-timeout'), this.handshakeTimeout);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('end', onClose);
    socket.write(`${admission.id}\n`, (error) => {
      if (error) return fail('socket-error', error);
      if (socket.destroyed) return;
      cleanup();
      admission.accept(socket);
    });
  }
}

/** The third-party transport: pass it as `transport` to createClientPool / createServerPool / PoolModule. */
export const socketTransport = defineTransport<'socket', SocketClientOptions, SocketServerOptions>({
  name: 'socket',
  clientOptionKeys: ['path', 'address', 'dialTimeout', 'handshakeTimeout'],
  serverOptionKeys: ['path', 'host', 'port', 'handshakeTimeout'],
  createClient: (read) => new SocketClientTransport(clientTarget(read), read.ms('dialTimeout', 5000), read.ms('handshakeTimeout', 5000)),
  createServer: (read) => {
    const path = read.string('path');
    const target: Target = path !== undefined ? { path } : { host: read.string('host') ?? '127.0.0.1', port: read.int('port', 0, 0, 65535) };
    if (path !== undefined) read.accept('host', 'port');
    return new SocketServerTransport(target, read.ms('handshakeTimeout', 5000));
  },
});
