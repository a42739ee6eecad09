import type { EventEmitter } from 'node:events';

/** Undoes what a `listen()` set up; calling it again does nothing. */
export type Disposer = () => void;

/** Handlers by event name, for `listen()`. */
export type Handlers = Readonly<Record<string, (...args: never[]) => void>>;

/**
 * Adds every handler of `handlers` to `emitter` and returns one function
 * that removes exactly those: the `on` … `off` bookkeeping written once, so
 * a path that attaches three listeners cannot forget to detach the third.
 *
 *     const stop = listen(socket, { error: onError, close: onClose });
 *     // ... later, whichever way it ends:
 *     stop();
 */
export function listen(emitter: EventEmitter, handlers: Handlers): Disposer {
  const entries = Object.entries(handlers) as [string, (...args: unknown[]) => void][];
  for (const [event, handler] of entries) emitter.on(event, handler);
  let disposed = false;
  return () => {
    if (disposed) return;
    disposed = true;
    for (const [event, handler] of entries) emitter.off(event, handler);
  };
}

/**
 * Several disposers as one: runs each once, in reverse order of
 * registration (what was set up last is undone first).
 */
export class Disposers {
  private readonly stack: Disposer[] = [];

  add(disposer: Disposer): void {
    this.stack.push(disposer);
  }

  dispose(): void {
    while (this.stack.length > 0) this.stack.pop()!();
  }
}
