import { EventEmitter } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { PoolLogger } from '../core/logger.js';
import { ControlProtocolError, InvalidOptionsError, PoolClosedError, StreamCutError } from '../core/errors.js';
import type { ServerPool } from '../core/server-pool.js';
import type { ClientIdentity } from '../core/stream-identity.js';
import { ControlChannel, type ControlChannelOptions } from './control/channel.js';
import type { AnnouncedRoute, EndMessage, FailMessage, HelloMessage, OpenMessage, RouteAnswer } from './control/messages.js';
import { EndConfirmations } from './end-confirmations.js';
import { cutStream, forward, type EndConfirmation, type Forwarding, type ForwardResult } from './forward.js';
import { LocalControlRouter, type ControlRouter, type RoutedMessage } from './router.js';
import { clientLabel, RouteAllowlist, type AllowlistOptions, type PortRange } from './routes.js';
import { encodeStreamHeader, readStreamHeader } from './stream-header.js';
import { connectTarget, ConnectionLimit } from './target.js';
import { attachTunnelLog } from './tunnel-log.js';
import { accountingOf, failOf, matchPreamble, resetSocket } from './tunnel-common.js';
import { isPeerFailure, peerFailure, peerFailureReason, TunnelStats, type TunnelStatsSnapshot } from './tunnel-stats.js';

export interface TunnelServerOptions {
  /** The server pool the tunnel clients dial (started by `start()` if it is not yet). The caller closes it, after `close()`. */
  pool: ServerPool;
  /** Which routes of which clients this server opens (names, directions, ports, targets, per client identity). */
  allow: AllowlistOptions | RouteAllowlist;
  /** Where public listeners of reverse routes bind (default 127.0.0.1). */
  host?: string;
  /** How long a public connection waits for a ready pooled stream of its client (ms, default 5000); then it is reset. */
  openTimeout?: number;
  /** How long `close()` lets tunnelled connections finish before cutting them (ms, default 5000). */
  closeTimeout?: number;
  /**
   * How long after a tunnelled connection ended the client's END may take
   * before it counts as unaccounted, and how long a pooled stream's end
   * waits for the client's SHUT before it is passed on as a cut instead of
   * a clean end (ms, default 5000).
   */
  accountingTimeout?: number;
  /**
   * Send a reverse connection's first bytes into its pooled stream right
   * after the OPEN, without waiting for the client's stream header, for an
   * authenticated client (its streams proved its key: without `auth` a
   * stranger may hold streams in the pool, and only the header tells them
   * apart) that has no accepted forward route (one that never takes a
   * stream for itself): one round trip less per open (default true; on a
   * link with a 5 ms one-way delay the bench measures about 17 ms to the
   * target's first byte without it, 7 ms with it). Up to 64 KiB are kept until the header
   * confirms the stream. The price: a stream that turns out not to be the
   * client's (another process holding streams with the same identity) got
   * those bytes too (its holder drops them: no OPEN names it there); the
   * server sends them again into another stream, and no more early bytes
   * to that client. `false` writes nothing into a stream before its header.
   */
  earlyData?: boolean;
  /** Options of each control channel (hello deadline, pings, liveness). */
  control?: Omit<ControlChannelOptions, 'role'>;
  /** Where control messages for a client are routed (default: in this process). */
  router?: ControlRouter;
  /** Where the tunnel's life is logged (clients up and gone, refusals, failures rate-limited); default: silent. The Nest module passes its Logger. */
  logger?: PoolLogger;
  /** At most one summary of ongoing failures per this many ms (default 60000). */
  logInterval?: number;
}

/** One accepted route of a client, as this server serves it. */
export interface ServedRoute {
  name: string;
  direction: 'reverse' | 'forward';
  /** reverse: the public port this server listens on. */
  port: number;
}

export interface TunnelServerEvents {
  /** A client's control channel is up; `routes` is the answer it got, route by route (refusals included). */
  client: [client: string, routes: RouteAnswer[]];
  /** A route the allowlist (or a port conflict) refused: said to the client in the hello answer, and here. */
  refused: [client: string, answer: RouteAnswer];
  /** A client's control channel is gone (`error` undefined: closed cleanly). */
  'client-gone': [client: string, error: Error | undefined];
  /** A second control stream for a client that has one was refused. */
  duplicate: [client: string];
  /** A tunnelled connection is forwarding (public side and pooled stream joined). */
  opened: [event: { client: string; route: string; id: string }];
  /**
   * A stream this server picked for a reverse connection had been taken by
   * the client for a forward one at the same moment: it went to that
   * connection, and the reverse one picks another stream.
   */
  collision: [event: { client: string; route: string; id: string }];
  /** A tunnelled connection ended: this side's figures, and the client's END once it came. */
  connection: [event: TunnelConnectionEvent];
  /** Both ENDs of a tunnelled connection are in; `complete` false reports a truncation the wire could not show. */
  accounted: [event: AccountedEvent];
  /** The client's END did not come within `accountingTimeout` (it was killed, or its control channel was lost). */
  unaccounted: [event: { client: string; route: string; id: string; mine: Omit<EndMessage, 'type'> }];
  /** A public connection could not be opened (no stream, client gone, FAIL from the client, limit). */
  'open-failed': [event: { client: string; route: string; error: Error }];
}

export interface TunnelConnectionEvent {
  client: string;
  route: string;
  id: string;
  result: ForwardResult;
}

/** The most client ENDs kept while waiting for this side's. */
const MAX_PENDING_ENDS = 10_000;
/** How many streams one reverse connection may pick before giving up (the client took them for its forward connections, or had none of them). */
const MAX_PICKS = 3;

interface PendingEnd {
  client: string;
  route: string;
  mine?: Omit<EndMessage, 'type'>;
  peer?: EndMessage;
  timer?: NodeJS.Timeout;
}

/** Both sides' END for one tunnelled connection: `complete` false when the bytes one side wrote are not the bytes the other read. */
export interface AccountedEvent {
  client: string;
  route: string;
  id: string;
  mine: Omit<EndMessage, 'type'>;
  peer: EndMessage;
  complete: boolean;
}

interface Session {
  readonly label: string;
  readonly identity: ClientIdentity | undefined;
  readonly channel: ControlChannel;
  readonly listeners: net.Server[];
  readonly limits: Map<string, ConnectionLimit>;
  /** conn number → its forwarding, while it runs. */
  readonly open: Map<number, Forwarding>;
  /** Reverse connections waiting for the client's stream header, by their conn: a FAIL gives them up. */
  readonly awaiting: Map<number, AbortController>;
  /**
   * Streams this server picked for a reverse connection whose header is not
   * read yet, by ID: a forward OPEN naming one waits for its verdict (the
   * stream itself when the client had taken it for that forward connection).
   */
  readonly claims: Map<string, Promise<Duplex | undefined>>;
  /** Accepted forward routes by name (the target the allowlist let through). */
  readonly forward: Map<string, AnnouncedRoute>;
  /** The client's connections on forward routes, by its conn number, while they run. */
  readonly served: Map<number, Forwarding>;
  /**
   * A stream picked for this client turned out not to be its process's
   * (`no-stream`): another process holds streams with its identity, so no
   * more early bytes for it (`earlyData`), each open waits for the header.
   */
  strangers: boolean;
  detach?: () => void;
}

/**
 * The server side of a tunnel, over a `ServerPool`: finds each client's
 * control stream among its pooled streams by the control preamble (the
 * client names it by writing first), answers the hello with what the
 * allowlist permits, listens publicly for each accepted reverse route, and
 * forwards every public connection over one of that client's pooled
 * streams, announced on the control channel (OPEN), with FAIL and END
 * accounting both ways.
 */
export class TunnelServer extends EventEmitter<TunnelServerEvents> {
  readonly pool: ServerPool;
  private readonly allow: RouteAllowlist;
  private readonly host: string;
  private readonly openTimeout: number;
  private readonly earlyData: boolean;
  private readonly closeTimeout: number;
  private readonly control: Omit<ControlChannelOptions, 'role'>;
  private readonly router: ControlRouter;
  private readonly sessions = new Map<string, Session>();
  /** Control channels in their hello, to close with the server. */
  private readonly pending = new Set<ControlChannel>();
  private readonly tunnelStats = new TunnelStats(() => ({ pool: this.pool.name, role: 'server' }));
  private readonly routeNames = new WeakMap<net.Server, string>();
  private readonly accountingTimeout: number;
  /** The clients' SHUTs, matched with the ends of this side's pooled streams. */
  private readonly confirmations: EndConfirmations;
  /** Each ended connection's two ENDs, by stream ID and conn number, until both are in (or the client's is overdue). */
  private readonly ends = new Map<string, PendingEnd>();
  private unclaim?: () => void;
  private detachLog?: () => void;
  private nextConn = 1;
  private state: 'new' | 'running' | 'closing' | 'closed' = 'new';

  constructor(options: TunnelServerOptions) {
    super();
    if (!options || typeof options.pool?.claimEarly !== 'function') throw new InvalidOptionsError('pool', 'a ServerPool is required');
    this.pool = options.pool;
    this.allow = options.allow instanceof RouteAllowlist ? options.allow : new RouteAllowlist(options.allow);
    this.host = options.host ?? '127.0.0.1';
    this.openTimeout = options.openTimeout ?? 5000;
    this.earlyData = options.earlyData ?? true;
    this.closeTimeout = options.closeTimeout ?? 5000;
    this.accountingTimeout = options.accountingTimeout ?? 5000;
    this.confirmations = new EndConfirmations(this.accountingTimeout);
    this.control = options.control ?? {};
    this.router = options.router ?? new LocalControlRouter();
    if (options.logger) this.detachLog = attachTunnelLog(this, 'server', options.logger, options.logInterval);
  }

  /** Starts the pool (if it is not yet) and begins claiming control streams. */
  async start(): Promise<void> {
    if (this.state !== 'new') return;
    this.state = 'running';
    await this.pool.start();
    this.unclaim = this.pool.claimEarly({
      match: (bytes) => (this.state === 'running' ? matchPreamble(bytes) : 'pass'),
      claimed: ([, stream], identity) => this.controlStream(stream, identity),
    });
  }

  /** Clients with a control channel up, by label (`key:<id>`, `cert:<name>`, `anonymous`). */
  get clients(): string[] {
    return [...this.sessions.keys()];
  }

  /** The last ping round trip (ms) of `client`'s control channel; undefined before its first pong or without a channel. */
  controlRttOf(client: string): number | undefined {
    return this.sessions.get(client)?.channel.rtt;
  }

  /** The routes this server serves for `client`, with their public ports. */
  routesOf(client: string): ServedRoute[] {
    const session = this.sessions.get(client);
    if (!session) return [];
    return session.listeners.map((server) => ({ name: this.routeNames.get(server) ?? '', direction: 'reverse', port: (server.address() as net.AddressInfo).port }));
  }

  get stats(): TunnelStatsSnapshot {
    return this.tunnelStats.snapshot();
  }

  /**
   * Drains and closes: tells every client (DRAIN), stops claiming and
   * listening, lets tunnelled connections finish for `closeTimeout`, cuts
   * the rest, closes the control channels. The pool stays the caller's.
   */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'closing') return;
    this.state = 'closing';
    this.unclaim?.();
    for (const channel of this.pending) channel.destroy(new PoolClosedError('the tunnel server is closing'));
    const sessions = [...this.sessions.values()];
    await Promise.all(sessions.map((session) => session.channel.drain(this.closeTimeout, 'the tunnel server is shutting down').catch(() => undefined)));
    for (const session of sessions) this.closeListeners(session);
    const running = sessions.flatMap((session) => [...session.open.values(), ...session.served.values()]);
    if (running.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.closeTimeout)));
      await Promise.race([Promise.all(running.map((f) => f.done)), late]);
      clearTimeout(timer);
      for (const f of running) f.cut(new PoolClosedError('the tunnel server closed before this tunnelled connection finished'));
      await Promise.all(running.map((f) => f.done));
    }
    await Promise.all(sessions.map((session) => session.channel.close({ code: 'shutdown', text: 'the tunnel server closed' })));
    for (const pending of this.ends.values()) clearTimeout(pending.timer);
    this.ends.clear();
    this.confirmations.close();
    await this.router.close();
    this.detachLog?.();
    this.state = 'closed';
  }

  // ---- control streams ----

  private controlStream(stream: Duplex, identity: ClientIdentity | undefined): void {
    const label = clientLabel(identity);
    const channel = new ControlChannel(stream, { ...this.control, role: 'server' });
    if (this.sessions.has(label) || this.state !== 'running') {
      // One control channel per client: the one in place keeps it (no flapping); the newcomer is told why.
      if (this.state === 'running') this.emit('duplicate', label);
      void channel.close({ code: this.state === 'running' ? 'duplicate' : 'shutdown', text: `client ${label} already has a control channel on this server` });
      return;
    }
    this.pending.add(channel);
    const session: Session = { label, identity, channel, listeners: [], limits: new Map(), open: new Map(), awaiting: new Map(), claims: new Map(), forward: new Map(), served: new Map(), strangers: false };
    channel.once('close', (error) => {
      this.pending.delete(channel);
      if (this.sessions.get(label) === session) this.sessionGone(session, error);
      else this.closeListeners(session);
    });
    channel
      .accept((hello) => this.answer(session, hello))
      .then(async ({ ack }) => {
        this.pending.delete(channel);
        if (channel.closed || this.state !== 'running') return this.closeListeners(session);
        const attached = await this.router.attach(label, (envelope) => this.deliver(session, envelope.message));
        if (!attached.attached) {
          this.closeListeners(session);
          this.emit('duplicate', label);
          return void channel.close({ code: 'duplicate', text: `client ${label} already has a control channel` });
        }
        session.detach = attached.detach;
        this.sessions.set(label, session);
        channel.on('fail', (message) => this.peerFailed(session, message));
        channel.on('open', (message) => void this.forwardOpen(session, message));
        channel.on('accounting', (message) => this.peerAccounting(session, message));
        channel.on('shut', (message) => this.confirmations.shut(message, `${label}/`));
        for (const answer of ack.routes) if (answer.status !== 'accepted') this.emit('refused', label, answer);
        this.emit('client', label, ack.routes);
      })
      .catch(() => {
        this.pending.delete(channel);
        this.closeListeners(session);
      });
  }

  /** The hello answer: the allowlist's verdict per route, then a public listener bound for each accepted reverse route. */
  private async answer(session: Session, hello: HelloMessage): Promise<{ routes: RouteAnswer[]; limits: { pingInterval: number; livenessTimeout: number; maxRoutes: number; maxConnections: number } }> {
    const answers = this.allow.answer(session.identity, hello.routes, (route) => this.portTaken(route));
    for (const [i, answer] of answers.entries()) {
      const route = hello.routes[i]!;
      if (answer.status !== 'accepted') continue;
      session.limits.set(route.name, new ConnectionLimit(route.maxConnections > 0 ? route.maxConnections : Infinity));
      if (route.direction === 'forward') {
        session.forward.set(route.name, route);
        continue;
      }
      const verdict = this.allow.check(session.identity, route);
      const ranges = verdict.allowed ? verdict.ports : [];
      const bound = await this.listen(session, route, ranges);
      answers[i] = typeof bound === 'number' ? { ...answer, port: bound } : { ...answer, status: 'port-in-use', text: bound };
    }
    return {
      routes: answers,
      limits: { pingInterval: this.control.pingInterval ?? 15_000, livenessTimeout: this.control.livenessTimeout ?? 45_000, maxRoutes: this.allow.maxRoutes, maxConnections: 0 },
    };
  }

  /** A port another client's route holds already. */
  private portTaken(route: AnnouncedRoute): { status: 'port-in-use'; reason: string } | undefined {
    if (route.direction !== 'reverse' || route.serverPort === 0) return undefined;
    for (const session of this.sessions.values()) {
      for (const server of session.listeners) {
        if ((server.address() as net.AddressInfo | null)?.port === route.serverPort) return { status: 'port-in-use', reason: `port ${route.serverPort} is held by another route of this server` };
      }
    }
    return undefined;
  }

  /** Binds the public listener of a reverse route: its port, or the first free one of the allowed ranges. A string says why not. */
  private async listen(session: Session, route: AnnouncedRoute, ranges: readonly PortRange[]): Promise<number | string> {
    const candidates: number[] = [];
    if (route.serverPort !== 0) candidates.push(route.serverPort);
    else for (const range of ranges) for (let port = range.from; port <= range.to && candidates.length < 64; port++) candidates.push(port);
    let last = 'no port to listen on';
    for (const port of candidates) {
      const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true });
      const bound = await new Promise<string | undefined>((resolve) => {
        server.once('error', (error: NodeJS.ErrnoException) => resolve(`cannot listen on ${this.host}:${port} (${error.code ?? error.message})`));
        server.listen(port, this.host, () => resolve(undefined));
      });
      if (bound !== undefined) {
        last = bound;
        continue;
      }
      server.on('error', () => undefined);
      server.on('connection', (socket) => this.publicConnection(session, route, socket));
      this.routeNames.set(server, route.name);
      session.listeners.push(server);
      return (server.address() as net.AddressInfo).port;
    }
    return last;
  }

  /**
   * Stops the public listeners of a session at once. Their close callbacks
   * wait for every connection, which the close timeout bounds elsewhere:
   * not awaited here.
   */
  private closeListeners(session: Session): void {
    for (const server of session.listeners.splice(0)) server.close();
  }

  private sessionGone(session: Session, error: Error | undefined): void {
    this.sessions.delete(session.label);
    session.detach?.();
    // Tunnelled connections in flight run on their own streams: they survive the control channel.
    this.closeListeners(session);
    this.emit('client-gone', session.label, error);
  }

  // ---- tunnelled connections ----

  /** A public connection on a reverse route: a pooled stream of that client, OPEN on its control channel, then forwarding. */
  private async publicConnection(session: Session, route: AnnouncedRoute, socket: net.Socket): Promise<void> {
    const started = performance.now();
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    const key = { route: route.name, client: session.label };
    let release: (() => void) | undefined;
    let stream: Duplex | undefined;
    let id = '';
    try {
      if (this.state !== 'running' || this.sessions.get(session.label) !== session || session.channel.draining) throw new PoolClosedError(`client ${session.label} has no control channel`);
      release = session.limits.get(route.name)!.acquire();
      // No ready stream of this client: ask it for one now (WANT, a hint) rather than wait for its next refill.
      if (this.pool.readyFor(session.identity) === 0) void session.channel.want(1).catch(() => undefined);
      let conn: number;
      let early: number;
      [conn, id, stream, early] = await this.reverseStream(session, route, socket);
      const forwarding = forward(socket, stream, { endOf: this.endOf(session, conn, id), sent: early });
      session.open.set(conn, forwarding);
      socket.resume();
      this.tunnelStats.track({ ...key, id }, forwarding, performance.now() - started);
      this.emit('opened', { client: session.label, route: route.name, id });
      const result = await forwarding.done;
      session.open.delete(conn);
      release();
      // Cut by the client's FAIL (its target failed after it claimed the stream): no END comes for it, none is owed.
      if (!isPeerFailure(result.error)) this.ownEnd(session, route.name, accountingOf(conn, id, result));
      this.emit('connection', { client: session.label, route: route.name, id, result });
    } catch (error) {
      release?.();
      if (stream) stream.destroy();
      resetSocket(socket);
      this.tunnelStats.failed(key, error);
      this.emit('open-failed', { client: session.label, route: route.name, error: error instanceof Error ? error : new Error(String(error)) });
    }
  }

  /**
   * A pooled stream of this client for a reverse connection: named to the
   * client in an OPEN, and used only once the client's stream header says
   * it took that stream for that connection (nothing is written into it
   * before, unless `earlyData`: then the public side's first bytes, kept
   * for another pick). A stream the client had taken for one of its forward
   * connections at the same moment (header `NTPF`) goes to that connection,
   * and another stream is picked, at most `MAX_PICKS` in all.
   */
  private async reverseStream(session: Session, route: AnnouncedRoute, socket: net.Socket): Promise<[conn: number, id: string, stream: Duplex, early: number]> {
    // A client with no forward route never takes a stream for itself: the public side's bytes may go ahead of its
    // header. Only into streams that proved the client's key: without auth, anyone who reaches the pool holds
    // streams there, and the header is what tells the client's from a stranger's.
    const early = this.earlyData && session.identity !== undefined && session.forward.size === 0 && !session.strangers ? new EarlyBytes(socket) : undefined;
    for (let pick = 1; ; pick++) {
      // Without authentication streams have no identity, and a filter would match none: the one anonymous client takes any.
      const [id, stream] = await this.pool.incomingGet({ ...(session.identity ? { client: session.identity } : {}), timeout: this.openTimeout });
      const conn = this.nextConn++;
      let settle!: (forwardStream: Duplex | undefined) => void;
      const claim = new Promise<Duplex | undefined>((resolve) => (settle = resolve));
      session.claims.set(id, claim);
      const giveUp = new AbortController();
      session.awaiting.set(conn, giveUp);
      let theirs = false;
      try {
        const delivered = await this.router.toClient(session.label, { type: 'open', conn, id, route: route.name, ...peerOf(socket) });
        if (!delivered) throw new PoolClosedError(`client ${session.label} has no control channel`);
        early?.into(stream);
        // The client writes it as soon as it took the stream (an earlier version once its target was connected: its
        // connect timeout stays part of the wait).
        const header = await readStreamHeader(stream, Math.min(this.openTimeout + (route.connectTimeout || 10_000), 2_147_483_647), giveUp.signal);
        if (header.direction === 'reverse') {
          if (header.conn === conn) return [conn, id, stream, early?.confirmed() ?? 0];
          throw new ControlProtocolError('stream-header', `stream ${id} of client ${session.label} says reverse connection ${header.conn}, but this server named it for ${conn}`);
        }
        if (early) throw new ControlProtocolError('stream-header', `client ${session.label}, which has no forward route, says it took stream ${id} for forward connection ${header.conn}`);
        // The client took this stream for its forward connection `header.conn`: it is that connection's (header put back).
        theirs = true;
        stream.unshift(encodeStreamHeader(header));
        this.emit('collision', { client: session.label, route: route.name, id });
        if (pick >= MAX_PICKS) throw new StreamCutError('reset', `none of the ${MAX_PICKS} streams this server picked for one reverse connection was free on client ${session.label}`);
      } catch (error) {
        if (!theirs) stream.destroy();
        // The client has no such stream (it died, or it is another client's with the same identity, one that
        // the server refuses as a duplicate): no OPEN named it to its holder, so nothing written into it went
        // further; another stream may do (with the early bytes again).
        if (peerFailureReason(error) !== 'no-stream') throw error;
        session.strangers = true;
        if (pick < MAX_PICKS) continue;
        throw error;
      } finally {
        early?.stop();
        session.awaiting.delete(conn);
        if (theirs) this.handOver(session, id, claim, stream);
        else if (session.claims.get(id) === claim) session.claims.delete(id);
        settle(theirs ? stream : undefined);
      }
    }
  }

  /** A stream that turned out to be the client's forward one waits `openTimeout` for that connection's OPEN, then is dropped. */
  private handOver(session: Session, id: string, claim: Promise<Duplex | undefined>, stream: Duplex): void {
    const timer = setTimeout(() => {
      if (session.claims.get(id) !== claim) return;
      session.claims.delete(id);
      stream.destroy();
    }, this.openTimeout);
    timer.unref?.();
  }

  /** The end confirmation of a tunnelled connection: this side's SHUT to the client, and the client's awaited. */
  private endOf(session: Session, conn: number, id: string): EndConfirmation {
    return this.confirmations.for(conn, id, (message) => {
      // The client's current channel: one that replaced a lost one still carries it.
      const channel = this.sessions.get(session.label)?.channel;
      if (channel && !channel.closed) void channel.shut(message).catch(() => undefined);
    }, `${session.label}/`);
  }

  /**
   * An OPEN from the client on a forward route: take the stream it names
   * (of that client only), connect the route's target, forward; FAIL and a
   * cut of the stream on any failure.
   */
  private async forwardOpen(session: Session, message: OpenMessage): Promise<void> {
    const route = session.forward.get(message.route);
    const key = { route: message.route, client: session.label };
    let stream: Duplex | undefined;
    let release: (() => void) | undefined;
    try {
      if (!route) throw new InvalidOptionsError('route', `client ${session.label} has no accepted forward route ${JSON.stringify(message.route)}`);
      if (this.state !== 'running' || session.channel.draining) throw new PoolClosedError('the tunnel server is draining: no new connections');
      // A stream this server picked for a reverse connection at the same moment: its header says whose it is.
      const claim = session.claims.get(message.id);
      if (claim) {
        const theirs = await claim;
        if (theirs && session.claims.get(message.id) === claim) {
          session.claims.delete(message.id);
          stream = theirs;
        }
      }
      if (!stream) [, stream] = await this.pool.incomingGet({ id: message.id, ...(session.identity ? { client: session.identity } : {}), timeout: this.openTimeout });
      const header = await readStreamHeader(stream, this.openTimeout);
      if (header.direction !== 'forward' || header.conn !== message.conn) {
        throw new ControlProtocolError('stream-header', `client ${session.label} named stream ${message.id} for forward connection ${message.conn}, but the stream says ${header.direction} ${header.conn}`);
      }
      release = session.limits.get(route.name)!.acquire();
      const target = await connectTarget({
        host: route.targetHost,
        port: route.targetPort,
        timeout: route.connectTimeout,
        ...(route.proxyProtocol === 'none' ? {} : { proxyProtocol: route.proxyProtocol === 'v1' ? 1 : 2, ...(message.peer ? { source: message.peer } : {}) }),
      });
      const forwarding = forward(target, stream, { endOf: this.endOf(session, message.conn, message.id) });
      session.served.set(message.conn, forwarding);
      this.tunnelStats.track({ ...key, id: message.id }, forwarding, undefined, 'b'); // the public side is across the tunnel
      this.emit('opened', { client: session.label, route: message.route, id: message.id });
      const result = await forwarding.done;
      session.served.delete(message.conn);
      release();
      this.ownEnd(session, message.route, accountingOf(message.conn, message.id, result));
      this.emit('connection', { client: session.label, route: message.route, id: message.id, result });
    } catch (error) {
      release?.();
      const failure = error instanceof Error ? error : new Error(String(error));
      this.tunnelStats.failed(key, failure);
      if (!session.channel.closed) await session.channel.fail(failOf(message.conn, message.id, failure)).catch(() => undefined);
      if (stream) cutStream(stream, failure);
      this.emit('open-failed', { client: session.label, route: message.route, error: failure });
    }
  }

  /** Control messages routed to this client's channel. */
  private async deliver(session: Session, message: RoutedMessage): Promise<void> {
    if (message.type === 'open') await session.channel.open(message);
  }

  /** The client could not open a connection: the public side is cut (a reset), never ended cleanly. */
  private peerFailed(session: Session, message: FailMessage): void {
    const failure = peerFailure(message.reason, `the tunnel client could not open the connection (${message.reason}): ${message.text}`);
    session.open.get(message.conn)?.cut(failure);
    session.awaiting.get(message.conn)?.abort(failure);
  }

  /** This side's END: sent to the client, and kept until the client's comes. */
  private ownEnd(session: Session, route: string, mine: Omit<EndMessage, 'type'>): void {
    if (!session.channel.closed) void session.channel.accounting(mine).catch(() => undefined);
    const key = `${mine.id}:${mine.conn}`;
    const pending = this.ends.get(key);
    if (pending?.peer) return this.settle(key, { ...pending, mine, route });
    const timer = setTimeout(() => {
      this.ends.delete(key);
      this.emit('unaccounted', { client: session.label, route, id: mine.id, mine });
    }, this.accountingTimeout);
    this.ends.set(key, { client: session.label, route, mine, timer });
  }

  /** The client's END for a connection. */
  private peerAccounting(session: Session, message: EndMessage): void {
    const key = `${message.id}:${message.conn}`;
    const pending = this.ends.get(key);
    if (pending?.mine) return this.settle(key, { ...pending, peer: message });
    // The client's came first: kept (a bounded number) until this side's.
    if (this.ends.size >= MAX_PENDING_ENDS) this.ends.delete(this.ends.keys().next().value!);
    this.ends.set(key, { client: session.label, route: '', peer: message });
  }

  /** Both ENDs are in: the bytes one side wrote must be the bytes the other read, both ways. */
  private settle(key: string, pending: PendingEnd): void {
    clearTimeout(pending.timer);
    this.ends.delete(key);
    const { mine, peer } = pending;
    if (!mine || !peer) return;
    const complete = mine.sent === peer.received && mine.received === peer.sent;
    this.emit('accounted', { client: pending.client, route: pending.route, id: mine.id, mine, peer, complete });
  }
}

function peerOf(socket: net.Socket): { peer?: { address: string; port: number } } {
  const address = socket.remoteAddress;
  const port = socket.remotePort;
  if (address === undefined || port === undefined) return {};
  return { peer: { address: address.startsWith('::ffff:') ? address.slice(7) : address, port } };
}

/**
 * The most of a public connection's first bytes that go into a pooled stream
 * before its header was read (`earlyData`): they are kept until the header
 * confirms the stream, so that another pick can have them again. The rest
 * waits for the header.
 */
const EARLY_LIMIT = 64 * 1024;

/** A public connection's first bytes, sent ahead of the header into each stream picked for it (see `earlyData`). */
class EarlyBytes {
  /** What the socket gave so far: written into every stream picked, until one is confirmed. */
  private readonly kept: Buffer[] = [];
  private bytes = 0;
  /** Stops moving bytes into the stream taking them now. */
  private stopCurrent?: () => void;

  constructor(private readonly socket: net.Socket) {}

  /**
   * Writes what was kept into `stream`, then moves the socket's bytes into
   * it as they come (with back-pressure) until `stop()` or `EARLY_LIMIT`;
   * an end of the socket is left for `forward()` to pass on.
   */
  into(stream: Duplex): void {
    this.stop();
    const { socket } = this;
    for (const chunk of this.kept) stream.write(chunk);
    let stopped = false;
    const onDrain = (): void => {
      if (!stopped) socket.resume();
    };
    const onData = (chunk: Buffer): void => {
      // A stream cut meanwhile: the header's read fails, and with it this pick; the bytes stay kept.
      if (stream.destroyed || stream.writableEnded || this.bytes + chunk.length > EARLY_LIMIT) {
        // Back where forward() will read it (or the next pick, once the limit was not the reason).
        socket.pause();
        socket.unshift(chunk);
        stop();
        return;
      }
      this.kept.push(chunk);
      this.bytes += chunk.length;
      if (!stream.write(chunk)) {
        socket.pause();
        stream.once('drain', onDrain);
      }
    };
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      socket.off('data', onData);
      stream.off('drain', onDrain);
      socket.pause();
      if (this.stopCurrent === stop) this.stopCurrent = undefined;
    };
    this.stopCurrent = stop;
    socket.on('data', onData);
    socket.resume();
  }

  /** Stops moving bytes (the socket is left paused). */
  stop(): void {
    this.stopCurrent?.();
  }

  /** The stream was confirmed: nothing more to keep. Returns how many bytes it got ahead of its header. */
  confirmed(): number {
    this.stop();
    this.kept.length = 0;
    return this.bytes;
  }
}
