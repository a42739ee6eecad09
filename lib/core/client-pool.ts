import { performance } from 'node:perf_hooks';
import { setMaxListeners } from 'node:events';
import type { Duplex } from 'node:stream';
import {
  adjustCapacity,
  adjustCapacityAfterRefusals,
  adjustInterval,
  mostlyFailed,
  nextDialWindow,
  slowDownInterval,
  type RoundOutcome,
} from './adaptive.js';
import { FdLimitError, DialError, InvalidIdError, PoolClosedError, PoolError, PoolErrorCode, PoolRefusedError } from './errors.js';
import { processFds, type FdBudget } from './fd-budget.js';
import { assertValidId, randomId } from './ids.js';
import { PoolBase } from './pool-base.js';
import { countInto, type ClientPoolStats } from './stats.js';
import type { ClientTransport, DialResult } from './transport.js';
import type { DropReason } from './idle-streams.js';
import { OptionReader, orderedPair } from './validate.js';
import { ConditionWaiters, KeyedWaiters, type WaitOptions } from './waiters.js';
import { withDeadline } from './async.js';
import { DEFAULT_LOG_INTERVAL_MS, readLogger, type PoolLogger } from './logger.js';
import { handedOff, handedOffLater, observeDial, streamReady, takeStarted } from '../diagnostics/pool-events.js';

export interface ClientPoolOptions {
  /** A name for stats, logs and errors. */
  name?: string;
  /** Lower bound of the adaptive capacity (default 1; 0 allowed in single mode). */
  minCap?: number;
  /** Upper bound of the adaptive capacity (default: minCap). */
  maxCap?: number;
  /** Lower bound of the creation interval in ms (default: min(1000, maxIvl)). */
  minIvl?: number;
  /** Upper bound of the creation interval in ms (default: minIvl). */
  maxIvl?: number;
  /** No ID exchange: streams get local IDs and `outgoingGet('')` takes any. */
  isSingle?: boolean;
  /** Default timeout of `outgoingGet` in ms (default 5000; `Infinity` waits forever). */
  getTimeout?: number;
  /** Dials in flight at once (default 32). */
  maxConcurrentDials?: number;
  /**
   * Streams idle for longer than this many ms are never handed out (checked
   * when taken) and are closed and replaced (swept every round, so within
   * maxIdle plus one interval); 0 (default) keeps them. Set it below the
   * idle timeout of NATs and firewalls on the path: a middlebox that forgets
   * a connection silently leaves both ends believing in it, and over plain
   * tcp nothing may be sent to find out. Pair it with the server's
   * `maxIdle`, set lower (e.g. server 50 s, client 55 s), so the server
   * stops handing out a stream before the client recycles it.
   */
  maxIdle?: number;
  /**
   * Ceiling in ms of the back-off after rounds in which most dials failed
   * (default 30000). The wait doubles per such round from the current
   * interval, with jitter, and each round then starts with a single probe.
   * Refusals slow the pool down too: after a round that mostly failed, the
   * next one dials at most twice what the server took (then twice more per
   * clean round), the interval steps up instead of down, and when the
   * server refused (full, busy) the capacity halves towards what the pool
   * holds. So a server that accepts fewer streams than the client's
   * capacity sees about one refused dial per accepted one, not the whole
   * deficit every round.
   */
  maxBackoff?: number;
  /**
   * Upper bound of `close()` in ms (default 5000): how long streams already
   * taken get to close on their own before the pool cuts them with a
   * `PoolClosedError`.
   */
  closeTimeout?: number;
  /**
   * When a stream that left the pool is replaced (default 'demand'):
   * 'demand' dials its replacement at once, a few dials per event-loop turn
   * after the I/O already waiting (so a hand-off in progress goes first),
   * within `capacity` and `maxConcurrentDials` (more replacements due than
   * dial slots free: each dial that ends starts the next); the interval then paces only
   * the background rounds (adaptive capacity and interval, `maxIdle`
   * sweeps). Dropped streams are replaced so at most `capacity` times
   * between rounds. Not while the pool backs off after failed rounds, and an
   * on-demand dial that fails pauses on-demand refill until a round
   * succeeds again, so a refusing server sees no more dials than with
   * rounds. 'rounds' is the Go pools' behaviour: a stream taken now is
   * replaced at the next round, after the interval.
   */
  refill?: 'demand' | 'rounds';
  /**
   * With `refill: 'demand'`, how long in ms the replacement of a taken
   * stream waits while the pool still holds plenty idle, at least a quarter
   * of its capacity (default 1; 0 dials in the next event-loop turn). The
   * stream just taken is about to carry its first bytes (a tunnel's target
   * connect and header, a request and its answer); a dial's connect, accept
   * and handshake on the same event loop would land in between. A pool
   * below a quarter of its capacity idle, or a get that found it empty,
   * dials in the next turn whatever this says.
   */
  refillGrace?: number;
  /** Where background dial and handshake failures are reported, rate-limited (default: silent; the Nest module passes its Logger). */
  logger?: PoolLogger;
  /** At most one summary of ongoing failures per this many ms (default 60000). */
  logInterval?: number;
}

export type ResolvedClientPoolOptions = Required<Omit<ClientPoolOptions, 'name'>> & { name: string };

/** The keys `ClientPool` reads; a factory uses this to split options between the core and a transport. */
export const CLIENT_POOL_OPTION_KEYS = [
  'name', 'minCap', 'maxCap', 'minIvl', 'maxIvl', 'isSingle', 'getTimeout', 'maxConcurrentDials', 'maxBackoff', 'maxIdle', 'closeTimeout', 'refill', 'refillGrace', 'logger', 'logInterval',
] as const;

export function resolveClientPoolOptions(options: ClientPoolOptions, prefix = ''): ResolvedClientPoolOptions {
  const read = new OptionReader(options as Record<string, unknown>, prefix);
  const isSingle = read.bool('isSingle', false);
  const minCap = read.int('minCap', 1, isSingle ? 0 : 1);
  const maxCap = read.int('maxCap', Math.max(minCap, 1), Math.max(minCap, 1) > 0 && !isSingle ? 1 : 0);
  orderedPair(read, 'minCap', 'maxCap', minCap, maxCap);
  const maxIvlGiven = options.maxIvl;
  const minIvl = read.ms('minIvl', typeof maxIvlGiven === 'number' && maxIvlGiven > 0 ? Math.min(1000, maxIvlGiven) : 1000, 1);
  const maxIvl = read.ms('maxIvl', minIvl, 1);
  orderedPair(read, 'minIvl', 'maxIvl', minIvl, maxIvl);
  const resolved: ResolvedClientPoolOptions = {
    name: read.string('name') ?? 'default',
    isSingle,
    minCap,
    maxCap,
    minIvl,
    maxIvl,
    getTimeout: read.ms('getTimeout', 5000, 0, true),
    maxConcurrentDials: read.int('maxConcurrentDials', 32, 1, 4096),
    maxBackoff: read.ms('maxBackoff', Math.max(30_000, maxIvl), 1),
    maxIdle: read.ms('maxIdle', 0, 0),
    closeTimeout: read.ms('closeTimeout', 5000, 0),
    refill: readRefill(read),
    refillGrace: read.ms('refillGrace', 1, 0),
    logger: readLogger(read),
    logInterval: read.ms('logInterval', DEFAULT_LOG_INTERVAL_MS, 1),
  };
  read.rejectUnknown();
  return resolved;
}

function readRefill(read: OptionReader): 'demand' | 'rounds' {
  const value = read.raw('refill') ?? 'demand';
  if (value !== 'demand' && value !== 'rounds') read.fail('refill', "'demand' or 'rounds'");
  return value;
}

/** Dials started per event-loop turn (on demand, and a round's first ones): refill work in small steps, with I/O (hand-offs) between them. */
const DEMAND_STEP = 4;

/**
 * The dialing side. A manager loop keeps up to `capacity` idle pooled
 * streams, each keyed by the ID the server assigned; `outgoingGet(id)` takes
 * exactly that stream, the moment it is there. The lifecycle, idle and
 * taken streams, counters and the hand-out path are `PoolBase`'s; this class
 * adds the manager loop, the dialing and the adaptive capacity and interval.
 * It has no `starting` state: `start()` goes from `new` to `running` at
 * once, the first dial being background work like every other.
 */
export class ClientPool extends PoolBase<ClientTransport> {
  readonly options: ResolvedClientPoolOptions;
  private capacityNow: number;
  private intervalNow: number;
  private readonly byId = new KeyedWaiters<Duplex>();
  /** `waitForActive` calls, each waiting for its count of idle streams. */
  private readonly activeWaiters = new ConditionWaiters();
  /** Aborted on close: every dial in flight listens for it. */
  private readonly lifecycle = new AbortController();
  private dialing = 0;
  /**
   * Streams on their way into the pool: dialing, or dialed and not yet
   * admitted (a few microtasks later). What the capacity checks count, so
   * the rounds and on-demand refill never dial past the capacity between
   * them.
   */
  private coming = 0;
  /** On-demand refill found every dial slot taken (`maxConcurrentDials`): the next dial that ends schedules a turn. */
  private slotWanted = false;
  /** Consecutive rounds in which dials were made and most of them failed. */
  private failedRounds = 0;
  /** The most dials the next round may make (see nextDialWindow); Infinity while dials succeed. */
  private dialWindow = Infinity;
  private delayNow = 0;
  private manager?: Promise<void>;
  private wake?: () => void;
  private readonly totals = { dials: 0, created: 0, rounds: 0 };
  private readonly failures: Record<string, number> = {};
  /** The pending turn of on-demand refill, if one is scheduled: an immediate (due now) or a timer (`refillGrace`, while plenty is idle). */
  private demandTurn?: { kind: 'now'; handle: NodeJS.Immediate } | { kind: 'grace'; handle: NodeJS.Timeout };
  /** An on-demand dial failed: no more until a round succeeds (the rounds and their back-off decide). */
  private demandPaused = false;
  /** On-demand dials in flight, for close() to wait on. */
  private readonly demandDials = new Set<Promise<unknown>>();
  /** Streams on-demand dials created since the last round: the round's success ratio counts them (the pool was drained that much). */
  private demandCreated = 0;
  /** Dropped streams replaced on demand since the last round (at most `capacity`). */
  private dropsReplaced = 0;

  constructor(
    transport: ClientTransport,
    options: ClientPoolOptions = {},
    /** The process's file descriptors, shared by every pool (a spec may pass its own). */
    private readonly fds: FdBudget = processFds,
  ) {
    const resolved = resolveClientPoolOptions(options);
    super(transport, { ...resolved, role: 'client', activity: 'dialing' });
    this.options = resolved;
    // Every dial in flight listens for the pool's close on this signal.
    setMaxListeners(resolved.maxConcurrentDials + 16, this.lifecycle.signal);
    this.capacityNow = resolved.minCap;
    this.intervalNow = resolved.minIvl;
  }

  get capacity(): number {
    return this.capacityNow;
  }

  get interval(): number {
    return this.intervalNow;
  }

  /** Starts the manager loop (`new` → `running`). Idempotent; a closed pool cannot restart. */
  start(): void {
    if (this.state === 'running') return;
    if (this.state !== 'new') throw new PoolClosedError(`${this.label} is closed and cannot be restarted`);
    this.state = 'running';
    this.manager = this.run().catch(() => undefined);
  }

  /**
   * Takes the stream the server named `id`. Resolves as soon as that stream
   * is in the pool, also when it arrives after the call; rejects with
   * `PoolTimeoutError` after `timeout` ms. In single mode `id` may be `''`:
   * any ready stream, or a freshly dialed one. A stream found dead, vetoed
   * by the transport or idle for longer than `maxIdle` is closed, not
   * handed out (counted in `stats.drops` as 'stale' or 'expired'), and the
   * get goes on waiting as if it had not been there.
   */
  async outgoingGet(id: string, options: number | WaitOptions = {}): Promise<Duplex> {
    const wait: WaitOptions = typeof options === 'number' ? { timeout: options } : options;
    const timeout = wait.timeout ?? this.options.getTimeout;
    this.assertOpen();
    const started = takeStarted();
    if (this.options.isSingle && id === '') return this.takeSingle(timeout, wait.signal, started);
    if (!this.options.isSingle) assertValidId(id);
    const ready = this.takeIdle(id);
    if (ready) return handedOff(this, id, ready, started);
    if (this.options.isSingle) throw new InvalidIdError(`no ready stream with local ID ${id} in single mode`);
    return handedOffLater(this, started, this.byId.wait(id, { timeout, signal: wait.signal }, () =>
      `no pooled stream with ID ${id} arrived within ${timeout} ms (client pool ${this.options.name}, ${this.idle.size} idle)`,
    ), (stream) => [id, stream]);
  }

  /**
   * The oldest ready stream and its ID, whatever the ID: for a stream this
   * side names to the server itself (the tunnel's control stream, a forward
   * route's connection). Waits like `outgoingGet` for the next one when
   * none is ready: rejects with `PoolTimeoutError` after `timeout` ms
   * (default `getTimeout`), `PoolAbortedError` when `signal` aborts,
   * `PoolClosedError` on close. Dead and expired streams are dropped on
   * the way, as by `outgoingGet`. With `newest`, the youngest ready stream:
   * a tunnel client names its forward streams from that end while the
   * server picks the oldest for reverse ones, so the two rarely reach for
   * the same stream.
   */
  async takeAny(options: number | (WaitOptions & { newest?: boolean }) = {}): Promise<[id: string, stream: Duplex]> {
    const wait: WaitOptions & { newest?: boolean } = typeof options === 'number' ? { timeout: options } : options;
    const timeout = wait.timeout ?? this.options.getTimeout;
    this.assertOpen();
    const started = takeStarted();
    const deadline = performance.now() + timeout;
    for (;;) {
      const ready = wait.newest ? this.takeNewest() : this.takeOldest();
      if (ready) return [ready[0], handedOff(this, ready[0], ready[1], started)];
      // Found the pool empty: demand outruns the capacity. One more (up to maxCap), dialed at once on demand.
      this.grow();
      const left = deadline - performance.now();
      this.assertOpen();
      // Rejects with the timeout (naming this get's own timeout), abort or close error this get owes its caller.
      await this.whenIdle(1, Number.isFinite(left) ? Math.max(0, left) : Infinity, wait.signal, () =>
        `client pool ${this.options.name} had no idle stream to take within ${timeout} ms (capacity ${this.capacityNow}, ${this.dialing} dialing)`,
      );
    }
  }

  /**
   * Resolves once at least `count` streams are idle. Rejects with
   * `PoolTimeoutError` after `timeout` ms (default `getTimeout`),
   * `PoolAbortedError` when `signal` aborts, `PoolClosedError` on close.
   */
  waitForActive(count = 1, options: number | WaitOptions = {}): Promise<void> {
    const wait: WaitOptions = typeof options === 'number' ? { timeout: options } : options;
    const timeout = wait.timeout ?? this.options.getTimeout;
    try {
      this.assertOpen();
    } catch (error) {
      return Promise.reject(error);
    }
    return this.whenIdle(count, timeout, wait.signal, () =>
      `client pool ${this.options.name} did not reach ${count} idle streams within ${timeout} ms (${this.idle.size} idle)`,
    );
  }

  /** Resolves once `count` streams are idle; rejects with the timeout (its `message`), abort or close error. */
  private whenIdle(count: number, timeout: number, signal: AbortSignal | undefined, message: () => string): Promise<void> {
    return this.activeWaiters.wait(() => this.idle.size >= count, { timeout, signal }, message);
  }

  get stats(): ClientPoolStats {
    return {
      role: 'client',
      ...this.commonStats(),
      capacity: this.capacityNow,
      interval: this.intervalNow,
      minCap: this.options.minCap,
      maxCap: this.options.maxCap,
      minIvl: this.options.minIvl,
      maxIvl: this.options.maxIvl,
      isSingle: this.options.isSingle,
      dialing: this.dialing,
      failedRounds: this.failedRounds,
      nextRoundInMs: this.delayNow,
      nextRoundMaxDials: Number.isFinite(this.dialWindow) ? this.dialWindow : null,
      waiting: this.byId.size + this.activeWaiters.size,
      totals: { ...this.totals, taken: this.handedOut },
      failures: { ...this.failures },
    };
  }

  // ---- PoolBase hook ---------------------------------------------------

  /** Stops dialing (the dials in flight abort) and fails the gets and waitForActive calls. */
  protected stopping(closed: PoolClosedError): Promise<unknown> | undefined {
    this.lifecycle.abort();
    this.wake?.();
    this.cancelDemandTurn();
    this.byId.failAll(closed);
    this.activeWaiters.failAll(closed);
    return this.demandDials.size === 0 ? this.manager : Promise.all([this.manager, ...this.demandDials]);
  }

  /** A stream left the pool (handed out, or dropped): its replacement is due. */
  protected override handOut(stream: Duplex, counted = true): Duplex | undefined {
    this.demand(true);
    return super.handOut(stream, counted);
  }

  /**
   * An idle stream died: replaced on demand too, but at most `capacity`
   * times between two rounds, so a server that ends every stream it gives
   * (or a path that cuts them) costs the rounds' pace, not a dial loop.
   */
  protected override dropped(reason: DropReason, id?: string, error?: unknown): void {
    super.dropped(reason, id, error);
    if (reason === 'flush' || reason === 'shutdown' || reason === 'late' || reason === 'duplicate') return;
    if (this.dropsReplaced >= this.capacityNow) return;
    this.dropsReplaced++;
    this.demand();
  }

  /**
   * The other end has `count` gets waiting for streams of this pool (the
   * tunnel's WANT hint, as frp's ReqWorkConn): the capacity grows to cover
   * them on top of what is idle and being dialed (not past `maxCap`), and
   * the dials start now. With `refill: 'rounds'` only the capacity grows
   * (the next round dials). Ignored while backing off after failed rounds.
   */
  want(count: number): void {
    if (this.state !== 'running' || !(count > 0) || this.failedRounds > 0) return;
    const target = Math.min(this.options.maxCap, this.idle.size + this.coming + Math.floor(count));
    if (target > this.capacityNow) this.capacityNow = target;
    this.demand();
  }

  // ---- on-demand refill ------------------------------------------------

  /** A get found the pool empty: with on-demand refill the capacity grows by one (not past maxCap) and the dial starts now. */
  private grow(): void {
    if (this.options.refill !== 'demand' || this.state !== 'running') return;
    if (this.capacityNow < this.options.maxCap) this.capacityNow++;
    this.demand();
  }

  /**
   * Schedules a turn of on-demand refill, once however many streams left:
   * in the next event-loop turn, after the I/O already waiting; for a
   * stream just handed out, after `refillGrace` while at least a quarter of
   * the capacity is still idle (that hand-off's first bytes go first). A
   * turn waiting out its grace is brought forward when anything more urgent
   * comes (the pool runs low, a stream died, a get found it empty).
   */
  private demand(handedOut = false): void {
    if (this.options.refill !== 'demand' || this.state !== 'running' || this.demandPaused || this.failedRounds > 0) return;
    const grace = handedOut && this.options.refillGrace > 0 && this.idle.size > 0 && this.idle.size * 4 >= this.capacityNow;
    const turn = this.demandTurn;
    if (turn && (turn.kind === 'now' || grace)) return;
    this.cancelDemandTurn();
    this.demandTurn = grace
      ? { kind: 'grace', handle: setTimeout(() => this.refillTurn(), this.options.refillGrace) }
      : { kind: 'now', handle: setImmediate(() => this.refillTurn()) };
  }

  private cancelDemandTurn(): void {
    const turn = this.demandTurn;
    this.demandTurn = undefined;
    if (turn?.kind === 'now') clearImmediate(turn.handle);
    else if (turn) clearTimeout(turn.handle);
  }

  /**
   * Starts up to DEMAND_STEP dials towards `capacity` (idle and in flight
   * together), and another turn if more are due; with `maxConcurrentDials`
   * in flight, each dial that ends schedules the next turn (`createOne`).
   */
  private refillTurn(): void {
    this.demandTurn = undefined;
    if (this.state !== 'running' || this.demandPaused || this.failedRounds > 0) return;
    const missing = this.capacityNow - this.idle.size - this.coming;
    const slots = this.options.maxConcurrentDials - this.coming;
    const due = Math.min(missing, slots);
    // More due than dial slots free: the next dial that ends brings another turn.
    this.slotWanted = missing > slots;
    const now = Math.min(due, DEMAND_STEP);
    for (let i = 0; i < now; i++) {
      const dial: Promise<unknown> = this.createOne().then((outcome) => {
        this.demandDials.delete(dial);
        if (outcome === 'created') this.demandCreated++;
        else if (outcome === 'failed' || outcome === 'refused') this.demandPaused = true;
      });
      this.demandDials.add(dial);
    }
    if (due > now) this.demandTurn = { kind: 'now', handle: setImmediate(() => this.refillTurn()) };
  }

  // ---- manager --------------------------------------------------------

  private async run(): Promise<void> {
    const bounds = { min: this.options.minCap, max: this.options.maxCap };
    const intervals = { min: this.options.minIvl, max: this.options.maxIvl };
    while (this.state === 'running') {
      this.idle.expire();
      // After a round that mostly failed, the idle ratio is low because the
      // server would not give more: create later, not sooner.
      this.intervalNow = this.failedRounds > 0 ? slowDownInterval(this.intervalNow, intervals) : adjustInterval(this.intervalNow, this.idle.size, this.capacityNow, intervals);
      // On-demand dials in flight count as streams to come.
      const need = Math.min(this.capacityNow - this.idle.size - this.coming, this.dialWindow);
      const round: RoundOutcome = { dialed: 0, created: 0, failed: 0, refused: 0 };
      if (this.failedRounds > 0 && need > 1) {
        // Most dials failed last round: one probe before a burst.
        await this.fill(1, round);
        if (round.created > 0) await this.fill(need - 1, round);
      } else {
        await this.fill(need, round);
      }
      if (this.state !== 'running') return;
      const failing = mostlyFailed(round);
      const created = round.created + this.demandCreated;
      this.demandCreated = 0;
      this.dropsReplaced = 0;
      this.capacityNow =
        failing && round.refused * 2 > round.dialed
          ? adjustCapacityAfterRefusals(this.capacityNow, this.idle.size, bounds)
          : adjustCapacity(this.capacityNow, created, bounds);
      this.dialWindow = nextDialWindow(this.dialWindow, round, this.capacityNow);
      this.failedRounds = failing ? this.failedRounds + 1 : 0;
      if (round.failed === 0) this.demandPaused = false;
      this.totals.rounds++;
      this.delayNow = this.nextDelay();
      await this.sleep(this.delayNow);
    }
  }

  /**
   * The wait before the next round: the interval, or after failed rounds a
   * capped exponential back-off with "equal jitter" (half fixed, half
   * random), so clients of a restarted server do not all return at once.
   */
  private nextDelay(): number {
    if (this.failedRounds === 0) return this.intervalNow;
    const grown = this.intervalNow * 2 ** Math.min(this.failedRounds, 30);
    const ceiling = Math.max(this.intervalNow, Math.min(this.options.maxBackoff, grown));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  /** `need` dials, at most `maxConcurrentDials` at once, counted into `round`. */
  private async fill(need: number, round: RoundOutcome): Promise<void> {
    if (need <= 0) return;
    let started = 0;
    const worker = async (): Promise<void> => {
      // Each dial checks the capacity and the dial slots again: on-demand dials may have taken them while the round ran.
      while (started < need && this.state === 'running' && this.idle.size + this.coming < this.capacityNow && this.coming < this.options.maxConcurrentDials) {
        started++;
        round.dialed++;
        const outcome = await this.createOne();
        if (outcome === 'created') round.created++;
        else if (outcome !== 'dropped') {
          round.failed++;
          if (outcome === 'refused') round.refused++;
        }
      }
    };
    // Started a few per event-loop turn, with I/O between (hand-offs waiting go first), not as one burst.
    const workers = Math.min(need, this.options.maxConcurrentDials);
    const running: Array<Promise<void>> = [];
    for (let w = 0; w < workers && this.state === 'running'; w++) {
      if (w > 0 && w % DEMAND_STEP === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      running.push(worker());
    }
    await Promise.all(running);
  }

  private async createOne(): Promise<'created' | 'dropped' | 'refused' | 'failed'> {
    let result: DialResult;
    this.coming++;
    try {
      result = await this.dial();
    } catch (error) {
      this.coming--;
      if (this.state === 'running') this.failed(error);
      return error instanceof PoolRefusedError ? 'refused' : 'failed';
    }
    this.coming--;
    if (!this.admit(result)) return 'dropped'; // a duplicate ID or a late stream: no dial loop on a peer that repeats itself
    // A dial slot is free (a round's or an on-demand one): replacements that found every slot taken start now, not at the next round.
    if (this.slotWanted && !this.demandTurn) {
      this.slotWanted = false;
      this.demand();
    }
    return 'created';
  }

  private async dial(): Promise<DialResult> {
    if (!this.fds.take()) {
      const { limit, reserve } = this.fds.figures();
      throw new FdLimitError(`client pool ${this.options.name} did not dial: the process is near its limit of ${limit} open files (ulimit -n), and the last ${reserve} are left to the rest of the application; raise the limit or lower maxCap`);
    }
    this.dialing++;
    this.totals.dials++;
    try {
      return await observeDial(this, () => this.transport.dial({ signal: this.lifecycle.signal, readId: !this.options.isSingle }));
    } finally {
      this.dialing--;
    }
  }

  /** A fresh stream goes straight to whoever waits for its ID, or joins the pool. */
  private admit({ id, stream }: DialResult): boolean {
    if (this.state !== 'running') {
      stream.destroy();
      this.dropped('late', id ?? undefined);
      return false;
    }
    const key = id ?? this.localId();
    if (this.idle.has(key)) {
      stream.destroy();
      this.dropped('duplicate', key);
      return false;
    }
    this.totals.created++;
    streamReady(stream);
    this.reporter.success();
    if (this.byId.waiting(key)) {
      // The checks an idle stream passes when taken; a stream that fails them is dropped and counted.
      const out = this.handOut(stream);
      if (out) this.byId.offer(key, out);
      else this.dropped('stale', key);
      return true;
    }
    this.idle.add(key, stream);
    this.activeWaiters.check();
    return true;
  }

  /** The youngest idle stream, handed out; dead and expired ones are dropped on the way. */
  private takeNewest(): [string, Duplex] | undefined {
    for (let next = this.idle.takeNewest(); next; next = this.idle.takeNewest()) {
      const out = this.handOut(next[1]);
      if (out) return [next[0], out];
      this.dropped('stale', next[0]);
    }
    return undefined;
  }

  private async takeSingle(timeout: number, signal: AbortSignal | undefined, started: number): Promise<Duplex> {
    const ready = this.takeOldest();
    if (ready) return handedOff(this, ready[0], ready[1], started);
    const dial = this.dial().then(({ stream }) => stream);
    try {
      const stream = await withDeadline(dial, timeout, signal, `single-mode dial did not complete within ${timeout} ms`);
      if (this.state !== 'running') {
        stream.destroy();
        throw this.closedError();
      }
      const out = this.handOut(stream);
      // Counted below with the failures (POOL_ERR_DIAL); handOut destroyed it.
      if (!out) throw new DialError('the freshly dialed stream was already dead when it was to be handed out (reset by the peer?)');
      return handedOff(this, '', out, started);
    } catch (error) {
      if (error instanceof PoolClosedError) throw error;
      dial.then((stream) => stream.destroy(), () => undefined);
      if (error instanceof PoolError && error.code !== PoolErrorCode.TIMEOUT) this.failed(error);
      throw error;
    }
  }

  private localId(): string {
    let id = randomId();
    while (this.idle.has(id)) id = randomId();
    return id;
  }

  private failed(error: unknown): void {
    this.addError();
    const code = error instanceof PoolError ? error.code : 'UNKNOWN';
    countInto(this.failures, code);
    this.reporter.failure(error);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
