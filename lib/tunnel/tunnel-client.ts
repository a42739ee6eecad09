import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { ClientPool } from '../core/client-pool.js';
import type { PoolLogger } from '../core/logger.js';
import { InvalidOptionsError, PoolClosedError } from '../core/errors.js';
import { ControlChannel, type ControlChannelOptions } from './control/channel.js';
import type { EndMessage, OpenMessage, RouteAnswer } from './control/messages.js';
import { EndConfirmations } from './end-confirmations.js';
import { cutStream, forward, type EndConfirmation, type Forwarding, type ForwardResult } from './forward.js';
import { encodeStreamHeader } from './stream-header.js';
import { announceRoute, validateRoutes, type Route, type RouteOptions } from './routes.js';
import { connectTarget, ConnectionLimit } from './target.js';
import { attachTunnelLog } from './tunnel-log.js';
import { accountingOf, failOf, resetSocket } from './tunnel-common.js';
import { peerFailure, TunnelStats, type TunnelStatsSnapshot } from './tunnel-stats.js';

export interface TunnelClientOptions {
  /** The client pool that dials the tunnel server (started by `start()` if it is not yet). The caller closes it, after `close()`. */
  pool: ClientPool;
  /** The routes this client serves. */
  routes: readonly RouteOptions[];
  /** A label for the server's logs. */
  name?: string;
  /** How long the hello, and taking the control stream, may take (ms, default 10000). */
  helloTimeout?: number;
  /** How long an OPEN waits for the pooled stream it names (ms, default 5000). */
  openTimeout?: number;
  /** How long `close()` lets tunnelled connections finish before cutting them (ms, default 5000). */
  closeTimeout?: number;
  /**
   * How long a pooled stream's end waits for the server's SHUT (its word
   * that it ended that stream) before it is passed on as a cut instead of
   * a clean end (ms, default 5000).
   */
  accountingTimeout?: number;
  /** After a lost control channel, a new one after minDelay ms, doubling on each failed try up to maxDelay (default 200..10000); false: none. */
  reconnect?: { minDelay?: number; maxDelay?: number } | false;
  /** Options of the control channel (pings, liveness). */
  control?: Omit<ControlChannelOptions, 'role' | 'helloTimeout'>;
  /** Where the tunnel's life is logged (clients up and gone, refusals, failures rate-limited); default: silent. The Nest module passes its Logger. */
  logger?: PoolLogger;
  /** At most one summary of ongoing failures per this many ms (default 60000). */
  logInterval?: number;
}

/** What the server said about one route. */
export interface RouteState extends RouteAnswer {
  accepted: boolean;
}

export interface TunnelClientEvents {
  /** The control channel is up: the server's answer, route by route. */
  up: [routes: RouteState[]];
  /** A route the server refused (also in `up`'s list). */
  refused: [answer: RouteAnswer];
  /** The control channel closed (`error` undefined: cleanly); a new one follows unless `reconnect` is false. */
  down: [error: Error | undefined];
  /** A try to bring the control channel back failed; the next follows after the back-off. */
  'reconnect-failed': [error: Error];
  /** The server is draining: it opens no more connections. */
  drain: [];
  /** A tunnelled connection is forwarding (its target or public side joined to the pooled stream). */
  opened: [event: { route: string; id: string }];
  /** A tunnelled connection ended (this side's figures). */
  connection: [event: { route: string; id: string; result: ForwardResult }];
  /** An OPEN could not be served (the target refused, no stream, the route's limit): FAIL was sent. */
  'open-failed': [event: { route: string; id: string; error: Error }];
}

/**
 * The client side of a tunnel, over a `ClientPool`: takes one of its own
 * ready pooled streams as its control stream and says hello on it at once
 * (the preamble names the stream to the server), announces its routes, and
 * serves each OPEN of the server: takes the pooled stream it names,
 * connects the route's target and forwards, or answers FAIL (the public
 * side then sees a reset).
 */
export class TunnelClient extends EventEmitter<TunnelClientEvents> {
  readonly pool: ClientPool;
  private readonly routes: Route[];
  private readonly options: TunnelClientOptions;
  private readonly limits = new Map<string, ConnectionLimit>();
  private readonly open = new Map<number, Forwarding>();
  /** This side's connections on forward routes, by its conn number. */
  private readonly outgoing = new Map<number, Forwarding>();
  /** The IDs of the streams this side took for its forward connections, from the take on: a reverse OPEN naming one is a collision. */
  private readonly ownIds = new Set<string>();
  /**
   * Streams of reverse connections whose target failed after their header
   * went out: the server cuts its end on this side's FAIL (so its figures
   * carry the FAIL's reason, not a reset that raced it); cut here once
   * `openTimeout` passed without that, or on close.
   */
  private readonly failing = new Set<Duplex>();
  /** The server's SHUTs, matched with the ends of this side's pooled streams. */
  private readonly confirmations: EndConfirmations;
  /** Listeners of accepted forward routes. */
  private readonly forwardListeners: net.Server[] = [];
  private nextConn = 1;
  private readonly tunnelStats = new TunnelStats(() => ({ pool: this.pool.name, role: 'client' }));
  private channel?: ControlChannel;
  /** The channel whose hello the server answered (the one `connected` speaks of). */
  private established?: ControlChannel;
  private detachLog?: () => void;
  /** The pending reconnect, and how many tries in a row failed. */
  private retry?: NodeJS.Timeout;
  private failures = 0;
  private answers: RouteState[] = [];
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';

  constructor(options: TunnelClientOptions) {
    super();
    if (!options || typeof options.pool?.takeAny !== 'function') throw new InvalidOptionsError('pool', 'a ClientPool is required');
    this.pool = options.pool;
    this.routes = validateRoutes(options.routes);
    this.confirmations = new EndConfirmations(options.accountingTimeout ?? 5000);
    this.options = options;
    for (const route of this.routes) this.limits.set(route.name, new ConnectionLimit(route.maxConnections > 0 ? route.maxConnections : Infinity));
    if (options.logger) this.detachLog = attachTunnelLog(this, 'client', options.logger, options.logInterval);
  }

  /** The server's answer per route, once up. */
  get routeStates(): RouteState[] {
    return this.answers;
  }

  get stats(): TunnelStatsSnapshot {
    return this.tunnelStats.snapshot();
  }

  /**
   * Whether the control channel is up: the server answered its hello (so
   * every accepted reverse route's public listener is bound). A channel
   * whose hello is still in flight is not up yet.
   */
  get connected(): boolean {
    return this.channel !== undefined && this.channel === this.established && !this.channel.closed;
  }

  /** The control channel's last ping round trip (ms); undefined before its first pong. */
  get controlRtt(): number | undefined {
    return this.channel?.rtt;
  }

  /**
   * Starts the pool (if needed), takes a ready stream as the control
   * stream, says hello with the routes; resolves with the server's answer
   * per route. Rejects with the control channel's typed error (refused,
   * version, timeout) or the pool's (`PoolTimeoutError` when no stream came).
   */
  async start(): Promise<RouteState[]> {
    if (this.state !== 'new') throw new PoolClosedError('a tunnel client starts once');
    this.state = 'running';
    this.pool.start(); // idempotent while running
    return this.connect();
  }

  /** Takes a control stream, says hello, (re)opens the forward listeners; the 'up' event and the answers. */
  private async connect(): Promise<RouteState[]> {
    const helloTimeout = this.options.helloTimeout ?? 10_000;
    const [, stream] = await this.pool.takeAny({ timeout: helloTimeout });
    if (this.state !== 'running') {
      stream.destroy();
      throw new PoolClosedError('the tunnel client was closed while it started');
    }
    const channel = new ControlChannel(stream, { ...this.options.control, helloTimeout, role: 'client' });
    this.channel = channel;
    channel.on('open', (message) => void this.served(channel, message));
    channel.on('accounting', (message) => this.peerAccounting(message));
    channel.on('shut', (message) => this.confirmations.shut(message));
    // The server's public connections wait for streams of ours: dial them now (capacity grows, up to maxCap).
    channel.on('want', (count) => this.pool.want(count));
    channel.on('fail', (message) => this.outgoing.get(message.conn)?.cut(peerFailure(message.reason, `the tunnel server could not open the connection (${message.reason}): ${message.text}`)));
    channel.on('drain', () => this.emit('drain'));
    let established = false;
    channel.once('close', (error) => {
      if (!established) return; // a hello that failed: its caller (start or the reconnect loop) sees the error
      this.emit('down', error);
      if (this.state === 'running' && this.channel === channel) this.scheduleReconnect();
    });
    const { ack } = await channel.hello({ name: this.options.name ?? '', routes: this.routes.map(announceRoute) });
    established = true;
    this.established = channel;
    this.failures = 0;
    this.answers = ack.routes.map((answer) => ({ ...answer, accepted: answer.status === 'accepted' }));
    for (const answer of ack.routes) if (answer.status !== 'accepted') this.emit('refused', answer);
    for (const route of this.routes) {
      if (route.direction !== 'forward' || !this.answers.find((a) => a.name === route.name)?.accepted) continue;
      if (!this.addressOf(route.name)) await this.listen(route);
    }
    this.emit('up', this.answers);
    return this.answers;
  }

  /**
   * The control channel was lost while running: a new one, after a delay
   * that doubles on each failed try (`reconnect.minDelay` to `maxDelay`).
   * Tunnelled connections in flight keep running meanwhile.
   */
  private scheduleReconnect(): void {
    const reconnect = this.options.reconnect;
    if (reconnect === false || this.state !== 'running' || this.retry) return;
    const min = reconnect?.minDelay ?? 200;
    const max = reconnect?.maxDelay ?? 10_000;
    const delay = Math.min(max, min * 2 ** Math.min(this.failures, 20));
    this.retry = setTimeout(() => {
      this.retry = undefined;
      if (this.state !== 'running') return;
      this.connect().catch((error: unknown) => {
        this.failures++;
        this.emit('reconnect-failed', error instanceof Error ? error : new Error(String(error)));
        this.scheduleReconnect();
      });
    }, delay);
  }

  /** Closes the control channel after letting tunnelled connections finish (`closeTimeout`), cutting the rest. The pool stays the caller's. */
  async close(): Promise<void> {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    clearTimeout(this.retry);
    this.retry = undefined;
    // Stops listening now; the close callbacks would wait for the connections, which closeTimeout bounds below.
    for (const server of this.forwardListeners.splice(0)) server.close();
    const running = [...this.open.values(), ...this.outgoing.values()];
    if (running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.closeTimeout ?? 5000)));
      await Promise.race([Promise.all(running.map((f) => f.done)), late]);
      clearTimeout(timer);
      for (const f of running) f.cut(new PoolClosedError('the tunnel client closed before this tunnelled connection finished'));
      await Promise.all(running.map((f) => f.done));
    }
    for (const stream of this.failing) cutStream(stream, new PoolClosedError('the tunnel client closed'));
    await this.channel?.close();
    this.confirmations.close();
    this.detachLog?.();
    this.state = 'closed';
  }

  /** Where a forward route listens, once up (its port when it asked for 0). */
  addressOf(route: string): net.AddressInfo | undefined {
    const server = this.forwardListeners.find((s) => this.routeNames.get(s) === route);
    return server?.address() as net.AddressInfo | undefined;
  }

  private readonly routeNames = new WeakMap<net.Server, string>();

  /** Listens for a forward route: each connection takes a ready stream, names it to the server (OPEN) and is forwarded over it. */
  private async listen(route: Route): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
    server.on('connection', (socket) => void this.forwardConnection(route, socket));
    const { host, port } = route.listen!;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new InvalidOptionsError(`routes.${route.name}.listen`, `forward route ${route.name} cannot listen on ${host}:${port} (${error.code ?? error.message}): pick a free port`)),
      );
      server.listen(port, host, () => resolve());
    });
    server.on('error', () => undefined);
    this.routeNames.set(server, route.name);
    this.forwardListeners.push(server);
  }

  private async forwardConnection(route: Route, socket: net.Socket): Promise<void> {
    const channel = this.connected ? this.channel : undefined; // not one whose hello is in flight
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    let release: (() => void) | undefined;
    let stream: Duplex | undefined;
    let id = '';
    try {
      if (this.state !== 'running' || !channel || channel.closed || channel.draining) throw new PoolClosedError('the tunnel is not open for new connections');
      release = this.limits.get(route.name)!.acquire();
      // The youngest stream: the server takes the oldest for reverse connections (see takeAny).
      [id, stream] = await this.pool.takeAny({ timeout: this.options.openTimeout ?? 5000, newest: true });
      this.ownIds.add(id);
      const conn = this.nextConn++;
      // The header first, so that a server that picked this stream for a reverse connection at the same moment knows it is ours.
      stream.write(encodeStreamHeader({ direction: 'forward', conn }));
      const address = socket.remoteAddress;
      const peer = address !== undefined && socket.remotePort !== undefined ? { peer: { address: address.startsWith('::ffff:') ? address.slice(7) : address, port: socket.remotePort } } : {};
      await channel.open({ conn, id, route: route.name, ...peer });
      const forwarding = forward(socket, stream, { endOf: this.endOf(conn, id) });
      this.outgoing.set(conn, forwarding);
      socket.resume();
      this.tunnelStats.track({ route: route.name, id }, forwarding);
      this.emit('opened', { route: route.name, id });
      const result = await forwarding.done;
      this.outgoing.delete(conn);
      release();
      if (!channel.closed) void channel.accounting(accountingOf(conn, id, result)).catch(() => undefined);
      this.emit('connection', { route: route.name, id, result });
    } catch (error) {
      release?.();
      if (stream) stream.destroy();
      resetSocket(socket);
      const failure = error instanceof Error ? error : new Error(String(error));
      this.tunnelStats.failed({ route: route.name }, failure);
      this.emit('open-failed', { route: route.name, id: '', error: failure });
    } finally {
      this.ownIds.delete(id);
    }
  }

  /** An OPEN from the server: the named stream, the route's target, forwarding; FAIL on any failure. */
  private async served(channel: ControlChannel, message: OpenMessage): Promise<void> {
    // The server picked a stream this client had just taken for a forward connection: that stream's header
    // (NTPF) tells the server, which hands it to that connection and picks another one. Nothing to answer.
    if (this.ownIds.has(message.id)) return;
    const route = this.routes.find((r) => r.name === message.route && r.direction === 'reverse');
    const accepted = this.answers.find((a) => a.name === message.route)?.accepted ?? false;
    let stream: Duplex | undefined;
    let release: (() => void) | undefined;
    let claimed = false;
    try {
      if (!route || !accepted) throw new InvalidOptionsError('route', `no accepted reverse route ${JSON.stringify(message.route)} on this client`);
      if (this.state !== 'running') throw new PoolClosedError('the tunnel client is closing');
      stream = await this.pool.outgoingGet(message.id, this.options.openTimeout ?? 5000);
      release = this.limits.get(route.name)!.acquire();
      // The header at once, before the target is connected: the server sends nothing into the stream before it
      // read it, so the public side's first bytes cross the tunnel while the target connects, not after. A target
      // that fails is then a FAIL (with its reason) for a connection the server holds, which it cuts.
      stream.write(encodeStreamHeader({ direction: 'reverse', conn: message.conn }));
      claimed = true;
      const target = await connectTarget({
        host: route.target.host,
        port: route.target.port,
        timeout: route.connectTimeout,
        ...(route.proxyProtocol === 'none' ? {} : { proxyProtocol: route.proxyProtocol === 'v1' ? 1 : 2, ...(message.peer ? { source: message.peer } : {}) }),
      });
      const forwarding = forward(target, stream, { endOf: this.endOf(message.conn, message.id) });
      this.open.set(message.conn, forwarding);
      this.tunnelStats.track({ route: route.name, id: message.id }, forwarding, undefined, 'b'); // the public side is across the tunnel
      this.emit('opened', { route: route.name, id: message.id });
      const result = await forwarding.done;
      this.open.delete(message.conn);
      release();
      if (!channel.closed) void channel.accounting(accountingOf(message.conn, message.id, result)).catch(() => undefined);
      this.emit('connection', { route: route.name, id: message.id, result });
    } catch (error) {
      release?.();
      const failure = error instanceof Error ? error : new Error(String(error));
      if (route) this.tunnelStats.failed({ route: route.name }, failure);
      // FAIL first, then the reset of the stream: the server cuts the public side either way, never a clean end.
      const told = await channel.fail(failOf(message.conn, message.id, failure)).then(() => true, () => false);
      // Refused before its stream was taken (closing, no such route): take and cut the named stream too, so the
      // server cuts the public side at once even when the FAIL never reaches it (a control channel closing first).
      if (!stream && message.id && !this.ownIds.has(message.id)) {
        stream = await this.pool.outgoingGet(message.id, this.options.openTimeout ?? 5000).catch(() => undefined);
      }
      if (stream && claimed && told) this.cutUnlessServerDoes(stream, failure);
      else if (stream) cutStream(stream, failure);
      this.emit('open-failed', { route: message.route, id: message.id, error: failure });
    }
  }

  /** A claimed stream whose connection failed and was told (FAIL): the server cuts it; here after `openTimeout` at the latest. */
  private cutUnlessServerDoes(stream: Duplex, failure: Error): void {
    if (stream.destroyed) return;
    stream.on('error', () => undefined);
    const timer = setTimeout(() => cutStream(stream, failure), this.options.openTimeout ?? 5000);
    this.failing.add(stream);
    stream.once('close', () => {
      clearTimeout(timer);
      this.failing.delete(stream);
    });
    // The public side's bytes that came meanwhile are dropped; reading them lets the server's end reach this one.
    stream.once('end', () => stream.destroy());
    stream.resume();
  }

  /** The end confirmation of a tunnelled connection: this side's SHUT to the server, and the server's awaited. */
  private endOf(conn: number, id: string): EndConfirmation {
    return this.confirmations.for(conn, id, (message) => {
      // The current channel: one that replaced a lost one still carries it.
      if (this.connected) void this.channel!.shut(message).catch(() => undefined);
    });
  }

  private peerAccounting(_message: EndMessage): void {
    // The server's figures for a connection; compared by the stats layer when it lands.
  }
}
