import type { Duplex } from 'node:stream';
import { PoolAbortedError, PoolTimeoutError, StreamCutError } from '../core/errors.js';
import { listen, type Disposer } from '../core/listeners.js';
import { cutStream, watchForReset } from './tcp-cut.js';

export { cutStream } from './tcp-cut.js';

/**
 * How one direction of a forwarded pair ended:
 * - `'end'`: the source ended (FIN) and the destination's writable side
 *   finished after every byte before it;
 * - `'cut'`: one side failed (an error, a reset, a close before its end) or
 *   the forwarding was cut by its owner, before this direction ended;
 * - `'timeout'`: nothing moved either way for `idleTimeout`.
 */
export type DirectionEnd = 'end' | 'cut' | 'timeout';

/** One direction's accounting. */
export interface DirectionResult {
  /** Bytes read from the source and handed to the destination. */
  readonly bytes: number;
  readonly ended: DirectionEnd;
}

/** What `Forwarding.done` resolves with, once both directions finished and both streams closed. */
export interface ForwardResult {
  readonly aToB: DirectionResult;
  readonly bToA: DirectionResult;
  /** The error that cut the pair (the first one); `undefined` when both directions ended cleanly. */
  readonly error: Error | undefined;
}

export interface ForwardOptions {
  /**
   * Cut both sides (`'timeout'`) when no byte moved either way for this
   * many milliseconds. Checked without a clock read per chunk: the cut
   * comes between `idleTimeout` and twice that after the last byte.
   * Default: none.
   */
  readonly idleTimeout?: number;
  /** Cut both sides when this aborts (the error is a `PoolAbortedError`). */
  readonly signal?: AbortSignal;
  /**
   * End confirmation for `b` when it is a tunnel's pooled stream, whose
   * clean end the other end of the tunnel confirms on its control channel
   * (a FIN alone cannot tell a finished peer from a killed one):
   * - `sending(sent)`: `a` ended and `b` is about to be ended, after `sent`
   *   bytes written into it (tell the other end);
   * - `confirm(received)`: `b` ended after `received` bytes; its end is
   *   passed on to `a` only if this resolves `true`, otherwise both sides
   *   are cut (`StreamCutError` 'reset'), so `a` never sees a clean end the
   *   other end did not write.
   */
  readonly endOf?: EndConfirmation;
  /** Bytes of `a` already written into `b` before the forwarding started: counted in `aToB` (and in `sending`). */
  readonly sent?: number;
}

/** See `ForwardOptions.endOf`. */
export interface EndConfirmation {
  sending(sent: number): void;
  confirm(received: number): Promise<boolean>;
}

/** A forwarded pair, while it runs and after. */
export interface Forwarding {
  /** Bytes moved from `a` to `b` so far (readable at any time). */
  readonly aToB: number;
  /** Bytes moved from `b` to `a` so far. */
  readonly bToA: number;
  /** Whether the pair still runs (false once both directions finished). */
  readonly running: boolean;
  /** Resolves (never rejects) once both directions finished and both streams closed. */
  readonly done: Promise<ForwardResult>;
  /** Cuts both sides now (a reset on tcp), with `error` or a `StreamCutError`. Does nothing once finished. */
  cut(error?: Error): void;
}

type State = 'open' | DirectionEnd;

const noop = (): void => undefined;

/** One direction: `src` read, `dst` written. */
class Direction {
  bytes = 0;
  state: State = 'open';
  /** `src` paused because `dst` asked to wait. */
  waiting = false;
  constructor(
    readonly src: Duplex,
    readonly dst: Duplex,
  ) {}

  result(): DirectionResult {
    return { bytes: this.bytes, ended: this.state === 'open' ? 'cut' : this.state };
  }
}

/**
 * Pumps `a` into `b` and `b` into `a` until both directions end, for any
 * Duplex (a `net.Socket`, a TLS socket, an HTTP/2 stream, a pooled
 * WebSocket stream):
 *
 * - half-close is carried: when one side ends, the other's writable side is
 *   ended after the bytes before it, and the reverse direction keeps going;
 *   sockets must be made with `allowHalfOpen: true` for that (otherwise Node
 *   ends their writable side itself at the peer's FIN);
 * - back-pressure both ways: a source is paused while its destination
 *   holds its high-water mark, and resumed on `'drain'`, so no more than a
 *   high-water mark (plus one chunk) waits in the pump per direction;
 * - a failure of either side (an error, a reset, a close before its end)
 *   cuts the other with a `StreamCutError` (a reset on tcp, see `cutStream`),
 *   never a clean end;
 * - bytes are counted each way as they move (`aToB`, `bToA`).
 *
 * `done` resolves with the accounting once both directions finished and
 * both streams closed. Both streams belong to the forwarding from this call
 * on; both are closed when it resolves.
 */
export function forward(a: Duplex, b: Duplex, options: ForwardOptions = {}): Forwarding {
  return new Pump(a, b, options);
}

class Pump implements Forwarding {
  private readonly ab: Direction;
  private readonly ba: Direction;
  private readonly disposers: Disposer[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** A byte moved since the idle timer was last armed. */
  private moved = false;
  private error: Error | undefined;
  private finishing = false;
  private readonly endOf: EndConfirmation | undefined;
  readonly done: Promise<ForwardResult>;
  private resolve!: (result: ForwardResult) => void;

  constructor(
    private readonly a: Duplex,
    private readonly b: Duplex,
    options: ForwardOptions,
  ) {
    this.ab = new Direction(a, b);
    this.ab.bytes = options.sent ?? 0;
    this.ba = new Direction(b, a);
    this.endOf = options.endOf;
    this.done = new Promise((resolve) => (this.resolve = resolve));
    for (const stream of [a, b]) {
      stream.on('error', noop); // errors are read below; none may go uncaught after release
      watchForReset(stream);
    }
    this.wire(a, this.ab, this.ba);
    this.wire(b, this.ba, this.ab);
    if (options.idleTimeout !== undefined) {
      const idle = options.idleTimeout;
      this.timer = setTimeout(() => this.checkIdle(idle), idle);
      this.timer.unref();
    }
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) this.fail(new PoolAbortedError('the forwarding was aborted'), 'cut');
      else {
        const onAbort = (): void => this.fail(new PoolAbortedError('the forwarding was aborted'), 'cut');
        signal.addEventListener('abort', onAbort, { once: true });
        this.disposers.push(() => signal.removeEventListener('abort', onAbort));
      }
    }
    if (this.finishing) return;
    if (a.destroyed || b.destroyed) {
      this.fail(new StreamCutError('closed', 'a side of the forwarding was already closed when it started'), 'cut');
      return;
    }
    this.start(this.ab);
    this.start(this.ba);
  }

  get aToB(): number {
    return this.ab.bytes;
  }

  get bToA(): number {
    return this.ba.bytes;
  }

  get running(): boolean {
    return !this.finishing;
  }

  cut(error?: Error): void {
    this.fail(error ?? new StreamCutError('closed', 'the forwarding was cut by its owner'), 'cut');
  }

  /** `stream`'s events: as the source of `out`, as the destination of `into`. */
  private wire(stream: Duplex, out: Direction, into: Direction): void {
    this.disposers.push(
      listen(stream, {
        data: (chunk: Buffer) => {
          out.bytes += chunk.length;
          this.moved = true;
          if (!out.dst.write(chunk) && !out.waiting) {
            out.waiting = true;
            stream.pause();
          }
        },
        end: () => this.sourceEnded(out),
        drain: () => {
          if (!into.waiting) return;
          into.waiting = false;
          if (!this.finishing) into.src.resume();
        },
        finish: () => this.finished(into),
        error: (error: Error) => this.fail(error, 'cut'),
        close: () => {
          // A close before this stream's read side ended or its write side
          // finished (a destroy() without an error, a WebSocket closed
          // early): a cut. (A stream done both ways may close while the
          // other side still flushes its last bytes.)
          if (!stream.readableEnded || !stream.writableFinished) {
            this.fail(new StreamCutError('closed', 'a side of the forwarding closed before its end'), 'cut');
          }
        },
      }),
    );
  }

  private start(direction: Direction): void {
    if (direction.src.readableEnded) this.sourceEnded(direction);
    else direction.src.resume();
  }

  private sourceEnded(direction: Direction): void {
    if (direction.state !== 'open') return;
    const dst = direction.dst;
    if (dst.writableFinished) return this.finished(direction);
    if (dst.writableEnded) return;
    if (!this.endOf) return void dst.end();
    if (direction === this.ab) {
      this.endOf.sending(direction.bytes);
      return void dst.end();
    }
    // The pooled stream ended: pass it on only once the other end confirmed it wrote exactly what arrived.
    const received = direction.bytes;
    void this.endOf.confirm(received).then(
      (confirmed) => {
        if (this.finishing) return;
        if (confirmed) dst.end();
        else this.fail(new StreamCutError('reset', `the pooled stream ended after ${received} bytes but the other end of the tunnel did not confirm that end (its process died, or the bytes it wrote differ)`), 'cut');
      },
      (error: Error) => this.fail(error, 'cut'),
    );
  }

  private finished(direction: Direction): void {
    if (direction.state !== 'open' || !direction.src.readableEnded) return;
    direction.state = 'end';
    if (this.ab.state !== 'open' && this.ba.state !== 'open') this.release();
  }

  private checkIdle(idle: number): void {
    if (this.finishing) return;
    if (this.moved) {
      this.moved = false;
      this.timer?.refresh();
      return;
    }
    this.fail(new PoolTimeoutError(`the forwarded connection was idle for ${idle} ms (idleTimeout)`), 'timeout');
  }

  private fail(error: Error, as: 'cut' | 'timeout'): void {
    if (this.finishing) return;
    this.error = error;
    for (const direction of [this.ab, this.ba]) if (direction.state === 'open') direction.state = as;
    const cause = error instanceof StreamCutError || error instanceof PoolTimeoutError || error instanceof PoolAbortedError ? error : undefined;
    for (const stream of [this.a, this.b]) {
      cutStream(stream, cause ?? new StreamCutError('reset', `the other side of the forwarded connection failed: ${error.message}`, { cause: error }));
    }
    this.release();
  }

  private release(): void {
    if (this.finishing) return;
    this.finishing = true;
    clearTimeout(this.timer);
    for (const dispose of this.disposers.splice(0)) dispose();
    // Cut: destroy what is left at once. Both directions ended cleanly: let
    // each stream close on its own first. A writable side's 'finish' can
    // come before the transport sent its end (an HTTP/2 stream's END_STREAM
    // still queued in the session): a destroy then would reset the stream
    // (RST_STREAM CANCEL) and the peer would see a cut after every byte.
    // A stream still open after END_GRACE_MS is destroyed.
    for (const stream of [this.a, this.b]) {
      if (stream.destroyed) continue;
      if (this.error === undefined) destroyUnlessClosed(stream, END_GRACE_MS);
      else stream.destroy();
    }
    void Promise.all([whenClosed(this.a), whenClosed(this.b)]).then(() =>
      this.resolve({ aToB: this.ab.result(), bToA: this.ba.result(), error: this.error }),
    );
  }
}

/** How long a stream done both ways may take to close on its own before `forward()` destroys it (ms). */
const END_GRACE_MS = 1000;

/** Destroys `stream` unless it closes by itself within `grace` ms. */
function destroyUnlessClosed(stream: Duplex, grace: number): void {
  const timer = setTimeout(() => stream.destroy(), grace);
  timer.unref?.();
  stream.once('close', () => clearTimeout(timer));
}

/** Resolves once a destroyed stream has closed (at once for a stream that never emits 'close'). */
function whenClosed(stream: Duplex): Promise<void> {
  const state = stream as Duplex & { _readableState?: { emitClose?: boolean; closeEmitted?: boolean } };
  if (stream.closed || state._readableState?.emitClose === false || state._readableState?.closeEmitted) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}
