import type { ShutMessage } from './control/messages.js';
import type { EndConfirmation } from './forward.js';

/** SHUTs that came before their stream's end, kept until it comes (oldest dropped past this). */
const MAX_EARLY = 4096;

/**
 * The peer's SHUTs, matched with the ends of this side's pooled streams.
 *
 * A tunnelled connection's pooled stream ends (a FIN) in two cases that
 * look the same on the wire: the other end finished writing, or its
 * process died and its kernel closed the socket. The other end says the
 * first on the control channel (SHUT: "I ended my side after `sent`
 * bytes"); `confirm(received)` resolves `true` only when that SHUT came
 * (before the stream's end or within `timeout` ms after it) and `sent` is
 * exactly the bytes that arrived. Keys are the connection's `id:conn`,
 * prefixed by the client's label on a server with several clients, so a
 * SHUT sent on a control channel that replaced a lost one still counts.
 */
export class EndConfirmations {
  private readonly early = new Map<string, number>();
  private readonly waiting = new Map<string, (sent: number | undefined) => void>();

  constructor(private readonly timeout: number) {}

  /** A SHUT from the peer. */
  shut(message: ShutMessage, prefix = ''): void {
    const key = `${prefix}${message.id}:${message.conn}`;
    const waiter = this.waiting.get(key);
    if (waiter) return waiter(message.sent);
    if (this.early.size >= MAX_EARLY) this.early.delete(this.early.keys().next().value!);
    this.early.set(key, message.sent);
  }

  /** The `endOf` hooks of `forward()` for one connection: `send` tells the peer this side's SHUT. */
  for(conn: number, id: string, send: (message: Omit<ShutMessage, 'type'>) => void, prefix = ''): EndConfirmation {
    const key = `${prefix}${id}:${conn}`;
    return {
      sending: (sent) => send({ conn, id, sent }),
      confirm: (received) => this.confirm(key, received),
    };
  }

  /** Every stream still waiting is not confirmed (the tunnel end closes). */
  close(): void {
    for (const waiter of [...this.waiting.values()]) waiter(undefined);
    this.early.clear();
  }

  private confirm(key: string, received: number): Promise<boolean> {
    const early = this.early.get(key);
    if (early !== undefined) {
      this.early.delete(key);
      return Promise.resolve(early === received);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), this.timeout);
      timer.unref?.();
      const done = (sent: number | undefined): void => {
        clearTimeout(timer);
        this.waiting.delete(key);
        resolve(sent === received);
      };
      this.waiting.set(key, done);
    });
  }
}
