import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import WebSocket, { WebSocketServer, createWebSocketStream } from 'ws';
// Module by module rather than the package entry: the entry also loads the Nest layer, which
// the bench does not use (and which would add to every forked memory child's start-up).
import { createSelfSignedCertificate } from '../lib/certs/index.js';
import { ClientPool, type ClientPoolOptions } from '../lib/core/client-pool.js';
import type { ServerPool, ServerPoolOptions } from '../lib/core/server-pool.js';
import type { ClientTransport } from '../lib/core/transport.js';
import { createClientPool, createServerPool, type ClientPoolConfig, type ServerPoolConfig } from '../lib/pool-factory.js';
import { DEFAULT_INITIAL_WINDOW_SIZE, DEFAULT_MAX_SESSION_MEMORY_MIB, DEFAULT_SESSION_WINDOW_SIZE } from '../lib/transports/http2/http2-settings.js';
import { wsMasking } from '../lib/transports/ws/masking.js';
import { BUILT_IN_TRANSPORTS } from '../lib/transports/index.js';
import { MiB, noop, quiet, within, type StreamPair } from './util.js';

/**
 * One adapter per transport kind: how to build a pooled pair (server pool
 * config + client pool config, through the public factories) and its raw
 * Node counterpart of the same kind. Scenarios only see this interface.
 */

export type AdapterName = 'tcp' | 'tls' | 'http2' | 'ws' | 'wss';
export const ADAPTER_NAMES: readonly AdapterName[] = ['tcp', 'tls', 'http2', 'ws', 'wss'];

export interface Adapter {
  readonly name: AdapterName;
  /** The registry key in `BUILT_IN_TRANSPORTS` this adapter needs. */
  readonly transport: 'tcp' | 'http2' | 'ws';
  /** What the raw side is, for the output. */
  readonly raw: string;
  server(core: ServerPoolOptions): ServerPoolConfig;
  client(port: number, core: ClientPoolOptions): ClientPoolConfig;
  openRaw(): Promise<RawLink>;
  /**
   * A raw link with no server of its own that dials `port` (the `port` of
   * an `openRaw()` link in another process): its `dial()` opens a client end
   * there, the server end arrives at that process's link.
   */
  dialRaw(port: number): Promise<RawLink>;
  /** Facts that matter for reading the figures (e.g. ws masking). */
  notes(): string[];
}

// ---- certificates -----------------------------------------------------------

let certificate: { key: string; cert: string } | undefined;

/** One self-signed certificate (ECDSA P-256) for the whole run: pooled and raw servers use the same one. */
export function certs(): { key: string; cert: string } {
  return (certificate ??= createSelfSignedCertificate());
}

/** One client secure context per raw link, as the pools keep one per pool. */
function clientContext(): tls.SecureContext {
  return tls.createSecureContext({ minVersion: 'TLSv1.3' });
}

// ---- raw links --------------------------------------------------------------

/**
 * A raw server of one kind on 127.0.0.1 plus a way to dial it. Server ends
 * are queued in arrival order (`nextServer()`), or go to `onServer` when set.
 * `close()` destroys every end it made and frees the port.
 */
export abstract class RawLink {
  abstract readonly label: string;
  /** The port its server listens on (the one dialed, for a link made by `dialRaw`). */
  abstract readonly port: number;
  onServer: ((end: Duplex) => void) | undefined;
  protected readonly ends = new Set<Duplex>();
  private readonly queue: Duplex[] = [];
  private readonly waiting: Array<(end: Duplex) => void> = [];

  /** Opens a client end; resolves once it is established (connected, handshaken, answered, open). */
  dial(): Promise<Duplex> {
    return within(this.connect(), 15_000, `a raw ${this.label} connection`);
  }

  protected abstract connect(): Promise<Duplex>;
  protected abstract shutdown(): Promise<void>;

  nextServer(): Promise<Duplex> {
    const ready = this.queue.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A connected client end and its server end (pairs opened one at a time match up). */
  async pair(): Promise<StreamPair> {
    const [client, server] = await within(Promise.all([this.dial(), this.nextServer()]), 10_000, `a raw ${this.label} pair`);
    return { client, server };
  }

  /**
   * Opens one connection and waits until the server holds an end too (any
   * one: bulk opening does not need them matched). Bulk opening paced this
   * way cannot run ahead of the server: on tcp a client's connect completes
   * in the kernel before the server accepts, so with both ends on one event
   * loop, unpaced connects pile up in the accept queue until it overflows
   * (backlog 511) and the kernel drops SYNs for a 1 s retransmit.
   */
  async open(): Promise<void> {
    await within(Promise.all([this.connect(), this.nextServer()]), 15_000, `a raw ${this.label} connection`);
  }

  /** Drops queued server ends (after bulk opening, when only the count matters). */
  drainQueue(): Duplex[] {
    return this.queue.splice(0);
  }

  protected track<T extends Duplex>(end: T): T {
    quiet(end);
    this.ends.add(end);
    end.once('close', () => this.ends.delete(end));
    return end;
  }

  protected arrived(end: Duplex): void {
    this.track(end);
    if (this.onServer) return this.onServer(end);
    const waiter = this.waiting.shift();
    if (waiter) waiter(end);
    else this.queue.push(end);
  }

  async close(): Promise<void> {
    for (const end of [...this.ends]) end.destroy();
    this.ends.clear();
    this.queue.length = 0;
    await within(this.shutdown(), 15_000, `closing the raw ${this.label} server`);
  }
}

function listen(server: net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}

function waitFor(emitter: NodeJS.EventEmitter, event: string, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      emitter.off(event, onEvent);
      reject(new Error(`${what}: ${error.message}`));
    };
    const onEvent = (): void => {
      emitter.off('error', onError);
      resolve();
    };
    emitter.once(event, onEvent);
    emitter.once('error', onError);
  });
}

class RawTcp extends RawLink {
  readonly label = 'net';
  constructor(private readonly server: net.Server | undefined, readonly port: number) {
    super();
  }

  static async open(): Promise<RawTcp> {
    let link: RawTcp | undefined;
    const server = net.createServer({ noDelay: true }, (socket) => link!.arrived(socket));
    link = new RawTcp(server, await listen(server));
    return link;
  }

  protected async connect(): Promise<Duplex> {
    const socket = this.track(net.connect({ host: '127.0.0.1', port: this.port, noDelay: true }));
    await waitFor(socket, 'connect', 'raw net connect');
    return socket;
  }

  protected async shutdown(): Promise<void> {
    if (this.server) await closeServer(this.server);
  }
}

class RawTls extends RawLink {
  readonly label = 'tls';
  private readonly context = clientContext();
  constructor(private readonly server: tls.Server | undefined, readonly port: number) {
    super();
  }

  static async open(): Promise<RawTls> {
    let link: RawTls | undefined;
    const server = tls.createServer({ ...certs(), minVersion: 'TLSv1.3' }, (socket) => link!.arrived(socket));
    server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    server.on('tlsClientError', noop);
    link = new RawTls(server, await listen(server));
    return link;
  }

  protected async connect(): Promise<Duplex> {
    const socket = this.track(tls.connect({ host: '127.0.0.1', port: this.port, secureContext: this.context, minVersion: 'TLSv1.3', rejectUnauthorized: false }));
    socket.setNoDelay(true);
    await waitFor(socket, 'secureConnect', 'raw tls connect');
    return socket;
  }

  protected async shutdown(): Promise<void> {
    if (this.server) await closeServer(this.server);
  }
}

/**
 * The http2 transport's defaults, used on both raw ends too: imported, not
 * copied, so the raw reference cannot drift from what the pool uses (it
 * once did: the raw side kept 8/64 MiB windows after the transport moved
 * to 1/2 MiB, and stalled both ways where the pool did not).
 */
export const H2_WINDOWS = {
  initialWindowSize: DEFAULT_INITIAL_WINDOW_SIZE,
  sessionWindowSize: DEFAULT_SESSION_WINDOW_SIZE,
  maxSessionMemory: DEFAULT_MAX_SESSION_MEMORY_MIB,
};

function widen(session: http2.Http2Session): void {
  const apply = (): void => {
    try {
      session.setLocalWindowSize(H2_WINDOWS.sessionWindowSize);
    } catch {
      // closed already
    }
  };
  if (session.connecting) session.once('connect', apply);
  else apply();
}

class RawHttp2 extends RawLink {
  readonly label = 'node:http2 stream';
  private constructor(
    private readonly server: http2.Http2SecureServer | undefined,
    private readonly serverSessions: Set<http2.ServerHttp2Session>,
    private readonly session: http2.ClientHttp2Session,
    readonly port: number,
  ) {
    super();
  }

  static async open(): Promise<RawHttp2> {
    let link: RawHttp2 | undefined;
    const settings = { initialWindowSize: H2_WINDOWS.initialWindowSize, maxConcurrentStreams: 4096 };
    const server = http2.createSecureServer({ ...certs(), minVersion: 'TLSv1.3', settings, maxSessionMemory: H2_WINDOWS.maxSessionMemory });
    const serverSessions = new Set<http2.ServerHttp2Session>();
    server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    server.on('session', (session) => {
      session.on('error', noop);
      serverSessions.add(session);
      session.once('close', () => serverSessions.delete(session));
      widen(session);
    });
    server.on('sessionError', noop);
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      link!.arrived(stream);
    });
    const port = await listen(server);
    link = new RawHttp2(server, serverSessions, await RawHttp2.session(port), port);
    return link;
  }

  /** A link that only dials `port` (its server is in another process). */
  static async dialTo(port: number): Promise<RawHttp2> {
    return new RawHttp2(undefined, new Set(), await RawHttp2.session(port), port);
  }

  private static async session(port: number): Promise<http2.ClientHttp2Session> {
    const context = clientContext();
    const session = http2.connect(`https://127.0.0.1:${port}`, {
      createConnection: () =>
        tls.connect({ host: '127.0.0.1', port, ALPNProtocols: ['h2'], secureContext: context, minVersion: 'TLSv1.3', rejectUnauthorized: false }).setNoDelay(true),
      settings: { enablePush: false, initialWindowSize: H2_WINDOWS.initialWindowSize },
      maxSessionMemory: H2_WINDOWS.maxSessionMemory,
    });
    session.on('error', noop);
    widen(session);
    await waitFor(session, 'remoteSettings', 'raw http2 session');
    return session;
  }

  protected async connect(): Promise<Duplex> {
    const stream = this.track(this.session.request({ ':method': 'POST', ':path': '/stream' }, { endStream: false }));
    await waitFor(stream, 'response', 'raw http2 request');
    return stream;
  }

  /** GOAWAY both ways with a short grace, then destroy: the bench owns these sessions and must not wait on a straggler. */
  protected async shutdown(): Promise<void> {
    const sessions: http2.Http2Session[] = [this.session, ...this.serverSessions];
    await Promise.all(
      sessions.map(
        (session) =>
          new Promise<void>((resolve) => {
            if (session.destroyed) return resolve();
            const timer = setTimeout(() => session.destroy(), 1000);
            session.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            if (!session.closed) session.close();
          }),
      ),
    );
    if (this.server) await closeServer(this.server);
  }
}

class RawWs extends RawLink {
  readonly label: string;
  private readonly context = clientContext();
  constructor(
    private readonly secure: boolean,
    private readonly server: http.Server | https.Server | undefined,
    private readonly wss: WebSocketServer | undefined,
    readonly port: number,
  ) {
    super();
    this.label = `ws duplex (${secure ? 'wss' : 'ws'}, masking: ${wsMasking()})`;
  }

  static async open(secure: boolean): Promise<RawWs> {
    let link: RawWs | undefined;
    const server = secure ? https.createServer({ ...certs(), minVersion: 'TLSv1.3' }) : http.createServer();
    const wss = new WebSocketServer({ server, perMessageDeflate: false, clientTracking: false, skipUTF8Validation: true });
    wss.on('connection', (ws) => link!.arrived(createWebSocketStream(ws)));
    wss.on('error', noop);
    link = new RawWs(secure, server, wss, await listen(server));
    return link;
  }

  protected async connect(): Promise<Duplex> {
    const url = `${this.secure ? 'wss' : 'ws'}://127.0.0.1:${this.port}/`;
    const ws = new WebSocket(url, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      ...(this.secure ? { secureContext: this.context, minVersion: 'TLSv1.3', rejectUnauthorized: false } : {}),
    } as WebSocket.ClientOptions);
    const stream = this.track(createWebSocketStream(ws));
    await waitFor(ws, 'open', 'raw WebSocket open');
    return stream;
  }

  protected async shutdown(): Promise<void> {
    this.wss?.close();
    if (!this.server) return;
    this.server.closeAllConnections?.();
    await closeServer(this.server);
  }
}

// ---- the adapters -------------------------------------------------------------

const LOCAL = { host: '127.0.0.1', port: 0 } as const;

const tcpAdapter: Adapter = {
  name: 'tcp',
  transport: 'tcp',
  raw: 'net.Socket (noDelay)',
  server: (core) => ({ ...core, ...LOCAL, transport: 'tcp' }),
  client: (port, core) => ({ ...core, transport: 'tcp', address: `127.0.0.1:${port}` }),
  openRaw: () => RawTcp.open(),
  dialRaw: async (port) => new RawTcp(undefined, port),
  notes: () => [],
};

const tlsAdapter: Adapter = {
  name: 'tls',
  transport: 'tcp',
  raw: 'tls.TLSSocket (TLS 1.3, one client context)',
  server: (core) => ({ ...core, ...LOCAL, transport: 'tcp', tls: certs() }),
  client: (port, core) => ({ ...core, transport: 'tcp', address: `127.0.0.1:${port}`, tls: '1' }),
  openRaw: () => RawTls.open(),
  dialRaw: async (port) => new RawTls(undefined, port),
  notes: () => [],
};

const http2Adapter: Adapter = {
  name: 'http2',
  transport: 'http2',
  raw: `node:http2 stream (one session, windows ${H2_WINDOWS.initialWindowSize / MiB}/${H2_WINDOWS.sessionWindowSize / MiB} MiB)`,
  server: (core) => ({ ...core, ...LOCAL, transport: 'http2', tls: certs() }),
  client: (port, core) => ({ ...core, transport: 'http2', address: `127.0.0.1:${port}`, tls: '1' }),
  openRaw: () => RawHttp2.open(),
  dialRaw: (port) => RawHttp2.dialTo(port),
  notes: () => [],
};

const wsAdapter: Adapter = {
  name: 'ws',
  transport: 'ws',
  raw: 'ws createWebSocketStream (ws://)',
  server: (core) => ({ ...core, ...LOCAL, transport: 'ws' }),
  client: (port, core) => ({ ...core, transport: 'ws', address: `127.0.0.1:${port}` }),
  openRaw: () => RawWs.open(false),
  dialRaw: async (port) => new RawWs(false, undefined, undefined, port),
  notes: () => [`ws masking: ${wsMasking()}`],
};

const wssAdapter: Adapter = {
  name: 'wss',
  transport: 'ws',
  raw: 'ws createWebSocketStream (wss://, TLS 1.3)',
  server: (core) => ({ ...core, ...LOCAL, transport: 'ws', tls: certs() }),
  client: (port, core) => ({ ...core, transport: 'ws', address: `127.0.0.1:${port}`, tls: '1' }),
  openRaw: () => RawWs.open(true),
  dialRaw: async (port) => new RawWs(true, undefined, undefined, port),
  notes: () => [`ws masking: ${wsMasking()}`],
};

export const ADAPTERS: Readonly<Record<AdapterName, Adapter>> = {
  tcp: tcpAdapter,
  tls: tlsAdapter,
  http2: http2Adapter,
  ws: wsAdapter,
  wss: wssAdapter,
};

/** Whether the adapter's transport is registered in this build (http2 and ws arrive separately). */
export function isRegistered(adapter: Adapter): boolean {
  return Object.prototype.hasOwnProperty.call(BUILT_IN_TRANSPORTS, adapter.transport);
}

// ---- pooled pairs -----------------------------------------------------------------

export interface Pools {
  readonly server: ServerPool;
  readonly client: ClientPool;
  /** Takes one warm pooled stream from both sides, as an application does (take, then `outgoingGet(id)`). */
  take(): Promise<StreamPair & { id: string }>;
  /** Resolves once both sides hold `count` idle streams. */
  full(count: number, timeout?: number): Promise<void>;
  /** Destroys the streams taken through `take()` and closes both pools. */
  close(): Promise<void>;
}

export interface PoolSetup {
  server?: ServerPoolOptions;
  client?: ClientPoolOptions;
  /** Wraps the client transport built from the config (`new ClientPool(wrapped, options)`). */
  wrap?: (transport: ClientTransport) => ClientTransport;
  /** Default true. */
  start?: boolean;
}

export async function openPools(adapter: Adapter, setup: PoolSetup = {}): Promise<Pools> {
  const server = createServerPool(adapter.server(setup.server ?? {}));
  await server.start();
  const port = server.address()!.port;
  const config = adapter.client(port, setup.client ?? {});
  const built = createClientPool(config);
  const client = setup.wrap ? new ClientPool(setup.wrap(built.transport), setup.client ?? {}) : built;
  if (setup.start !== false) client.start();
  const taken = new Set<Duplex>();
  const keep = (stream: Duplex): Duplex => {
    quiet(stream);
    taken.add(stream);
    stream.once('close', () => taken.delete(stream));
    return stream;
  };
  return {
    server,
    client,
    async take() {
      const [id, serverEnd] = await server.incomingGet(10_000);
      keep(serverEnd);
      const clientEnd = keep(await client.outgoingGet(id, 10_000));
      return { id, client: clientEnd, server: serverEnd };
    },
    async full(count, timeout = 60_000) {
      await client.waitForActive(count, timeout);
      const deadline = Date.now() + timeout;
      while (server.active < count) {
        if (Date.now() > deadline) throw new Error(`the server pool holds ${server.active} of ${count} idle streams after ${timeout} ms`);
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    },
    async close() {
      for (const stream of taken) stream.destroy();
      taken.clear();
      await within(client.close(), 15_000, `closing the ${adapter.name} client pool`);
      await within(server.close(), 15_000, `closing the ${adapter.name} server pool`);
    },
  };
}
