import type { Duplex } from 'node:stream';
import { withTimeout } from './async.js';
import { describePool, linkDiagnostics, publishDrop } from '../diagnostics/pool-events.js';
import { PoolClosedError, PoolNotStartedError } from './errors.js';
import { guardUntilListened, isDead } from './hand-off.js';
import { IdleStreams, type DropReason } from './idle-streams.js';
import { FailureReporter, type PoolLogger } from './logger.js';
import { countInto } from './stats.js';
import { TakenStreams } from './taken-streams.js';

/**
 * The life of a pool, the same for both sides:
 *
 *     new ──start()──▶ starting ──listening──▶ running ──close()/destroy()──▶ closing ──▶ closed
 *
 * A server pool is `starting` while its transport binds the port: gets made
 * then wait as in `running`, connections the transport already hands over
 * are admitted, `ready` is still false. A client pool has nothing to wait
 * for (its first dial is background work like every other) and goes from
 * `new` straight to `running`. `close()` and `destroy()` work from every
 * state, `starting` included.
 */
export type PoolState = 'new' | 'starting' | 'running' | 'closing' | 'closed';

/** What the base reads of a transport (both sides have it). */
export interface PoolBaseTransport {
  readonly kind: string;
  close(timeout: number): Promise<void>;
  isUsable?(stream: Duplex): boolean;
  stats?(): Record<string, unknown>;
}

/** What the base needs of a pool's resolved options. */
export interface PoolBaseSettings {
  readonly role: 'client' | 'server';
  readonly name: string;
  readonly closeTimeout: number;
  /** Idle streams older than this are never handed out (0: no limit). */
  readonly maxIdle: number;
  readonly logger: PoolLogger;
  readonly logInterval: number;
  /** What the failure reporter says the pool was doing: 'dialing', 'accepting clients'. */
  readonly activity: string;
  /** The peers send nothing on an idle stream: bytes that come anyway go to `unexpectedData()`. */
  readonly quietIdle?: boolean;
}

/** Drop reasons that mean a peer or the path misbehaved, counted in `errorCount` too. */
const ERROR_DROPS: ReadonlySet<DropReason> = new Set<DropReason>(['error', 'end', 'close', 'stale', 'unexpected-data', 'tls-on-plain']);

/**
 * What a client and a server pool share: the lifecycle, the idle streams, the
 * streams handed out, the counters, and the one hand-out path every stream
 * takes on its way to the application. The two pools add only what differs
 * (the client dials and adapts, the server admits and draws IDs).
 *
 * Closing has two forms, as undici's dispatchers do:
 * - `close(timeout)` drains: new gets fail, waiters reject with
 *   `PoolClosedError`, idle streams close, the transport starts closing;
 *   taken streams get `timeout` ms to finish, then are cut.
 * - `destroy(error)` fails everything now: waiters reject, idle and taken
 *   streams are destroyed at once, the transport is closed with timeout 0.
 *   Every error it gives (to waiters and to taken streams) is a
 *   `PoolClosedError` (`POOL_ERR_CLOSED`) whose `cause` is `error`, so code
 *   that matches on `code` sees one condition, "the pool closed", and the
 *   reason travels with it.
 * Both are idempotent and never reject; `destroy()` after `close()` still cuts
 * what the close was waiting for and resolves with it.
 */
export abstract class PoolBase<T extends PoolBaseTransport> {
  protected state: PoolState = 'new';
  /** Idle pooled streams ready to be taken, by ID. */
  protected readonly idle: IdleStreams;
  /** Streams handed to the application and still open. */
  protected readonly taken = new TakenStreams();
  protected readonly reporter: FailureReporter;
  /** Idle streams that left without being taken, by reason. */
  protected readonly drops: Record<string, number> = {};
  /** Streams handed out through the counted hand-out path (`stats.totals.taken`). */
  protected handedOut = 0;
  /** `client pool <name>` / `server pool <name>`, for messages. */
  protected readonly label: string;
  private errors = 0;
  private closing?: Promise<void>;

  protected constructor(
    readonly transport: T,
    private readonly settings: PoolBaseSettings,
  ) {
    this.label = `${settings.role} pool ${settings.name}`;
    describePool(this, { pool: settings.name, role: settings.role, transport: transport.kind });
    linkDiagnostics(transport, this);
    this.reporter = new FailureReporter(settings.logger, `${settings.role} pool '${settings.name}'`, settings.activity, settings.logInterval);
    this.idle = new IdleStreams(
      (id, reason, error) => this.dropped(reason, id, error),
      (stream) => this.transport.isUsable?.(stream) ?? true,
      settings.maxIdle,
      settings.quietIdle ? (stream, bytes) => this.unexpectedData(stream, bytes) : undefined,
    );
  }

  /** The pool's name (the `name` option): its label in stats, logs, metrics and events. */
  get name(): string {
    return this.settings.name;
  }

  /** Started and not closed (the Go pools' `Ready()`); a server is ready once listening. */
  get ready(): boolean {
    return this.state === 'running';
  }

  /** Idle pooled streams ready to be taken (the Go pools' `Active()`). */
  get active(): number {
    return this.idle.size;
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

  /** Closes every idle stream; returns how many. A client pool refills on its next round. */
  flush(): number {
    return this.idle.destroyAll('flush');
  }

  /**
   * Graceful close. At once: stops the pool's own work (dialing, accepting),
   * rejects pending gets with `PoolClosedError`, completes subscriptions,
   * closes idle streams and starts closing the transport. Then the streams
   * already taken get until `timeout` ms to close on their own (the
   * application ends them as usual); those still open then are destroyed
   * with a `PoolClosedError` (`POOL_ERR_CLOSED`), which their 'error'
   * listeners see. Resolves once every taken stream has closed or was cut
   * and the transport closed, within about `timeout`. Idempotent (a second
   * call returns the first one's promise); never rejects.
   */
  close(timeout = this.settings.closeTimeout): Promise<void> {
    return this.shutdown(timeout);
  }

  /**
   * Fails everything now: pending gets and subscriptions reject, idle and
   * taken streams are destroyed at once, the transport is closed with
   * timeout 0. Waiters and taken streams get a `PoolClosedError` whose
   * `cause` is `error`. Resolves once the transport has closed (bounded by
   * `closeTimeout`); never rejects. After `close()`, it cuts what that close
   * still waits for and resolves with it.
   */
  destroy(error?: Error): Promise<void> {
    const closing = this.shutdown(0, error ?? null);
    // Also when a close() was already under way: nothing taken stays open.
    this.taken.cutAll(() => this.destroyedError(error, true));
    return closing;
  }

  // ---- for the two pools ------------------------------------------------

  /**
   * The pool's own part of closing, called once, first: stop background
   * work and fail the waiters only this side has with `closed`. Returns
   * work the close must wait for (bounded by its timeout), if any.
   */
  protected abstract stopping(closed: PoolClosedError): Promise<unknown> | undefined;

  /** Closes the transport; a pool whose transport may not be listening yet overrides it. */
  protected closeTransport(timeout: number): Promise<void> {
    return this.transport.close(timeout);
  }

  /**
   * The one way a stream leaves the pool for the application, whichever
   * call takes it. Checks it can still carry data (alive, and not vetoed by
   * the transport's `isUsable`); tracks it in `taken` (so close() waits for
   * it and cuts it at the timeout); guards it until the application listens
   * for its errors; counts it (`totals.taken`) unless `counted` is false.
   * Returns undefined, having destroyed the stream, when it fails the check:
   * the caller counts that as it sees fit and goes on waiting.
   */
  protected handOut(stream: Duplex, counted = true): Duplex | undefined {
    if (!this.usable(stream)) {
      stream.destroy();
      return undefined;
    }
    if (counted) this.handedOut++;
    this.taken.add(stream);
    return guardUntilListened(stream);
  }

  /** The idle stream with this ID, handed out; undefined if absent or dropped on the way. */
  protected takeIdle(id: string): Duplex | undefined {
    const stream = this.idle.take(id);
    if (!stream) return undefined;
    const out = this.handOut(stream);
    if (!out) this.dropped('stale', id);
    return out;
  }

  /** The oldest idle stream (of this client `label`, when given), handed out; dead and expired ones are dropped on the way. */
  protected takeOldest(label?: string): [string, Duplex] | undefined {
    for (let next = this.idle.takeOldest(label); next; next = this.idle.takeOldest(label)) {
      const out = this.handOut(next[1]);
      if (out) return [next[0], out];
      this.dropped('stale', next[0]);
    }
    return undefined;
  }

  /**
   * With `quietIdle`: bytes arrived on an idle stream (already read out of
   * it). Closes the stream and names the drop reason.
   */
  protected unexpectedData(stream: Duplex, _bytes: Buffer): DropReason {
    stream.destroy();
    return 'unexpected-data';
  }

  /** Alive, and not vetoed by the transport: the hand-out check. */
  protected usable(stream: Duplex): boolean {
    return !isDead(stream) && (this.transport.isUsable?.(stream) ?? true);
  }

  /** An idle stream left without being taken; counted, and as an error when a peer or the path is to blame. */
  protected dropped(reason: DropReason, id?: string, error?: unknown): void {
    publishDrop(this, reason, id, error);
    countInto(this.drops, reason);
    if (ERROR_DROPS.has(reason)) this.errors++;
  }

  /** Throws unless gets are served now: `starting` and `running`. */
  protected assertOpen(): void {
    if (this.state === 'new') throw new PoolNotStartedError(`${this.label} has not been started: call start() first (the Nest module does it unless autoStart is false)`);
    if (this.state === 'closing' || this.state === 'closed') throw this.closedError();
  }

  protected closedError(): PoolClosedError {
    return new PoolClosedError(`${this.label} is closed`);
  }

  /** The figures every pool reports, for `stats`. */
  protected commonStats() {
    return {
      name: this.settings.name,
      transport: this.transport.kind,
      state: this.state,
      ready: this.ready,
      active: this.idle.size,
      errorCount: this.errors,
      inUse: this.taken.size,
      oldestIdleMs: this.idle.oldestAge(),
      drops: { ...this.drops },
      transportStats: this.transport.stats?.() ?? {},
    };
  }

  // ---- closing ------------------------------------------------------------

  /** `cause` null: destroyed without an error; undefined: a graceful close. */
  private shutdown(timeout: number, cause?: Error | null): Promise<void> {
    if (this.closing) return this.closing;
    const destroying = cause !== undefined;
    this.state = 'closing';
    this.reporter.close();
    const closed = destroying ? this.destroyedError(cause ?? undefined, false) : this.closedError();
    const background = this.stopping(closed);
    this.idle.destroyAll('shutdown');
    // Armed before the transport's close, so at the same deadline the pool's
    // typed error reaches a taken stream before anything the transport does.
    const takenClosed = this.taken.closeWithin(timeout, () =>
      destroying ? this.destroyedError(cause ?? undefined, true) : this.cutError(timeout),
    );
    const transportClosed = this.closeTransport(timeout);
    // destroy(): wait for the transport itself (it closes with timeout 0), bounded by closeTimeout.
    const bound = destroying ? this.settings.closeTimeout : timeout;
    this.closing = Promise.all([takenClosed, withTimeout(Promise.allSettled([background, transportClosed]), bound)]).then(() => {
      this.state = 'closed';
    });
    return this.closing;
  }

  private cutError(timeout: number): PoolClosedError {
    return new PoolClosedError(`${this.label} closed: this taken stream was still open at the close timeout (${timeout} ms) and was cut`);
  }

  private destroyedError(cause: Error | undefined, streamCut: boolean): PoolClosedError {
    const why = cause === undefined ? '' : ` (${cause.message})`;
    const what = streamCut ? ': this taken stream was cut' : '';
    return new PoolClosedError(`${this.label} was destroyed${why}${what}`, cause === undefined ? undefined : { cause });
  }
}
