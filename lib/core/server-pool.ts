import type { Duplex } from 'node:stream';
import { SlotGate } from './admission.js';
import { identityLabel } from '../auth/identity.js';
import { ClientCounters } from './client-stats.js';
import { InvalidIdError, InvalidOptionsError, PoolClosedError, type PoolError } from './errors.js';
import { processFds, type FdBudget } from './fd-budget.js';
import { FirstStream } from './first-stream.js';
import { FIRST_ID, IdAllocator, isValidId } from './ids.js';
import type { DropReason } from './idle-streams.js';
import { createAddressFilter, type AddressFilter } from './ip-filter.js';
import { PoolBase } from './pool-base.js';
import { countInto, type ServerPoolStats } from './stats.js';
import type { Admission, ConnectingOptions, Refusal, RefusalReason, ServerAcceptor, ServerTransport } from './transport.js';
import { OptionReader } from './validate.js';
import { DEFAULT_LOG_INTERVAL_MS, readLogger, type PoolLogger } from './logger.js';
import { streamIdentity, type ClientIdentity } from './stream-identity.js';
import { KeyedWaiters, WaiterQueue, type WaitOptions } from './waiters.js';
import { handedOffLater, handedOffPair, linkDiagnostics, publishRefusal, streamReady, takeStarted } from '../diagnostics/pool-events.js';

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

/** Connections from refused addresses allowed through TLS / to their upgrade request at once, to hear a 403 (see ServerPool.strangers). */
const STRANGER_SLOTS = 16;
const STRANGER_SLOTS_PER_PEER = 4;
export type IncomingStream = [id: string, stream: Duplex];

/** Which streams `onIncoming` (and `incomingGet`) take. */
export interface IncomingOptions {
  /**
   * Only the streams of this client: its identity (as `streamIdentity()`
   * gives it), or its label as `identityLabel()` writes it (`key:<id>`,
   * `cert:<common name>`, `cert:sha256:<fingerprint>`). Streams are matched
   * by label, so two certificates with the same common name are one client.
   * A stream without an identity (a pool without authentication) never
   * matches a filter.
   */
  client?: string | ClientIdentity;
}

/** Options of `incomingGet`: how long to wait, and which stream. */
export interface IncomingGetOptions extends WaitOptions, IncomingOptions {
  /**
   * Exactly the stream with this ID (the forward tunnel: the client names
   * one of its ready streams): taken at once if idle, waited for (up to the
   * timeout) while it is still in its handshake, and then never handed to
   * another get meanwhile. With `client`, only if that stream is of that
   * client. Rejects with `InvalidIdError` when the ID is malformed, is the
   * reserved first stream, or names no stream the pool holds or is
   * accepting (taken already, dropped, never issued, of another client).
   * A client that proved its identity may write on the stream as soon as it
   * has named it, even on transports whose idle streams must stay quiet
   * (tcp, http2): its bytes wait for the taker. A stream without an
   * identity that carries bytes while idle is still dropped there, so
   * without authentication wait for the server's word before writing.
   */
  id?: string;
}

/**
 * A claim on pooled streams by their first bytes (`ServerPool.claimEarly`):
 * the tunnel's control stream, which its client names by writing a preamble
 * on it before the server takes it.
 */
export interface EarlyClaim {
  /**
   * The bytes an idle stream received so far (a copy; they stay in the
   * stream) and its client's identity, if it proved one. 'claim' takes the
   * stream, 'wait' asks again when more bytes come, 'keep' leaves the bytes
   * for whoever takes the stream (never dropped as unexpected), 'pass'
   * leaves it to the pool's usual rules.
   */
  match(bytes: Buffer, identity: ClientIdentity | undefined, id: string): 'claim' | 'wait' | 'keep' | 'pass';
  /** The claimed stream, handed out (counted as taken) with its bytes unread. */
  claimed(incoming: IncomingStream, identity: ClientIdentity | undefined): void;
}

/** The label a `client` filter stands for; undefined without one. Throws InvalidOptionsError on anything else. */
function clientLabel(client: unknown): string | undefined {
  if (client === undefined) return undefined;
  if (typeof client === 'string' && client !== '') return client;
  if (typeof client === 'object' && client !== null) {
    const identity = client as Partial<ClientIdentity>;
    if (identity.kind === 'key' && typeof identity.id === 'string') return identityLabel(identity as ClientIdentity);
    if (identity.kind === 'certificate' && typeof identity.fingerprint === 'string') return identityLabel(identity as ClientIdentity);
  }
  throw new InvalidOptionsError('client', `client must be a client identity ({ kind: 'key', id } or a certificate identity) or its label ('key:<id>', 'cert:<common name>'), got ${typeof client === 'string' ? '""' : typeof client}`);
}

/** The identity label of a pooled stream, if its transport proved one. */
function streamLabel(stream: Duplex): string | undefined {
  const identity = streamIdentity(stream);
  return identity === undefined ? undefined : identityLabel(identity);
}

/**
 * The listening side. Every accepted pooled stream gets an ID the pool
 * draws; the application takes ready `[id, stream]` pairs in arrival order
 * and tells the other side the `id`. The lifecycle, idle and taken streams,
 * counters and the hand-out path are `PoolBase`'s; this class adds the
 * acceptor the transport calls, the IDs, the handshake slots and the
 * reserved first stream.
 */
export class ServerPool extends PoolBase<ServerTransport> {
  readonly options: ResolvedServerPoolOptions;
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
  /** Pending `incomingGet`s and `onIncoming` subscribers, served in turn (a stream goes to the oldest that takes its client). */
  private readonly incoming = new WaiterQueue<IncomingStream>();
  /** `incomingGet({ id })` calls waiting for a stream still in its handshake, by ID. */
  private readonly byId = new KeyedWaiters<IncomingStream>();
  /** Per-client counters, for `stats.clients`. */
  private readonly clients = new ClientCounters((label) => this.idle.countOf(label));
  /** With `reserveFirstId`: the `00000000` stream's reservation. */
  private readonly first?: FirstStream;
  /** Closes expired idle streams (only with `maxIdle`). */
  private sweeper?: NodeJS.Timeout;
  /** The transport's listen, from `start()`. */
  private startup?: Promise<void>;
  private accepted = 0;
  /** `claimEarly` subscriptions, asked in order. */
  private readonly claims = new Set<EarlyClaim>();
  private readonly refusals: Record<string, number> = {};

  constructor(
    transport: ServerTransport,
    options: ServerPoolOptions = {},
    /** The process's file descriptors, shared by every pool (a spec may pass its own). */
    private readonly fds: FdBudget = processFds,
  ) {
    const { filter, ...resolved } = resolveServerPoolOptions(options);
    super(transport, {
      ...resolved,
      role: 'server',
      activity: 'accepting clients',
      quietIdle: transport.quietIdle === true,
    });
    this.options = resolved;
    const { maxHandshakes: total, maxHandshakesPerPeer: perPeer, maxHandshakesPerConnection: perConnection } = resolved;
    this.gate = new SlotGate({ total, perPeer, perConnection }, filter);
    this.strangers = new SlotGate({ total: Math.min(STRANGER_SLOTS, total), perPeer: Math.min(STRANGER_SLOTS_PER_PEER, total), perConnection: Infinity });
    if (resolved.reserveFirstId) {
      this.first = new FirstStream({
        name: resolved.name,
        handOut: (stream) => this.handOut(stream, false),
        dropped: (reason) => this.dropped(reason),
        isUsable: (stream) => this.transport.isUsable?.(stream) ?? true,
      });
    }
    this.ids = new IdAllocator((id) => this.idle.has(id) || this.handshaking.has(id), transport.firstIdZero);
    this.acceptor = {
      limits: { maxCap: this.options.maxCap },
      admit: (remoteAddress, connection) => this.admit(remoteAddress, connection),
      refused: (reason, remoteAddress) => this.refuse(reason, remoteAddress),
      connecting: (remoteAddress, options) => this.connecting(remoteAddress, options),
      log: (message) => this.options.logger.log(`server pool '${this.options.name}': ${message}`),
    };
    linkDiagnostics(this.acceptor, this);
  }

  get capacity(): number {
    return this.options.maxCap;
  }

  get interval(): number {
    return 0;
  }

  /** The bound address, once listening. */
  address(): ReturnType<ServerTransport['address']> {
    return this.transport.address();
  }

  /**
   * Starts listening; resolves once listening. The pool is `starting` until
   * then (`ready` false): gets and subscriptions made meanwhile wait as they
   * would in `running`, and connections the transport hands over are
   * admitted. Idempotent (a second call returns the first call's promise).
   * Rejects with the transport's error if it cannot listen: the pool is then
   * destroyed with that error (gets still waiting reject with a
   * `PoolClosedError` whose `cause` is it; `close()` resolves once that is
   * done). Rejects with `PoolClosedError` if `close()` or `destroy()` came
   * first (the listener, if bound meanwhile, is closed).
   */
  start(): Promise<void> {
    if (this.startup) return this.startup;
    if (this.state !== 'new') return Promise.reject(new PoolClosedError(`${this.label} is closed and cannot be restarted`));
    this.state = 'starting';
    this.startup = this.transport.listen(this.acceptor).then(
      () => {
        if (this.state !== 'starting') throw new PoolClosedError(`${this.label} was closed while it was starting`);
        this.state = 'running';
        if (this.options.maxIdle > 0) {
          this.sweeper = setInterval(() => this.idle.expire(), Math.max(10, Math.ceil(this.options.maxIdle / 4)));
          this.sweeper.unref();
        }
      },
      (error: unknown) => {
        if (this.state === 'starting') void this.destroy(error instanceof Error ? error : new Error(String(error)));
        throw error;
      },
    );
    return this.startup;
  }

  /**
   * The oldest ready `[id, stream]`, or the next one to arrive; rejects with
   * `PoolTimeoutError` after `timeout` ms, `PoolAbortedError` when `signal`
   * aborts, `PoolClosedError` on close. While the pool is `starting` it
   * waits like any get.
   *
   * With `client`, the oldest stream of that client, or its next one.
   * Pending gets and subscribers are served first come, first served among
   * those that can take a stream: a stream goes to the oldest get or
   * subscriber without a filter or with its client's. With `id`, exactly
   * that stream (see `IncomingGetOptions.id`).
   */
  incomingGet(options: number | IncomingGetOptions = {}): Promise<IncomingStream> {
    const wait: IncomingGetOptions = typeof options === 'number' ? { timeout: options } : options;
    const timeout = wait.timeout ?? this.options.getTimeout;
    let client: string | undefined;
    try {
      this.assertOpen();
      client = clientLabel(wait.client);
      if (wait.id !== undefined) return this.takeById(wait.id, client, { timeout, signal: wait.signal });
    } catch (error) {
      return Promise.reject(error);
    }
    const started = takeStarted();
    const ready = this.takeOldest(client);
    if (ready) return Promise.resolve(handedOffPair(this, ready, started));
    const whose = client === undefined ? '' : ` of client ${client}`;
    return handedOffLater(this, started, this.incoming.wait(
      { timeout, signal: wait.signal },
      () => `no pooled stream${whose} arrived within ${timeout} ms (server pool ${this.options.name})`,
      client,
    ), (incoming) => incoming);
  }

  /**
   * Idle streams `incomingGet` could take now: of one client (its identity
   * or label, as the `client` option of `incomingGet`), or of anyone.
   */
  readyFor(client?: IncomingGetOptions['client']): number {
    const label = clientLabel(client);
    return label === undefined ? this.idle.size : this.idle.countOf(label);
  }

  /** `incomingGet({ id })`: the idle stream with that ID, or the wait for one still in its handshake. */
  private takeById(id: string, client: string | undefined, wait: WaitOptions): Promise<IncomingStream> {
    if (!isValidId(id)) throw new InvalidIdError(`expected an ID of 8 lowercase hex characters, got ${JSON.stringify(id)}`);
    if (this.first && id === FIRST_ID) throw new InvalidIdError(`${FIRST_ID} is ${this.label}'s reserved first stream: take it with firstStream()`);
    const whose = client === undefined ? '' : ` of client ${client}`;
    const started = takeStarted();
    if (this.idle.has(id)) {
      if (client !== undefined && this.idle.labelOf(id) !== client) throw this.noSuchStream(id, whose);
      const stream = this.takeIdle(id);
      if (!stream) throw new InvalidIdError(`pooled stream ${id} of ${this.label} was dead or expired and was dropped`);
      return Promise.resolve(handedOffPair(this, [id, stream] as IncomingStream, started));
    }
    if (!this.handshaking.has(id)) throw this.noSuchStream(id, whose);
    return handedOffLater(this, started, this.byId.wait(id, wait, () => `pooled stream ${id}${whose} did not complete its handshake within ${wait.timeout} ms (server pool ${this.options.name})`, client), (incoming) => incoming);
  }

  private noSuchStream(id: string, whose: string): InvalidIdError {
    return new InvalidIdError(`${this.label} holds no pooled stream ${id}${whose}: it was taken, dropped or never issued`);
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
    options: IncomingOptions = {},
  ): () => void {
    this.assertOpen();
    const client = clientLabel(options.client);
    const unsubscribe = this.incoming.subscribe((incoming) => listener(handedOffPair(this, incoming, takeStarted()), unsubscribe), onClose, client);
    // Drain what was waiting through the queue, so subscribers take turns;
    // stop as soon as nobody listens for such streams (a listener may
    // unsubscribe after one). Older waiters took every idle stream they
    // could, so each one taken here has a taker.
    while (this.incoming.hasTaker(client)) {
      const ready = this.takeOldest(client);
      if (!ready) break;
      this.incoming.offer(ready, streamLabel(ready[1]));
    }
    return unsubscribe;
  }

  /**
   * Sees the first bytes of every pooled stream that receives some before
   * it is taken (on arrival and while idle), before any get or subscriber:
   * `claim.match` says whether it is the claimer's. A claimed stream leaves
   * the pool through the usual hand-out (counted as taken, tracked for
   * close) to `claim.claimed`, its bytes unread; it never reaches
   * `incomingGet`. Bytes no claim takes keep today's rules: a stream whose
   * client proved its identity keeps them for its taker, another one on a
   * transport whose idle streams must stay quiet is dropped as junk.
   * Returns the unsubscribe function.
   */
  claimEarly(claim: EarlyClaim): () => void {
    this.assertOpen();
    this.claims.add(claim);
    if (!this.idle.early) {
      this.idle.early = {
        decide: (id, stream, _label, bytes) => this.judgeEarly(id, stream, bytes),
        claimed: (id, stream) => this.claimedEarly(id, stream),
      };
    }
    this.idle.recheckEarly();
    return () => {
      this.claims.delete(claim);
      if (this.claims.size === 0) this.idle.early = undefined;
    };
  }

  /** The verdict of the first claim that wants the stream; 'wait' if one needs more bytes, else 'keep' if one keeps them. */
  private judgeEarly(id: string, stream: Duplex, bytes: Buffer): 'claim' | 'wait' | 'keep' | 'pass' {
    let verdict: 'claim' | 'wait' | 'keep' | 'pass' = 'pass';
    const identity = streamIdentity(stream);
    for (const claim of this.claims) {
      const said = claim.match(bytes, identity, id);
      if (said === 'claim') {
        this.claimer.set(stream, claim);
        return 'claim';
      }
      if (said === 'wait') verdict = 'wait';
      else if (said === 'keep' && verdict === 'pass') verdict = 'keep';
    }
    return verdict;
  }

  private readonly claimer = new WeakMap<Duplex, EarlyClaim>();

  private claimedEarly(id: string, stream: Duplex): void {
    const claim = this.claimer.get(stream);
    this.claimer.delete(stream);
    const out = this.handOut(stream);
    if (!out || !claim) {
      if (!out) this.dropped('stale', id);
      else out.destroy();
      return;
    }
    claim.claimed([id, out], streamIdentity(out));
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
    if (!this.first || !this.transport.firstIdZero) {
      return Promise.reject(new InvalidOptionsError('reserveFirstId', `server pool ${this.options.name} reserves no first stream: set reserveFirstId on a transport that issues ${FIRST_ID} first (http2, ws, tcp with idFormat "raw4")`));
    }
    if (this.state === 'closing' || this.state === 'closed') return Promise.reject(this.closedError());
    return this.first.take(wait, wait.timeout ?? this.options.getTimeout);
  }

  get stats(): ServerPoolStats {
    return {
      role: 'server',
      ...this.commonStats(),
      capacity: this.options.maxCap,
      maxCap: this.options.maxCap,
      handshaking: this.gate.size + this.strangers.size,
      waiting: this.incoming.size + this.byId.size,
      totals: { accepted: this.accepted, taken: this.handedOut },
      refusals: { ...this.refusals },
      ...this.clientStats(),
    };
  }

  /** `{ clients }` once some stream had an identity; nothing on a pool without authentication, whose stats keep their shape. */
  private clientStats(): { clients?: ServerPoolStats['clients'] } {
    const clients = this.clients.snapshot();
    return clients === undefined ? {} : { clients };
  }

  // ---- PoolBase hooks ----------------------------------------------------

  protected stopping(closed: PoolClosedError): undefined {
    clearInterval(this.sweeper);
    this.incoming.failAll(closed);
    this.byId.failAll(closed);
    this.claims.clear();
    this.idle.early = undefined;
    this.first?.close(closed);
    return undefined;
  }

  /** Nothing to close before start(); after a listen still in flight settles. */
  protected override closeTransport(timeout: number): Promise<void> {
    if (!this.startup) return Promise.resolve();
    return this.startup.then(
      () => this.transport.close(timeout),
      () => this.transport.close(timeout),
    );
  }

  // ---- the transport's side -------------------------------------------

  /** Connections are admitted while starting (the transport is listening) and running. */
  private get accepting(): boolean {
    return this.state === 'starting' || this.state === 'running';
  }

  private admit(remoteAddress: string | undefined, connection: object | undefined): Admission | Refusal {
    if (!this.accepting) return this.refuse('closed', remoteAddress);
    if (this.idle.size + this.handshaking.size >= this.options.maxCap) return this.refuse('full', remoteAddress);
    const release = this.gate.take(remoteAddress, connection, true);
    if (typeof release === 'string') return this.refuse(release, remoteAddress);
    if (!this.fds.take()) {
      release();
      return this.refuseForFds(remoteAddress);
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
        this.byId.fail(id, new InvalidIdError(`the handshake of pooled stream ${id} failed (${reason}): it will never be ready`));
        this.addError();
        publishRefusal(this, reason, remoteAddress);
        countInto(this.refusals, reason);
        const failure = new Error(`the handshake of ${remoteAddress ?? 'a client'} failed (${reason})`, error === undefined ? undefined : { cause: error });
        this.reporter.failure(Object.assign(failure, { code: reason }));
      },
    };
  }

  private connecting(remoteAddress: string | undefined, options: ConnectingOptions = {}): (() => void) | Refusal {
    if (!this.accepting) return this.refuse('closed', remoteAddress);
    if ((options.checkAddress ?? true) && !this.gate.allows(remoteAddress)) {
      // Refused either way: a few get their refusal in the transport's own words (403), the rest a bare close now.
      const courtesy = this.strangers.take(remoteAddress, undefined, false);
      return typeof courtesy === 'string' ? this.refuse('ip', remoteAddress) : courtesy;
    }
    // Behind a trusted proxy the address is the proxy's: the peer's share is taken at admit(), once the real address is known.
    const release = this.gate.take(options.checkAddress === false ? null : remoteAddress, undefined, false);
    if (typeof release === 'string') return this.refuse(release, remoteAddress);
    if (!this.fds.take()) {
      release();
      return this.refuseForFds(remoteAddress);
    }
    return release;
  }

  /** A stream completed its handshake: to the reservation, to a waiting get or subscriber, or idle. */
  private arrived(id: string, stream: Duplex): void {
    if (!this.accepting) {
      stream.destroy();
      this.dropped('late');
      return;
    }
    this.accepted++;
    streamReady(stream);
    if (id === FIRST_ID && this.first) return this.first.arrive(stream);
    const label = streamLabel(stream);
    if (label !== undefined) this.clients.accepted(label);
    if (this.byId.has(id) && this.named(id, stream, label)) return;
    if (this.claims.size > 0 && stream.readableLength > 0) {
      // Bytes already: the claims see them first (through the idle pool), then a waiting get as usual.
      this.idle.add(id, stream, label);
      if (!this.idle.has(id) || !this.incoming.hasTaker(label)) return;
      const out = this.takeIdle(id);
      if (out) this.incoming.offer([id, out], label);
      return;
    }
    // A stream carrying bytes it should not goes to the idle pool, which drops and counts it.
    if (this.incoming.hasTaker(label) && !this.carriesJunk(stream, label)) {
      const out = this.handOut(stream);
      if (out) this.incoming.offer([id, out], label);
      else this.dropped('stale');
      return;
    }
    this.idle.add(id, stream, label);
  }

  /**
   * A stream arrived whose ID `incomingGet({ id })` waits for: to the
   * oldest such get that takes its client. Its peer named it, so bytes it
   * already sent are the application's, not junk. Every other get waiting
   * for this ID fails: it will not come again. False when no get took it
   * (another client's), which then goes the usual way.
   */
  private named(id: string, stream: Duplex, label: string | undefined): boolean {
    if (!this.byId.hasTaker(id, label)) {
      this.byId.fail(id, this.noSuchStream(id, ' of the client asked for'));
      return false;
    }
    const out = this.handOut(stream);
    if (out) {
      this.byId.offer(id, [id, out], label);
      this.byId.fail(id, new InvalidIdError(`pooled stream ${id} went to another get`));
    } else {
      this.dropped('stale');
      this.byId.fail(id, new InvalidIdError(`pooled stream ${id} of ${this.label} died as its handshake completed`));
    }
    return true;
  }

  /**
   * The process is near its file descriptor limit: turned away as 'busy'
   * (the peer sees the pool full), counted as 'fds', so the last
   * descriptors stay with the application (see fd-budget.ts).
   */
  private refuseForFds(remoteAddress?: string): Refusal {
    publishRefusal(this, 'fds', remoteAddress);
    countInto(this.refusals, 'fds');
    return 'busy';
  }

  /**
   * Bytes its peer should not have sent yet (see ServerTransport.quietIdle);
   * the idle pool drops such a stream. Not asked for the reserved first
   * stream, whose peer knows its ID untold and may write first. A stream
   * whose client proved its identity carries no junk: that client may write
   * on a stream it named before the server takes it (the forward tunnel).
   */
  private carriesJunk(stream: Duplex, label: string | undefined): boolean {
    return this.transport.quietIdle === true && label === undefined && stream.readableLength > 0;
  }

  /**
   * Bytes arrived on an idle stream of a transport whose clients send
   * nothing before the hand-out: a stranger or a misconfigured peer. The
   * transport may recognise them (a TLS ClientHello on a plain port) and
   * answer; otherwise the stream is destroyed.
   */
  protected override unexpectedData(stream: Duplex, bytes: Buffer): DropReason {
    return this.transport.refuseIdleData?.(stream, bytes) ?? super.unexpectedData(stream, bytes);
  }

  /** Every counted hand-out is also counted for the stream's client, if it has one. */
  protected override handOut(stream: Duplex, counted = true): Duplex | undefined {
    const out = super.handOut(stream, counted);
    if (out && counted) {
      const label = streamLabel(out);
      if (label !== undefined) this.clients.taken(label);
    }
    return out;
  }

  private refuse<R extends RefusalReason>(reason: R, remoteAddress?: string): R {
    publishRefusal(this, reason, remoteAddress);
    countInto(this.refusals, reason);
    return reason;
  }
}
