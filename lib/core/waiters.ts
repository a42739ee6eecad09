import { PoolAbortedError, PoolError, PoolTimeoutError } from './errors.js';

export interface WaitOptions {
  /** Milliseconds; `Infinity` waits until the value comes, the pool closes or `signal` aborts. */
  timeout?: number;
  signal?: AbortSignal;
}

/** The callbacks of the waiters bound to each signal, behind one 'abort' listener per signal. */
const abortCallbacks = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Calls `callback` once when `signal` aborts; the returned function forgets
 * it. However many waiters share a signal, the signal carries one listener
 * of ours, added with the first waiter and kept for the signal's life:
 * adding and forgetting a waiter cost O(1), and abort() O(waiters). (A
 * listener per waiter made abort() quadratic: each one removed itself from
 * the signal's list, 75 s for 100 000 gets on one signal.)
 */
export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  let callbacks = abortCallbacks.get(signal);
  if (!callbacks) {
    const bound = new Set<() => void>();
    callbacks = bound;
    abortCallbacks.set(signal, bound);
    signal.addEventListener(
      'abort',
      () => {
        abortCallbacks.delete(signal);
        // Each callback forgets itself as it settles: deleting the current
        // entry of a Set while iterating it is safe.
        for (const call of bound) call();
        bound.clear();
      },
      { once: true },
    );
  }
  const bound = callbacks;
  bound.add(callback);
  return () => {
    bound.delete(callback);
  };
}

/**
 * Something waiting for a value. A one-shot sink (a pending get) leaves the
 * queue when served; a persistent sink (a subscription) goes to the back of
 * the queue, so several subscribers take turns.
 */
interface Sink<T> {
  deliver(value: T): void;
  fail(error: PoolError): void;
  readonly persistent: boolean;
  /** Takes only values offered under this key (a client's identity label); undefined takes every value. */
  readonly accepts?: string;
}

/** Whether a sink that `accepts` this key (undefined: any) takes a value offered under `key`. */
const takes = (accepts: string | undefined, key: string | undefined): boolean => accepts === undefined || accepts === key;

/**
 * A FIFO of sinks. `offer()` hands a value to the first sink synchronously,
 * so a value is never held by a waiter that is no longer there.
 *
 * A sink may take only the values offered under one key (`accepts`, e.g.
 * the streams of one client): a value goes to the oldest sink that can take
 * it, so sinks are served first come, first served among those that can.
 * Sinks without a key take everything; when the oldest sink has none (the
 * usual case, and the only one without filters) `offer()` is O(1).
 */
export class WaiterQueue<T> {
  private readonly sinks = new Set<Sink<T>>();

  get size(): number {
    return this.sinks.size;
  }

  /** Whether a sink waits that would take a value offered under `key`. */
  hasTaker(key?: string): boolean {
    for (const sink of this.sinks) if (takes(sink.accepts, key)) return true;
    return false;
  }

  /** Gives `value` to the oldest sink that takes `key`; false when none does. */
  offer(value: T, key?: string): boolean {
    for (const sink of this.sinks) {
      if (!takes(sink.accepts, key)) continue;
      this.sinks.delete(sink);
      if (sink.persistent) this.sinks.add(sink);
      sink.deliver(value);
      return true;
    }
    return false;
  }

  /** A promise for the next value (offered under `accepts`, when given), bounded by `timeout` and `signal`. */
  wait(options: WaitOptions, timeoutMessage: () => string, accepts?: string): Promise<T> {
    const { timeout = Infinity, signal } = options;
    if (signal?.aborted) return Promise.reject(new PoolAbortedError());
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let forgetAbort: (() => void) | undefined;
      const settle = (action: () => void): void => {
        this.sinks.delete(sink);
        if (timer !== undefined) clearTimeout(timer);
        forgetAbort?.();
        action();
      };
      const sink: Sink<T> = {
        persistent: false,
        accepts,
        deliver: (value) => settle(() => resolve(value)),
        fail: (error) => settle(() => reject(error)),
      };
      this.sinks.add(sink);
      if (Number.isFinite(timeout)) {
        timer = setTimeout(() => settle(() => reject(new PoolTimeoutError(timeoutMessage()))), timeout);
      }
      if (signal) forgetAbort = onAbort(signal, () => settle(() => reject(new PoolAbortedError())));
    });
  }

  /** Calls `listener` for every value (offered under `accepts`, when given) until the returned function is called. */
  subscribe(listener: (value: T) => void, onClose: (error: PoolError) => void, accepts?: string): () => void {
    const sink: Sink<T> = {
      persistent: true,
      accepts,
      deliver: listener,
      fail: (error) => {
        this.sinks.delete(sink);
        onClose(error);
      },
    };
    this.sinks.add(sink);
    return () => {
      this.sinks.delete(sink);
    };
  }

  /** Fails every sink (the pool is closing). */
  failAll(error: PoolError): void {
    for (const sink of [...this.sinks]) sink.fail(error);
    this.sinks.clear();
  }
}

/** Waiter queues by key: `outgoingGet(id)` waits on the queue of its ID. */
export class KeyedWaiters<T> {
  private readonly queues = new Map<string, WaiterQueue<T>>();

  get size(): number {
    let total = 0;
    for (const queue of this.queues.values()) total += queue.size;
    return total;
  }

  has(key: string): boolean {
    return this.queues.has(key);
  }

  /** Someone waits on `key` now: an `offer(key, …)` made at once is taken. */
  waiting(key: string): boolean {
    return (this.queues.get(key)?.size ?? 0) > 0;
  }

  /** Someone waits on `key` who takes a value offered under `accepts` (see WaiterQueue). */
  hasTaker(key: string, accepts?: string): boolean {
    return this.queues.get(key)?.hasTaker(accepts) ?? false;
  }

  offer(key: string, value: T, accepts?: string): boolean {
    const queue = this.queues.get(key);
    if (!queue) return false;
    const served = queue.offer(value, accepts);
    if (queue.size === 0) this.queues.delete(key);
    return served;
  }

  /** Fails every waiter on `key` (its value will never come). */
  fail(key: string, error: PoolError): void {
    const queue = this.queues.get(key);
    if (!queue) return;
    this.queues.delete(key);
    queue.failAll(error);
  }

  async wait(key: string, options: WaitOptions, timeoutMessage: () => string, accepts?: string): Promise<T> {
    let queue = this.queues.get(key);
    if (!queue) {
      queue = new WaiterQueue<T>();
      this.queues.set(key, queue);
    }
    try {
      return await queue.wait(options, timeoutMessage, accepts);
    } finally {
      if (queue.size === 0 && this.queues.get(key) === queue) this.queues.delete(key);
    }
  }

  failAll(error: PoolError): void {
    for (const queue of this.queues.values()) queue.failAll(error);
    this.queues.clear();
  }
}

/**
 * Waiters for a condition on the pool (e.g. "at least n idle streams"),
 * each with its own predicate, timeout and signal: `check()` releases every
 * waiter whose predicate now holds. Built on `WaiterQueue`, so timeouts,
 * aborts and `failAll` behave as for the gets.
 */
export class ConditionWaiters {
  private readonly waiting = new Map<WaiterQueue<void>, () => boolean>();

  get size(): number {
    return this.waiting.size;
  }

  /** Resolves once `holds()` is true at a `check()` (at once if it is true now). */
  async wait(holds: () => boolean, options: WaitOptions, timeoutMessage: () => string): Promise<void> {
    if (holds()) return;
    const queue = new WaiterQueue<void>();
    const waiting = queue.wait(options, timeoutMessage);
    this.waiting.set(queue, holds);
    try {
      await waiting;
    } finally {
      this.waiting.delete(queue);
    }
  }

  /** Releases the waiters whose condition holds now. */
  check(): void {
    for (const [queue, holds] of [...this.waiting]) {
      if (!holds()) continue;
      this.waiting.delete(queue);
      queue.offer(undefined);
    }
  }

  failAll(error: PoolError): void {
    const queues = [...this.waiting.keys()];
    this.waiting.clear();
    for (const queue of queues) queue.failAll(error);
  }
}
