/**
 * The control message router: how a message for client C's control channel
 * reaches the tunnel-server instance that holds that channel, and how C's
 * answers about a connection reach the instance that opened it. Forwarding
 * code talks only to this interface. In one process (the default) it is a
 * pair of maps; several tunnel-server instances behind a load balancer can
 * share one through a bus (Redis pub/sub, NATS) by implementing the same
 * four methods, with no change to the forwarding code.
 */
import { InvalidOptionsError } from '../core/errors.js';
import type { Disposer } from '../core/listeners.js';
import type { DrainMessage, EndMessage, FailMessage, FlushMessage, OpenMessage } from './control/messages.js';

/** The messages that travel between instances (the hello and pings stay with the channel's holder). */
export type RoutedMessage = OpenMessage | FailMessage | EndMessage | FlushMessage | DrainMessage;

/** A message in transit: which instance sent it, for which client. */
export interface Envelope {
  /** The instance that sent it (`ControlRouter.instance`). */
  from: string;
  /** The client label (`clientLabel(identity)`) whose channel it concerns. */
  client: string;
  message: RoutedMessage;
}

/** What the holder of a client's channel does with a message for that client: write it on the channel. */
export type DeliverToChannel = (envelope: Envelope) => void | Promise<void>;

/** What an instance does with a client's answer about a connection it opened. */
export type DeliverToInstance = (envelope: Envelope) => void | Promise<void>;

/** The outcome of `attach`. */
export type Attachment =
  | { attached: true; /** Gives the client up (its channel closed); idempotent. */ detach: Disposer }
  | { attached: false; /** The instance that holds the client's channel. */ holder: string };

export interface AttachOptions {
  /**
   * 'refuse' (default): a client that already has a channel somewhere keeps
   * it, and this attach is refused. 'takeover': this attach wins; the
   * previous holder's `onTakenOver` runs (it closes its channel).
   */
  policy?: 'refuse' | 'takeover';
  /** Runs on the previous holder when a later attach takes the client over. */
  onTakenOver?: (by: string) => void;
}

export interface ControlRouter {
  /** This instance's name on the bus; unique among the instances that share it. */
  readonly instance: string;
  /** This instance holds `client`'s control channel: messages for the client are delivered to `deliver`. */
  attach(client: string, deliver: DeliverToChannel, options?: AttachOptions): Promise<Attachment>;
  /**
   * Sends `message` to `client`'s channel, wherever it is held. Resolves
   * true once the holder took it, false if no instance holds the client (no
   * control channel: refuse the public connection).
   */
  toClient(client: string, message: RoutedMessage): Promise<boolean>;
  /** The holder passes the client's answer (FAIL, END) to the instance `to` that opened the connection; false if that instance is gone. */
  toInstance(to: string, client: string, message: RoutedMessage): Promise<boolean>;
  /** Answers addressed to this instance. One handler; a second replaces the first. */
  onAnswer(deliver: DeliverToInstance): Disposer;
  /** Leaves the bus: every attachment of this instance is given up. */
  close(): Promise<void>;
}

/** The registry one process shares among its local routers. */
export class LocalBus {
  readonly holders = new Map<string, { router: LocalControlRouter; deliver: DeliverToChannel; onTakenOver?: (by: string) => void }>();
  readonly instances = new Map<string, LocalControlRouter>();
}

let nextInstance = 1;

/**
 * The in-process router (the default): several "instances" may share one
 * `LocalBus`, which is how its spec stands in for a real bus; a tunnel
 * server alone makes its own.
 */
export class LocalControlRouter implements ControlRouter {
  readonly instance: string;
  private answers: DeliverToInstance | undefined;
  private closed = false;

  constructor(
    private readonly bus: LocalBus = new LocalBus(),
    instance = `local-${nextInstance++}`,
  ) {
    if (bus.instances.has(instance)) throw new InvalidOptionsError('instance', `${JSON.stringify(instance)} is already on this bus; each instance needs its own name`);
    this.instance = instance;
    bus.instances.set(instance, this);
  }

  async attach(client: string, deliver: DeliverToChannel, options: AttachOptions = {}): Promise<Attachment> {
    if (this.closed) return { attached: false, holder: '' };
    const current = this.bus.holders.get(client);
    if (current && current.router !== this && (options.policy ?? 'refuse') === 'refuse') return { attached: false, holder: current.router.instance };
    if (current && current.router === this && (options.policy ?? 'refuse') === 'refuse') return { attached: false, holder: this.instance };
    const entry = { router: this as LocalControlRouter, deliver, ...(options.onTakenOver ? { onTakenOver: options.onTakenOver } : {}) };
    this.bus.holders.set(client, entry);
    if (current) current.onTakenOver?.(this.instance);
    return {
      attached: true,
      detach: () => {
        if (this.bus.holders.get(client) === entry) this.bus.holders.delete(client);
      },
    };
  }

  async toClient(client: string, message: RoutedMessage): Promise<boolean> {
    const holder = this.bus.holders.get(client);
    if (this.closed || !holder) return false;
    await holder.deliver({ from: this.instance, client, message });
    return true;
  }

  async toInstance(to: string, client: string, message: RoutedMessage): Promise<boolean> {
    const target = this.bus.instances.get(to);
    if (this.closed || !target?.answers) return false;
    await target.answers({ from: this.instance, client, message });
    return true;
  }

  onAnswer(deliver: DeliverToInstance): Disposer {
    this.answers = deliver;
    return () => {
      if (this.answers === deliver) this.answers = undefined;
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const [client, holder] of this.bus.holders) if (holder.router === this) this.bus.holders.delete(client);
    this.bus.instances.delete(this.instance);
    this.answers = undefined;
  }
}
