import type { Duplex } from 'node:stream';
import { SlotGate } from './admission.js';
import { withTimeout } from './async.js';
import { FirstStreamLostError, FirstStreamTakenError, InvalidOptionsError, PoolClosedError, PoolNotStartedError, type PoolError } from './errors.js';
import { processFds, type FdBudget } from './fd-budget.js';
import { guardUntilListened, isDead } from './hand-off.js';
import { FIRST_ID, IdAllocator } from './ids.js';
import { IdleStreams, type DropReason } from './idle-streams.js';
import { createAddressFilter, type AddressFilter } from './ip-filter.js';
import { countInto, type ServerPoolStats } from './stats.js';
import { TakenStreams } from './taken-streams.js';
import type { Admission, ConnectingOptions, Refusal, ServerAcceptor, ServerTransport } from './transport.js';
import { OptionReader } from './validate.js';
import { DEFAULT_LOG_INTERVAL_MS, FailureReporter, readLogger, type PoolLogger } from './logger.js';
import { WaiterQueue, type WaitOptions } from './waiters.js';

export interface ServerPoolOptions {
  name?: string;
  /** Most streams held at once, idle plus handshaking (default 4096); more are refused. */
  maxCap?: number;
  /** Peer addresses served: one IP, a CIDR subnet, or a list (default: any). */
  allowedIps?: string | string[];
  /** Default timeout of `incomingGet` in ms (default `Infinity`: wait until a stream comes or the pool closes). */
  getTimeout?: number;
  /**
   * Keep the first stream of the pool's life (ID `00000000`, on transports
   * that issue it) out of `incomingGet`/`incoming`; take it with
   * `firstStream()`, e.g. as a control channel, as NodePass does. Until
   * taken it is held as an idle stream: if it dies first it is dropped
   * (counted in `stats.drops`) and `firstStream()` rejects with
   * `FirstStreamLostError`.
   */
  reserveFirstId?: boolean;
  /**
   * Upper bound of `close()` in ms (default 5000): how long streams already
   * taken get to close on their own before the pool cuts them with a
   * `PoolClosedError`.
   */
  closeTimeout?: number;
  /**
   * Connections allowed to be in their handshake (TLS, HTTP, ID) at once
   * (default 256); more are refused ('busy'), so a flood of silent peers
   * costs bounded memory and CPU. It never exceeds maxCap.
   */
  maxHandshakes?: number;
  /**
   * Of those, how many one peer address may hold at once (default: half of
   * maxHandshakes, 128); more from it are refused ('peer-busy'), so one
   * address that floods the pool with silent connections leaves the other
   * half to everyone else. It never exceeds maxHandshakes.
   */
  maxHandshakesPerPeer?: number;
  /**
   * Of those, how many pooled streams one connection may hold in their
   * handshake at once where several share a connection (HTTP/2; default: a
   * quarter of maxHandshakes, 64); more on it are refused
   * ('connection-busy'). It never exceeds maxHandshakesPerPeer.
   */
  maxHandshakesPerConnection?: number;
  /**
   * Idle streams older than this many ms are never handed out (checked at
   * every hand-out: `incomingGet`, `onIncoming`, `incoming$`) and are closed
   * (counted in `stats.drops.expired`; swept every maxIdle / 4, so closed
   * within 1.25 × maxIdle); 0 (default) keeps them. Not applied to the
   * reserved first stream. Set it below the client's `maxIdle` (e.g. server
   * 50 s, client 55 s, both below the idle timeout of the middleboxes on the
   * path): the server then stops handing out a stream before the client
   * recycles it, so an ID it hands out always finds its stream on the
   * client, even through a middlebox that silently stopped forwarding.
   */
  maxIdle?: number;
  /** Where failed handshakes of clients are reported, rate-limited (default: silent; the Nest module passes its Logger). */
  logger?: PoolLogger;
  /** At most one summary of ongoing failures per this many ms (default 60000). */
  logInterval?: number;
}

export type ResolvedServerPoolOptions = {
  name: string;
  maxCap: number;
  allowedIps: string[] | undefined;
  getTimeout: number;
  reserveFirstId: boolean;
  closeTimeout: number;
  maxHandshakes: number;
  maxHandshakesPerPeer: number;
  maxHandshakesPerConnection: number;
  maxIdle: number;
  logger: PoolLogger;
  logInterval: number;
};

export const SERVER_POOL_OPTION_KEYS = ['name', 'maxCap', 'allowedIps', 'getTimeout', 'reserveFirstId', 'closeTimeout', 'maxHandshakes', 'maxHandshakesPerPeer', 'maxHandshakesPerConnection', 'maxIdle', 'logger', 'logInterval'] as const;

export function resolveServerPoolOptions(options: ServerPoolOptions, prefix = ''): ResolvedServerPoolOptions & { filter: AddressFilter } {
  const read = new OptionReader(options as Record<string, unknown>, prefix);
  const allowed = read.raw('allowedIps') as string | string[] | undefined;
  const filter = createAddressFilter(allowed, read.name('allowedIps'));
  const maxHandshakes = read.int('maxHandshakes', 256, 1, 1_000_000);
  // Derived defaults follow maxHandshakes; an explicit value above it is an error, not silently cut.
  const maxHandshakesPerPeer = read.int('maxHandshakesPerPeer', Math.ceil(maxHandshakes / 2), 1, maxHandshakes);
  const maxHandshakesPerConnection = read.int('maxHandshakesPerConnection', Math.min(Math.ceil(maxHandshakes / 4), maxHandshakesPerPeer), 1, maxHandshakesPerPeer);
  const resolved = {
    name: read.string('name') ?? 'default',
    maxCap: read.int('maxCap', 4096, 1, 1_000_000),
    allowedIps: allowed === undefined ? undefined : typeof allowed === 'string' ? [allowed] : [...allowed],
    getTimeout: read.ms('getTimeout', Infinity, 0, true),
    reserveFirstId: read.bool('reserveFirstId', false),
    closeTimeout: read.ms('closeTimeout', 5000, 0),
    maxHandshakes,
    maxHandshakesPerPeer,
    maxHandshakesPerConnection,
    maxIdle: read.ms('maxIdle', 0, 0),
    logger: readLogger(read),
    logInterval: read.ms('logInterval', DEFAULT_LOG_INTERVAL_MS, 1),
    filter,
  };
  read.rejectUnknown();
  return resolved;
}

type State = 'new' | 'running' | 'closing' | 'closed';

/** Connections from refused addresses allowed through TLS / to their upgrade request at once, to hear a 403 (see ServerPool.strangers). */
const STRANGER_SLOTS = 16;
const STRANGER_SLOTS_PER_PEER = 4;
export type IncomingStream = [id: string, stream: Duplex];

/**
 * The listening side. Every accepted pooled stream gets an ID the pool
 * draws; the application takes ready `[id, stream]` pairs in arrival order
 * and tells the other side the `id`.
 */
export class ServerPool {
  readonly options: ResolvedServerPoolOptions;
  private state: State = 'new';
  private errors = 0;
  private readonly idle: IdleStreams;
  /** IDs reserved for pooled streams in their handshake. */
  private readonly handshaking = new Set<string>();
  /** Handshake slots (connections before admission, and pooled streams in their handshake), in total, per peer, per connection. */
  private readonly gate: SlotGate;
  /**
   * Connections from addresses outside allowedIps, let through TLS or to
   * their upgrade request only to be answered as the Go pools answer them
   * (403 on http2 and ws): a small budget of their own, never the allowed
   * peers' slots; beyond it they are closed bare at accept.
   */
  private readonly strangers: SlotGate;
  private readonly ids: IdAllocator;
  private readonly acceptor: ServerAcceptor;
  private readonly incoming = new WaiterQueue<IncomingStream>();
  private readonly reserved = new WaiterQueue<Duplex>();
  /** The reserved first stream until `firstStream()` takes it, watched like an idle stream. */
  private readonly reservedIdle: IdleStreams;
  /** Why the reserved first stream is gone, if it died before it was taken. */
  private firstLost?: FirstStreamLostError;
  /** `firstStream()` has handed the reserved first stream out. */
  private firstTaken = false;
  /** Closes expired idle streams (only with `maxIdle`). */
  private sweeper?: NodeJS.Timeout;
  /** Streams handed to the application and still open. */
  private readonly taken = new TakenStreams();
  private closing?: Promise<void>;
  private starting?: Promise<void>;
  private readonly totals = { accepted: 0, taken: 0 };
  private readonly refusals: Record<string, number> = {};
  private readonly drops: Record<string, number> = {};
  private readonly reporter: FailureReporter;

  constructor(
    readonly transport: ServerTransport,
    options: ServerPoolOptions = {},
    /** The process's file descriptors, shared by every pool (a spec may pass its own). */
    private readonly fds: FdBudget = processFds,
  ) {
    const { filter, ...resolved } = resolveServerPoolOptions(options);
    this.options = resolved;
    this.reporter = new FailureReporter(resolved.logger, `server pool '${resolved.name}'`, 'accepting clients', resolved.logInterval);
    const { maxHandshakes: total, maxHandshakesPerPeer: perPeer, maxHandshakesPerConnection: perConnection } = this.options;
    this.gate = new SlotGate({ total, perPeer, perConnection }, filter);
    this.strangers = new SlotGate({ total: Math.min(STRANGER_SLOTS, total), perPeer: Math.min(STRANGER_SLOTS_PER_PEER, total), perConnection: Infinity });
    this.idle = new IdleStreams(
      (_id, reason) => this.dropped(reason),
      (stream) => this.transport.isUsable?.(stream) ?? true,
      this.options.maxIdle,
      transport.quietIdle ? (stream, bytes) => this.unexpectedData(stream, bytes) : undefined,
    );
    // No maxIdle here: the first stream is issued once, and expiring it
    // would leave firstStream() nothing to take, ever.
    this.reservedIdle = new IdleStreams(
      (_id, reason, error) => this.firstDropped(reason, error),
      (stream) => this.transport.isUsable?.(stream) ?? true,
    );
    this.ids = new IdAllocator((id) => this.idle.has(id) || this.handshaking.has(id), transport.firstIdZero);
    this.acceptor = {
      limits: { maxCap: this.options.maxCap },
      admit: (remoteAddress, connection) => this.admit(remoteAddress, connection),
      refused: (reason) => this.refuse(reason),
      connecting: (remoteAddress, options) => this.connecting(remoteAddress, options),
    };
  }

  get ready(): boolean {
    return this.state === 'running';
  }

  get active(): number {
    return this.idle.size;
  }

  get capacity(): number {
    return this.options.maxCap;
  }

  get interval(): number {
    return 0;
  }

  get errorCount(): number {
    return this.errors;
  }

  addError(): void {
    this.errors++;
  }

  resetError(): void {
    this.errors = 0;
  }

  /** The bound address, once listening. */
  address(): ReturnType<ServerTransport['address']> {
    return this.transport.address();
  }

  /**
   * Starts listening; resolves once listening. Idempotent (a second call
   * returns the first call's promise); rejects if the transport cannot listen.
   */
  start(): Promise<void> {
    if (this.starting) return this.starting;
    if (this.state !== 'new') return Promise.reject(new PoolClosedError(`server pool ${this.options.name} is closed and cannot be restarted`));
    this.state = 'running';
    if (this.options.maxIdle > 0) {
      this.sweeper = setInterval(() => this.idle.expire(), Math.max(10, Math.ceil(this.options.maxIdle / 4)));
      this.sweeper.unref();
    }
    this.starting = this.transport.listen(this.acceptor).catch((error: unknown) => {
      this.state = 'closed';
      clearInterval(this.sweeper);
      throw error;
    });
    return this.starting;
  }

  /**
   * The oldest ready `[id, stream]`, or the next one to arrive; rejects with
   * `PoolTimeoutError` after `timeout` ms, `PoolClosedError` on close.
   */
  incomingGet(options: number | WaitOptions = {}): Promise<IncomingStream> {
    const wait: WaitOptions = typeof options === 'number' ? { timeout: options } : options;
    try {
      this.assertRunning();
    } catch (error) {
      return Promise.reject(error);
    }
    const ready = this.takeOldest();
    if (ready) return Promise.resolve(ready);
    const timeout = wait.timeout ?? this.options.getTimeout;
    return this.incoming.wait({ timeout, signal: wait.signal }, () =>
      `no pooled stream arrived within ${timeout} ms (server pool ${this.options.name})`,
    );
  }

  /**
   * Calls `listener` with each stream as it becomes ready, taking turns with
   * other subscribers and pending gets; each stream goes to exactly one.
   * Streams wait in the pool while nobody listens. `onClose` runs when the
   * pool closes. Returns the unsubscribe function, which the listener also
   * gets: calling it from inside, even while the streams that waited are
   * handed out, leaves the rest in the pool.
   */
  onIncoming(
    listener: (incoming: IncomingStream, unsubscribe: () => void) => void,
    onClose: (error: PoolError) => void = () => undefined,
  ): () => void {
    this.assertRunning();
    const unsubscribe = this.incoming.subscribe((incoming) => listener(incoming, unsubscribe), onClose);
    // Drain what was waiting through the queue, so subscribers take turns;
    // stop as soon as nobody listens (a listener may unsubscribe after one).
    while (this.incoming.size > 0) {
      const ready = this.takeOldest();
      if (!ready) break;
      this.incoming.offer(ready);
    }
    return unsubscribe;
  }

  /**
   * With `reserveFirstId`: the `00000000` stream, once it is there. Rejects
   * with `FirstStreamLostError` if that stream died before it was taken (it
   * never comes again), `FirstStreamTakenError` at once if it was already
   * taken (and every other call still waiting when one takes it),
   * `PoolTimeoutError` after `timeout` ms, `PoolClosedError` once the pool
   * closes.
   */
  firstStream(options: number | WaitOptions = {}): Promise<Duplex> {
    const wait: WaitOptions = typeof options === 'number' ? { timeout: options } : options;
    if (!this.options.reserveFirstId || !this.transport.firstIdZero) {
      return Promise.reject(new InvalidOptionsError('reserveFirstId', `server pool ${this.options.name} reserves no first stream: set reserveFirstId on a transport that issues ${FIRST_ID} first (http2, ws, tcp with idFormat "raw4")`));
    }
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(new PoolClosedError(`server pool ${this.options.name} is closed`));
    const held = this.reservedIdle.take(FIRST_ID);
    if (held) {
      this.firstTaken = true;
      return Promise.resolve(this.guard(held));
    }
    if (this.firstLost) return Promise.reject(this.firstLost);
    if (this.firstTaken) return Promise.reject(this.firstTakenError());
    const timeout = wait.timeout ?? this.options.getTimeout;
    return this.reserved.wait({ timeout, signal: wait.signal }, () => `the first stream (${FIRST_ID}) did not arrive within ${timeout} ms`);
  }

  /** Closes every idle stream. */
  flush(): number {
    return this.idle.destroyAll('flush');
  }

  /**
   * Graceful close. At once: stops accepting, rejects pending gets with
   * `PoolClosedError`, completes `onIncoming` subscriptions, closes idle
   * streams (the reserved first stream too) and frees the listener. Then the
   * streams already taken get until `timeout` ms to close on their own;
   * those still open then are destroyed with a `PoolClosedError`
   * (`POOL_ERR_CLOSED`), which their 'error' listeners see. Resolves once
   * every taken stream has closed or was cut and the transport closed,
   * within about `timeout`. Idempotent; never rejects.
   */
  close(timeout = this.options.closeTimeout): Promise<void> {
    if (this.closing) return this.closing;
    const wasStarted = this.state !== 'new';
    this.state = 'closing';
    clearInterval(this.sweeper);
    this.reporter.close();
    const closed = new PoolClosedError(`server pool ${this.options.name} is closed`);
    this.incoming.failAll(closed);
    this.reserved.failAll(closed);
    this.reservedIdle.destroyAll('shutdown');
    this.idle.destroyAll('shutdown');
    // Armed before the transport's close, so at the same deadline the pool's
    // typed error reaches a taken stream before anything the transport does.
    const takenClosed = this.taken.closeWithin(timeout, () => this.cutError(timeout));
    const transportClosed = wasStarted ? this.transport.close(timeout) : Promise.resolve();
    this.closing = Promise.all([takenClosed, withTimeout(transportClosed, timeout)]).then(() => {
      this.state = 'closed';
    });
    return this.closing;
  }

  get stats(): ServerPoolStats {
    return {
      role: 'server',
      name: this.options.name,
      transport: this.transport.kind,
      state: this.state,
      ready: this.ready,
      active: this.idle.size,
      capacity: this.options.maxCap,
      maxCap: this.options.maxCap,
      errorCount: this.errors,
      handshaking: this.gate.size + this.strangers.size,
      waiting: this.incoming.size,
      inUse: this.taken.size,
      oldestIdleMs: this.idle.oldestAge(),
      totals: { ...this.totals },
      refusals: { ...this.refusals },
      drops: { ...this.drops },
      transportStats: this.transport.stats?.() ?? {},
    };
  }

  // ---- the transport's side -------------------------------------------


  private admit(remoteAddress: string | undefined, connection: object | undefined): Admission | Refusal {
    if (this.state !== 'running') return this.refuse('closed');
    if (this.idle.size + this.handshaking.size >= this.options.maxCap) return this.refuse('full');
    const release = this.gate.take(remoteAddress, connection, true);
    if (typeof release === 'string') return this.refuse(release);
    if (!this.fds.take()) {
      release();
      return this.refuseForFds();
    }
    const id = this.ids.next();
    this.handshaking.add(id);
    let settled = false;
    return {
      id,
      accept: (stream) => {
        if (settled) return;
        settled = true;
        release();
        this.handshaking.delete(id);
        this.reporter.success();
        this.arrived(id, stream);
      },
      fail: (reason, error) => {
        if (settled) return;
        settled = true;
        release();
        this.handshaking.delete(id);
        this.errors++;
        countInto(this.refusals, reason);
        const failure = new Error(`the handshake of ${remoteAddress ?? 'a client'} failed (${reason})`, error === undefined ? undefined : { cause: error });
        this.reporter.failure(Object.assign(failure, { code: reason }));
      },
    };
  }

  private connecting(remoteAddress: string | undefined, options: ConnectingOptions = {}): (() => void) | Refusal {
    if (this.state !== 'running') return this.refuse('closed');
    if ((options.checkAddress ?? true) && !this.gate.allows(remoteAddress)) {
      // Refused either way: a few get their refusal in the transport's own words (403), the rest a bare close now.
      const courtesy = this.strangers.take(remoteAddress, undefined, false);
      return typeof courtesy === 'string' ? this.refuse('ip') : courtesy;
    }
    // Behind a trusted proxy the address is the proxy's: the peer's share is taken at admit(), once the real address is known.
    const release = this.gate.take(options.checkAddress === false ? null : remoteAddress, undefined, false);
    if (typeof release === 'string') return this.refuse(release);
    if (!this.fds.take()) {
      release();
      return this.refuseForFds();
    }
    return release;
  }

  private arrived(id: string, stream: Duplex): void {
    if (this.state !== 'running') {
      stream.destroy();
      this.dropped('late');
      return;
    }
    this.totals.accepted++;
    if (id === FIRST_ID && this.options.reserveFirstId) {
      // Checked as an idle stream is at take time: a dead one is never
      // handed out, and the waiting calls learn that it is lost.
      if (this.reserved.size > 0 && !this.usable(stream)) {
        stream.destroy();
        this.firstDropped('stale', undefined);
      } else if (this.reserved.size > 0) {
        this.guard(stream);
        this.reserved.offer(stream);
        this.firstTaken = true;
        // The calls still waiting would wait for a stream that never comes.
        this.reserved.failAll(this.firstTakenError());
      } else {
        this.reservedIdle.add(FIRST_ID, stream);
      }
      return;
    }
    if (this.incoming.size > 0) {
      if (!this.usable(stream)) {
        stream.destroy();
        this.dropped('stale');
        return;
      }
      if (!this.carriesJunk(stream)) {
        this.totals.taken++;
        this.guard(stream);
        this.incoming.offer([id, stream]);
        return;
      }
    }
    // Nobody waits, or the stream carries bytes it should not: the idle
    // pool keeps it, or drops and counts it at once.
    this.idle.add(id, stream);
  }

  /**
   * The process is near its file descriptor limit: turned away as 'busy'
   * (the peer sees the pool full), counted as 'fds', so the last
   * descriptors stay with the application (see fd-budget.ts).
   */
  private refuseForFds(): Refusal {
    countInto(this.refusals, 'fds');
    return 'busy';
  }

  /**
   * Bytes its peer should not have sent yet (see ServerTransport.quietIdle);
   * the idle pool drops such a stream. Not asked for the reserved first
   * stream, whose peer knows its ID untold and may write first.
   */
  private carriesJunk(stream: Duplex): boolean {
    return this.transport.quietIdle === true && stream.readableLength > 0;
  }

  /** Alive, and not vetoed by the transport: what every hand-out checks. */
  private usable(stream: Duplex): boolean {
    return !isDead(stream) && (this.transport.isUsable?.(stream) ?? true);
  }

  /** Tracks a stream the application takes, guarded until it listens for errors. */
  private guard(stream: Duplex): Duplex {
    this.taken.add(stream);
    return guardUntilListened(stream);
  }

  /**
   * Bytes arrived on an idle stream of a transport whose clients send
   * nothing before the hand-out: a stranger or a misconfigured peer. The
   * transport may recognise them (a TLS ClientHello on a plain port) and
   * answer; otherwise the stream is destroyed.
   */
  private unexpectedData(stream: Duplex, bytes: Buffer): DropReason {
    const reason = this.transport.refuseIdleData?.(stream, bytes);
    if (reason) return reason;
    stream.destroy();
    return 'unexpected-data';
  }

  private refuse<R extends string>(reason: R): R {
    countInto(this.refusals, reason);
    return reason;
  }

  private takeOldest(): IncomingStream | undefined {
    const ready = this.idle.takeOldest();
    if (!ready) return undefined;
    this.totals.taken++;
    this.guard(ready[1]);
    return ready;
  }

  /** The reserved first stream left before it was taken. */
  private firstDropped(reason: DropReason, error: unknown): void {
    this.dropped(reason);
    if (reason === 'shutdown') return;
    const how = reason === 'error' ? 'failed' : reason === 'end' ? 'was ended by the peer' : reason === 'close' ? 'closed' : 'was dead';
    this.firstLost = new FirstStreamLostError(
      `the first stream (${FIRST_ID}) of server pool ${this.options.name} ${how} before firstStream() took it; a pool issues that ID once, so it will not come again`,
      error === undefined ? undefined : { cause: error },
    );
    // Calls waiting for it would wait for a stream that never comes.
    this.reserved.failAll(this.firstLost);
  }

  private firstTakenError(): FirstStreamTakenError {
    return new FirstStreamTakenError(
      `the first stream (${FIRST_ID}) of server pool ${this.options.name} was already taken by firstStream(); a pool issues that ID once, so it will not come again`,
    );
  }

  private cutError(timeout: number): PoolClosedError {
    return new PoolClosedError(`server pool ${this.options.name} closed: this taken stream was still open at the close timeout (${timeout} ms) and was cut`);
  }

  private dropped(reason: DropReason): void {
    countInto(this.drops, reason);
    if (reason === 'error' || reason === 'end' || reason === 'close' || reason === 'stale' || reason === 'unexpected-data' || reason === 'tls-on-plain') this.errors++;
  }

  private assertRunning(): void {
    if (this.state === 'new') throw new PoolNotStartedError(`server pool ${this.options.name} has not been started: call start() first (the Nest module does it unless autoStart is false)`);
    if (this.state !== 'running') throw new PoolClosedError(`server pool ${this.options.name} is closed`);
  }
}
