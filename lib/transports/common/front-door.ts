import type net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { SlotGate } from '../../core/admission.js';
import { Disposers, listen } from '../../core/listeners.js';
import type { Admission, HandshakeFailure, RefusalReason, ServerAcceptor } from '../../core/transport.js';
import type { ClientIdentity } from '../../core/stream-identity.js';
import { verifyClientCertificate } from './tls.js';
import { handshakeEnded, handshakeStarted } from '../../diagnostics/pool-events.js';

const noop = (): void => undefined;

/** What the front door knows of a connection once its own handshake (TLS) is done. */
export interface Peer {
  /** The socket's address (behind a trusted proxy, the proxy's: the peer's is checked per stream). */
  readonly remoteAddress: string | undefined;
  /** The connection as the transport reads it: the TLS socket, or the socket itself without TLS. */
  readonly stream: Duplex;
  /** The accepted socket under it. */
  readonly socket: net.Socket;
}

/** What the authentication step sees: the peer, and a signal aborted when the connection leaves the door (deadline, close, the door closing). */
export interface AuthPeer extends Peer {
  readonly signal: AbortSignal;
}

/** What a step that let a connection in says about it; the transport's own step reads it on `visit.authenticated`. */
export interface Authenticated {
  /** Who proved itself; the transport attaches it to the pooled stream (`setStreamIdentity`). */
  readonly identity?: ClientIdentity;
  /** Bytes the transport writes before its own first bytes, in the same write (tcp: ACCEPT before the ID). */
  readonly reply?: Buffer;
}

/**
 * The authentication step: runs once the connection's own handshake (TLS)
 * is done and before the transport issues any ID, under the same handshake
 * slot and deadline. It may read and write `peer.stream` (tcp: the
 * challenge and the proof); it leaves unread whatever is not its own.
 * Resolving (with what it proved, or nothing) lets the connection in;
 * throwing or rejecting refuses it (counted `auth`, closed bare). While it
 * runs, the peer closing, ending or resetting the connection is counted
 * `auth` too (it left without proving anything); the deadline stays
 * `handshake-timeout`. When the connection leaves the door first,
 * `peer.signal` aborts and the step's answer is ignored.
 */
export type Authenticate = (peer: AuthPeer) => void | Authenticated | Promise<void | Authenticated>;

export interface FrontDoorOptions {
  /**
   * How a connection is admitted at accept. 'stream': it carries exactly one
   * pooled stream (tcp), so the pool admits that stream now (capacity,
   * address, handshake slots, an ID) and a failure settles its admission.
   * 'connection': its pooled streams are admitted later (an HTTP upgrade,
   * HTTP/2 streams), so it only takes a handshake slot now, freed by `done()`.
   */
  readonly admit: 'stream' | 'connection';
  /** 'connection' mode: check `allowedIps` at accept (default true; false behind a trusted proxy). */
  readonly checkAddress?: boolean;
  /** Connections open at once, from accept to close, over and above the pool's handshake slots (HTTP/2 sessions). */
  readonly connectionLimit?: { readonly gate: SlotGate; readonly busy: RefusalReason; readonly peerBusy: RefusalReason };
  /** TLS on the accepted socket; plain when unset. */
  readonly secureContext?: tls.SecureContext;
  /** Mutual TLS: a client certificate verified against the context's CAs is required ('tls' otherwise). */
  readonly requestCert?: boolean;
  /** ALPN protocols offered; a peer that agrees on none is refused ('alpn'). */
  readonly alpn?: string[];
  readonly keepAlive: number;
  readonly noDelay: boolean;
  /** Pooled sockets are half-open: the peer's FIN before `done()` ends the handshake ('closed-in-handshake'). */
  readonly halfOpen: boolean;
  readonly handshakeTimeout: number;
  /**
   * What an error of the connection counts as after TLS and before `done()`
   * (tcp: 'socket-error', a reset before the ID was written). Unset: the
   * transport's own layer (Node's HTTP parser) answers it, and the close
   * that follows counts ('closed-in-handshake') unless already counted.
   */
  readonly errorAfterSecure?: HandshakeFailure;
  /** See `Authenticate`; unset: no step, and the connection goes on synchronously. */
  readonly authenticate?: Authenticate;
}

/**
 * One connection in the front door: from accept until the transport says
 * its part of the handshake is done, or it fails. Every way out is counted
 * once, by reason, and frees what the connection held.
 */
export class Visit implements Peer {
  readonly remoteAddress: string | undefined;
  /** What the authentication step proved, once it let the connection in (unset without a step). */
  authenticated?: Authenticated;
  /** Inside the authentication step: the peer leaving counts as 'auth'. */
  authenticating = false;
  private readonly cleanup = new Disposers();
  private settled = false;
  private counted = false;

  constructor(
    readonly socket: net.Socket,
    readonly stream: Duplex,
    /** 'stream' mode: the pooled stream's admission (its ID), to accept once the ID is out. */
    readonly admission: Admission | undefined,
    private readonly count: (reason: RefusalReason, error?: unknown) => void,
    private readonly release: () => void,
  ) {
    this.remoteAddress = socket.remoteAddress;
  }

  /** Still in the front door: not done, not failed. */
  get open(): boolean {
    return !this.settled;
  }

  /** Undone by `done()` or `fail()`, whichever comes first. */
  defer(disposer: () => void): void {
    this.cleanup.add(disposer);
  }

  /** The transport's part of the handshake is done: deadline and listeners off, the slot freed. */
  done(): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup.dispose();
    this.release();
    handshakeEnded(this, 'ok');
  }

  /** Fails the handshake: counted once under `reason` (unless already counted), the connection closed bare. */
  fail(reason: RefusalReason, error?: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.cleanup.dispose();
    // A failed write still emits its error after this: it must find a listener.
    this.stream.on('error', noop);
    this.stream.destroy();
    this.socket.destroy();
    this.tally(reason, error);
    this.release();
  }

  /**
   * Counts a refusal the transport answers in its own words (a 400, a 426)
   * before the connection closes: the deadline still bounds it, and neither
   * the deadline nor the close counts it again.
   */
  refuse(reason: RefusalReason): void {
    this.tally(reason);
  }

  /** Ends the handshake uncounted from here (the peer hung up mid-request): only the close remains. */
  forget(): void {
    this.counted = true;
  }

  /** Already counted (refused, forgotten or failed). */
  get refused(): boolean {
    return this.counted;
  }

  private tally(reason: RefusalReason, error?: unknown): void {
    if (this.counted) return;
    this.counted = true;
    this.count(reason, error);
    handshakeEnded(this, 'failed', reason, error);
  }
}

/**
 * The connection-level admission of a server, written once for every
 * transport that accepts sockets itself. For each accepted socket, in order:
 *
 * 1. a connection limit of the transport's own, if any (HTTP/2 sessions);
 * 2. the pool's admission: the peer address (`allowedIps`), the handshake
 *    slot in total and for the peer, and in 'stream' mode the capacity and
 *    the ID (a refusal is a bare close, as in the Go pools);
 * 3. the socket's options, then TLS (with ALPN) under the handshake deadline;
 * 4. the authentication step (`FrontDoorOptions.authenticate`: tcp's shared-key exchange);
 * 5. `next(visit)`: the transport's own step (write the ID, parse the
 *    upgrade request, start an HTTP/2 session), still under the deadline
 *    until it calls `visit.done()` or `visit.fail(reason)`.
 *
 * Failures are counted with a typed reason: 'tls', 'alpn',
 * 'handshake-timeout', 'closed-in-handshake', the transport's
 * `errorAfterSecure`, 'auth', 'closed' (the door closed on it).
 */
export class FrontDoor {
  private readonly visits = new Map<Duplex, Visit>();
  private closed = false;

  constructor(
    private readonly acceptor: ServerAcceptor,
    private readonly options: FrontDoorOptions,
  ) {}

  /** Connections in the front door. */
  get size(): number {
    return this.visits.size;
  }

  /** The connection in the front door that `stream` is (as given to `next`), if it still is. */
  visitOf(stream: Duplex): Visit | undefined {
    return this.visits.get(stream);
  }

  /** Takes an accepted socket through the door; `next` gets it once TLS (and authentication) are done. */
  enter(socket: net.Socket, next: (visit: Visit) => void): void {
    const { options, acceptor } = this;
    // Whatever happens, an error of the raw socket must find a listener (it destroys itself).
    socket.on('error', noop);
    if (this.closed) {
      socket.destroy();
      return;
    }
    let connectionClosed: (() => void) | undefined;
    if (options.connectionLimit) {
      const { gate, busy, peerBusy } = options.connectionLimit;
      const counted = gate.take(socket.remoteAddress, undefined, false);
      if (typeof counted === 'string') {
        socket.destroy();
        acceptor.refused(counted === 'busy' ? busy : peerBusy, socket.remoteAddress);
        return;
      }
      // Held from accept until the connection closes (the TLS socket owns the handle: whichever closes first).
      socket.once('close', counted);
      connectionClosed = counted;
    }
    const slot = this.take(socket);
    if (slot === undefined) {
      socket.destroy();
      return;
    }
    if (options.noDelay) socket.setNoDelay(true);
    socket.setKeepAlive(true, options.keepAlive);
    // Pooled streams are half-open (a tunnel carries a FIN one way only);
    // set here too for a server of the user's own. A TLSSocket takes it
    // from the socket it wraps.
    if (options.halfOpen) socket.allowHalfOpen = true;
    const { secureContext } = options;
    const stream: Duplex = secureContext
      ? new tls.TLSSocket(socket, {
          isServer: true,
          secureContext,
          ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
          ...(options.requestCert ? { requestCert: true, rejectUnauthorized: true } : {}),
        })
      : socket;
    if (connectionClosed && stream !== socket) stream.once('close', connectionClosed);
    const visit = new Visit(socket, stream, slot.admission, slot.count, slot.release);
    handshakeStarted(acceptor, visit);
    this.visits.set(stream, visit);
    visit.defer(() => this.visits.delete(stream));
    const timer = setTimeout(() => visit.fail('handshake-timeout'), options.handshakeTimeout);
    visit.defer(() => clearTimeout(timer));
    let secured = !secureContext;
    const onError = (error: unknown): void => {
      if (!secured) visit.fail(options.alpn && isAlpnFailure(error) ? 'alpn' : 'tls', error);
      else if (visit.authenticating) visit.fail('auth', error);
      else if (options.errorAfterSecure) visit.fail(options.errorAfterSecure, error);
      // Else the transport's own layer (Node's HTTP server) answers it; the stream destroys itself.
    };
    // Before TLS is done the raw socket's errors are the handshake's too.
    if (stream !== socket) visit.defer(listen(socket, { error: onError }));
    visit.defer(
      listen(stream, {
        error: onError,
        close: () => visit.fail(visit.authenticating ? 'auth' : 'closed-in-handshake'),
        // Half-open sockets do not close on the peer's FIN: it ends the handshake here (the TLSSocket reads it itself).
        ...(options.halfOpen ? { end: () => visit.fail(visit.authenticating ? 'auth' : 'closed-in-handshake') } : {}),
      }),
    );
    const inside = (): void => {
      secured = true;
      if (options.alpn && !options.alpn.includes(String((stream as tls.TLSSocket).alpnProtocol))) return visit.fail('alpn');
      // A certificate from another CA passes OpenSSL's handshake here (no tls.Server to check it): checked now.
      if (options.requestCert && !verifyClientCertificate(stream as tls.TLSSocket)) return visit.fail('tls', (stream as tls.TLSSocket).authorizationError);
      this.authenticate(visit, next);
    };
    if (secureContext) visit.defer(listen(stream, { secure: inside }));
    else inside();
  }

  /** Stops admitting; connections still in the door are closed, counted 'closed'. */
  close(): void {
    this.closed = true;
    for (const visit of [...this.visits.values()]) visit.fail('closed');
  }

  private take(socket: net.Socket): { admission?: Admission; count: (reason: RefusalReason, error?: unknown) => void; release: () => void } | undefined {
    const { acceptor, options } = this;
    if (options.admit === 'stream') {
      const admission = acceptor.admit(socket.remoteAddress);
      if (typeof admission === 'string') return undefined;
      return { admission, count: (reason, error) => admission.fail(reason, error), release: noop };
    }
    const release = acceptor.connecting(socket.remoteAddress, { checkAddress: options.checkAddress ?? true });
    if (typeof release === 'string') return undefined;
    return { count: (reason) => acceptor.refused(reason, socket.remoteAddress), release };
  }

  private authenticate(visit: Visit, next: (visit: Visit) => void): void {
    const hook = this.options.authenticate;
    if (!hook) return next(visit);
    const left = new AbortController();
    visit.defer(() => left.abort());
    visit.authenticating = true;
    const peer: AuthPeer = { remoteAddress: visit.remoteAddress, stream: visit.stream, socket: visit.socket, signal: left.signal };
    Promise.resolve()
      // The hook sees the peer, not the visit: it answers by resolving or throwing.
      .then(() => hook(peer))
      .then(
        (proved) => {
          if (!visit.open) return;
          visit.authenticating = false;
          if (proved) visit.authenticated = proved;
          next(visit);
        },
        (error: unknown) => visit.fail('auth', error),
      );
  }
}

function isAlpnFailure(error: unknown): boolean {
  const text = error && typeof error === 'object' ? `${String((error as { code?: unknown }).code)} ${String((error as { message?: unknown }).message)}` : '';
  return /APPLICATION_PROTOCOL|ALPN/i.test(text);
}
