import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { PoolError } from '../core/errors.js';
import type { DropReason } from '../core/idle-streams.js';
import type { RefusalReason } from '../core/transport.js';
import {
  CHANNELS,
  channelOf,
  type DialEndMessage,
  type DropMessage,
  type HandOffMessage,
  type HandshakeMessage,
  type PoolRef,
  type RefusalMessage,
  type SessionCloseMessage,
  type SessionOpenMessage,
} from './channels.js';

/*
 * The publishing side of the pool channels. The pools and transports call
 * these functions from one line at each event site; everything else lives
 * here. Every function starts with `hasSubscribers` checks and returns at
 * once when nobody listens: no clock read, no allocation, no listener added.
 * A clock is read only for an event someone subscribed to.
 */

const dialStart = channelOf(CHANNELS.dialStart);
const dialEnd = channelOf(CHANNELS.dialEnd);
const dialError = channelOf(CHANNELS.dialError);
const handshake = channelOf(CHANNELS.handshake);
const handOff = channelOf(CHANNELS.handOff);
const drop = channelOf(CHANNELS.drop);
const refusal = channelOf(CHANNELS.refusal);
const sessionOpen = channelOf(CHANNELS.sessionOpen);
const sessionClose = channelOf(CHANNELS.sessionClose);

// ---- who an event belongs to ----------------------------------------------

/** A pool's labels, or a link to the object that has them (a transport to its pool...). */
const subjects = new WeakMap<object, PoolRef | object>();

/** Names `subject` (a pool, and its transport) for the events published about it. */
export function describePool(subject: object, ref: PoolRef): void {
  subjects.set(subject, ref);
}

/** Events published about `child` (an acceptor, a session pool) belong to `parent`'s pool. */
export function linkDiagnostics(child: object, parent: object): void {
  subjects.set(child, parent);
}

function isRef(value: PoolRef | object): value is PoolRef {
  return typeof (value as PoolRef).pool === 'string';
}

/** The labels of a subject: its own, or up its links; a transport used without a pool has none (then nothing is published). */
export function poolRefOf(subject: object): PoolRef | undefined {
  let next: PoolRef | object | undefined = subjects.get(subject);
  for (let hops = 0; next !== undefined && hops < 4; hops++) {
    if (isRef(next)) return next;
    next = subjects.get(next);
  }
  return undefined;
}

const now = (): number => performance.now();
const since = (start: number): number => Math.max(0, performance.now() - start);

/*
 * Payloads are built as literals with fixed keys, optional fields set after,
 * never with object spread: V8 copies a spread object on a slow path
 * (microseconds per event when measured on the hand-off path), a literal
 * costs a few nanoseconds.
 */

// ---- dials (client pool) ---------------------------------------------------

const dialCounts = new WeakMap<object, number>();

interface Dialed {
  readonly id: string | null;
  readonly stream: Duplex;
}

/**
 * Runs one dial of `pool`, publishing its start and its end or error. With
 * no subscriber to any of the three channels it is `dial()` itself.
 */
export function observeDial<T extends Dialed>(pool: object, dial: () => Promise<T>): Promise<T> {
  if (!dialStart.hasSubscribers && !dialEnd.hasSubscribers && !dialError.hasSubscribers) return dial();
  const ref = poolRefOf(pool);
  if (!ref) return dial();
  const number = (dialCounts.get(pool) ?? 0) + 1;
  dialCounts.set(pool, number);
  if (dialStart.hasSubscribers) dialStart.publish({ pool: ref.pool, role: 'client', transport: ref.transport, dial: number });
  const started = now();
  return dial().then(
    (result) => {
      if (dialEnd.hasSubscribers) {
        const message: DialEndMessage = { pool: ref.pool, role: 'client', transport: ref.transport, dial: number, id: result.id, durationMs: since(started) };
        peerOf(result.stream, message);
        dialEnd.publish(message);
      }
      return result;
    },
    (error: unknown) => {
      if (dialError.hasSubscribers) {
        const code = typeof (error as PoolError | undefined)?.code === 'string' ? (error as PoolError).code : 'UNKNOWN';
        dialError.publish({ pool: ref.pool, role: 'client', transport: ref.transport, dial: number, error: error as PoolError, code, durationMs: since(started) });
      }
      throw error;
    },
  );
}

/** Sets the socket's peer on `message`, for a socket, a TLS socket, or an http2 stream (its session's socket). */
function peerOf(stream: Duplex, message: DialEndMessage): void {
  const socket = stream as Partial<{ remoteAddress: string; remotePort: number; session: { socket?: { remoteAddress?: string; remotePort?: number } } }>;
  const source = typeof socket.remoteAddress === 'string' ? socket : socket.session?.socket;
  if (!source || typeof source.remoteAddress !== 'string') return;
  message.remoteAddress = source.remoteAddress;
  if (typeof source.remotePort === 'number') message.remotePort = source.remotePort;
}

// ---- hand-off (both pools) -------------------------------------------------

/** When each stream became ready, recorded only while someone listens for hand-offs. */
const readyAt = new WeakMap<Duplex, number>();

/** A stream is ready to be taken (it joins the pool or goes straight to a waiting get). */
export function streamReady(stream: Duplex): void {
  if (handOff.hasSubscribers) readyAt.set(stream, now());
}

/** The start of a take, for `handedOff`: a clock reading while someone listens for hand-offs, else -1. */
export function takeStarted(): number {
  return handOff.hasSubscribers ? now() : -1;
}

/** The application got stream `id` from a take that started at `started` (`takeStarted()`); returns the stream. */
export function handedOff<S extends Duplex>(pool: object, id: string, stream: S, started: number): S {
  if (started < 0 || !handOff.hasSubscribers) return stream;
  const ref = poolRefOf(pool);
  if (!ref) return stream;
  const taken = now();
  const ready = readyAt.get(stream);
  readyAt.delete(stream);
  const message: HandOffMessage = { pool: ref.pool, role: ref.role, transport: ref.transport, id, waitedMs: Math.max(0, taken - started) };
  if (ready !== undefined) message.idleMs = Math.max(0, taken - ready);
  handOff.publish(message);
  return stream;
}

/** As `handedOff`, for a take that waits: publishes when `waiting` resolves; returns it unchanged when nobody listens. */
export function handedOffLater<T>(pool: object, started: number, waiting: Promise<T>, pick: (value: T) => readonly [string, Duplex]): Promise<T> {
  if (started < 0) return waiting;
  return waiting.then((value) => {
    const [id, stream] = pick(value);
    handedOff(pool, id, stream, started);
    return value;
  });
}

/** As `handedOff`, for an `[id, stream]` pair (a server's take; a subscriber's, with `takeStarted()` at delivery). */
export function handedOffPair<T extends readonly [string, Duplex]>(pool: object, incoming: T, started: number): T {
  handedOff(pool, incoming[0], incoming[1], started);
  return incoming;
}

// ---- drops and refusals ----------------------------------------------------

export function publishDrop(pool: object, reason: DropReason, id?: string, error?: unknown): void {
  if (!drop.hasSubscribers) return;
  const ref = poolRefOf(pool);
  if (!ref) return;
  const message: DropMessage = { pool: ref.pool, role: ref.role, transport: ref.transport, reason };
  if (id !== undefined) message.id = id;
  if (error !== undefined) message.error = error;
  drop.publish(message);
}

export function publishRefusal(pool: object, reason: RefusalReason, remoteAddress?: string): void {
  if (!refusal.hasSubscribers) return;
  const ref = poolRefOf(pool);
  if (!ref) return;
  const message: RefusalMessage = { pool: ref.pool, role: 'server', transport: ref.transport, reason };
  if (remoteAddress !== undefined) message.remoteAddress = remoteAddress;
  refusal.publish(message);
}

// ---- handshakes (server front door) ----------------------------------------

/** The parts of a front-door visit the event reads. */
interface Visitor {
  readonly remoteAddress: string | undefined;
  readonly admission?: { readonly id: string } | undefined;
}

const visits = new WeakMap<object, { ref: PoolRef; start: number }>();

/** A connection entered the front door of the server whose acceptor is `acceptor`. */
export function handshakeStarted(acceptor: object, visit: object): void {
  if (!handshake.hasSubscribers) return;
  const ref = poolRefOf(acceptor);
  if (ref) visits.set(visit, { ref, start: now() });
}

/** Its handshake ended; published only for a visit that started while someone listened. */
export function handshakeEnded(visit: Visitor, outcome: 'ok' | 'failed', reason?: RefusalReason, error?: unknown): void {
  const started = visits.get(visit);
  if (!started) return;
  visits.delete(visit);
  if (!handshake.hasSubscribers) return;
  const id = visit.admission?.id;
  const message: HandshakeMessage = { pool: started.ref.pool, role: 'server', transport: started.ref.transport, outcome, durationMs: since(started.start) };
  if (id !== undefined) message.id = id;
  if (visit.remoteAddress !== undefined) message.remoteAddress = visit.remoteAddress;
  if (reason !== undefined) message.reason = reason;
  if (error !== undefined) message.error = error;
  handshake.publish(message);
}

// ---- sessions (http2) ------------------------------------------------------

const sessionCounts = new WeakMap<object, number>();

/** A session's open event, kept for its close. */
interface OpenSession {
  readonly ref: PoolRef;
  readonly session: number;
  readonly remoteAddress: string | undefined;
  readonly start: number;
  reason?: string;
  error?: unknown;
}

const openSessions = new WeakMap<object, OpenSession>();

function opened(owner: object, key: object, remoteAddress: string | undefined): OpenSession | undefined {
  if (!sessionOpen.hasSubscribers && !sessionClose.hasSubscribers) return undefined;
  const ref = poolRefOf(owner);
  if (!ref) return undefined;
  const number = (sessionCounts.get(owner) ?? 0) + 1;
  sessionCounts.set(owner, number);
  const open: OpenSession = { ref, session: number, start: now(), remoteAddress };
  if (sessionOpen.hasSubscribers) {
    const message: SessionOpenMessage = { pool: ref.pool, role: ref.role, transport: ref.transport, session: number };
    if (remoteAddress !== undefined) message.remoteAddress = remoteAddress;
    sessionOpen.publish(message);
  }
  openSessions.set(key, open);
  return open;
}

function closed(key: object, streams: number, reason: string, error?: unknown): void {
  const open = openSessions.get(key);
  if (!open) return;
  openSessions.delete(key);
  if (!sessionClose.hasSubscribers) return;
  const { ref, session, remoteAddress, start } = open;
  const message: SessionCloseMessage = { pool: ref.pool, role: ref.role, transport: ref.transport, session, streams, durationMs: since(start), reason };
  if (remoteAddress !== undefined) message.remoteAddress = remoteAddress;
  if (error !== undefined) message.error = error;
  sessionClose.publish(message);
}

/** What a client transport's session says of itself at its close. */
interface ClientSessionFigures {
  readonly streamsOpened: number;
  readonly goaways: number;
  readonly pingTimeouts: number;
}

/** A client transport (`owner`, linked to its pool) opened `session`, over a socket to `remoteAddress`. */
export function clientSessionOpened(owner: object, session: ClientSessionFigures, remoteAddress: string | undefined): void {
  opened(owner, session, remoteAddress);
}

/** That session closed. */
export function clientSessionClosed(session: ClientSessionFigures): void {
  closed(session, session.streamsOpened, session.pingTimeouts > 0 ? 'ping-timeout' : session.goaways > 0 ? 'goaway' : 'close');
}

/** The Node session events the server side reads. */
interface NodeSession {
  readonly socket?: { readonly remoteAddress?: string } | null;
  on(event: 'stream' | 'goaway' | 'error', listener: (...args: unknown[]) => void): unknown;
  once(event: 'close', listener: () => void): unknown;
}

/**
 * A server transport (`owner`) took a new HTTP/2 session. While someone
 * listens for session events, counts its streams and publishes its close.
 */
export function serverSessionOpened(owner: object, session: NodeSession): void {
  const open = opened(owner, session, session.socket?.remoteAddress);
  if (!open) return;
  let streams = 0;
  session.on('stream', () => void streams++);
  session.on('goaway', () => void (open.reason ??= 'goaway'));
  session.on('error', (error: unknown) => {
    open.reason = 'error';
    open.error = error;
  });
  session.once('close', () => closed(session, streams, open.reason ?? 'close', open.error));
}
