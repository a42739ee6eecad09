import diagnosticsChannel, { type Channel } from 'node:diagnostics_channel';
import type { PoolError } from '../core/errors.js';
import type { DropReason } from '../core/idle-streams.js';
import type { RefusalReason } from '../core/transport.js';

/*
 * diagnostics_channel events, one named channel per event, in the style of
 * undici ('undici:client:connected'): a tracer (OpenTelemetry or one's own)
 * subscribes with `diagnostics_channel.subscribe(name, fn)` and needs nothing
 * from this package. Publishing costs one property read when nobody
 * subscribes (`channel.hasSubscribers`); payloads are built only for a
 * subscriber.
 *
 * Payloads are plain objects, read synchronously by subscribers: keep no
 * reference to `stream`/`error` beyond the call unless you mean to.
 * Unlike metric labels, payloads may carry IDs and addresses: they are for
 * tracing one connection, not for aggregation.
 */

/** Which pool an event belongs to: the same three values the metrics use as labels. */
export interface PoolRef {
  /** The pool's name. */
  pool: string;
  role: 'client' | 'server';
  /** The transport kind: 'tcp', 'tls', 'http2', 'ws'... */
  transport: string;
}

/** A client pool starts one dial. */
export interface DialStartMessage extends PoolRef {
  role: 'client';
  /** Per pool, from 1, counting the dials made while someone subscribed: pairs start with its end or error. */
  dial: number;
}

/** The dial connected and its handshake gave the stream an ID: the transport handed the stream to the pool. */
export interface DialEndMessage extends DialStartMessage {
  /** The pool ID the handshake assigned; null in single mode (no ID exchange: the pool gives a local ID). */
  id: string | null;
  /** From the start of the dial to its end (connect, TLS, ID handshake). */
  durationMs: number;
  /** The peer at the other end of the socket, when the stream is (or rides on) a socket that says. */
  remoteAddress?: string;
  remotePort?: number;
}

/** The dial failed. */
export interface DialErrorMessage extends DialStartMessage {
  error: PoolError;
  /** `error.code`, the code counted in the pool's `failures` ('UNKNOWN' for an error without one). */
  code: string;
  durationMs: number;
}

/** A server connection finished its handshake in the front door, either way. */
export interface HandshakeMessage extends PoolRef {
  role: 'server';
  outcome: 'ok' | 'failed';
  /** The pooled stream's ID, on transports where a connection is one stream (tcp/TLS). */
  id?: string;
  /** From accept to the outcome. */
  durationMs: number;
  remoteAddress?: string;
  /** On failure: the refusal reason it is counted under ('tls', 'handshake-timeout'...). */
  reason?: RefusalReason;
  error?: unknown;
}

/** The application took a pooled stream on one side (each side publishes its own take). */
export interface HandOffMessage extends PoolRef {
  id: string;
  /** From the call that took it (a get) to the stream in hand: about 0 when it was already idle; 0 for a subscriber. */
  waitedMs: number;
  /**
   * How long the stream was ready before this take (about 0 when a get was
   * already waiting for it). Absent for a stream that became ready before
   * anyone subscribed to this channel.
   */
  idleMs?: number;
}

/** A stream left the pool without being taken. */
export interface DropMessage extends PoolRef {
  /** The stream's pool ID, when the drop site knows it. */
  id?: string;
  /** The reason counted in the pool's `drops`. */
  reason: DropReason;
  error?: unknown;
}

/** The server turned a connection away. */
export interface RefusalMessage extends PoolRef {
  role: 'server';
  /** The reason counted in the pool's `refusals`. */
  reason: RefusalReason;
  remoteAddress?: string;
}

/** A multiplexing transport (http2) opened a session. */
export interface SessionOpenMessage extends PoolRef {
  /** Per transport, from 1, counting the sessions opened while someone subscribed: pairs open with close. */
  session: number;
  remoteAddress?: string;
}

/** A session closed. */
export interface SessionCloseMessage extends SessionOpenMessage {
  /** Streams opened over the session in its life. */
  streams: number;
  durationMs: number;
  /** Why: 'goaway' (one was received), 'ping-timeout' (client), 'error', or 'close'. */
  reason: string;
  error?: unknown;
}

/** The tunnel layer carries one application connection over a pooled stream. */
export interface TunnelConnectionOpenMessage {
  /** The route's name (a bounded label, like the pool name). */
  route: string;
  /** The name of the pool the tunnel end runs on. */
  pool: string;
  /** Which end: the tunnel server or the tunnel client. */
  role: 'server' | 'client';
  /** On a tunnel server: the client's identity label (`key:<id>`, `cert:<name>`, `anonymous`). */
  client?: string;
  /** The pooled stream's ID. */
  id: string;
  /** Per tunnel end and route, from 1, counting the connections opened while someone listened: pairs open with close. */
  connection: number;
  /** On a tunnel server's public connections: from the public connect to forwarding. */
  openLatencyMs?: number;
}

/** The tunnelled connection closed. */
export interface TunnelConnectionCloseMessage extends TunnelConnectionOpenMessage {
  /** Bytes from the route's public side into the tunnel, and back. */
  bytesIn: number;
  bytesOut: number;
  durationMs: number;
  error?: unknown;
}

/** Every channel name and its payload. The names are public and stable. */
export interface ChannelMessages {
  'nestjs-tunnel-pool:dial:start': DialStartMessage;
  'nestjs-tunnel-pool:dial:end': DialEndMessage;
  'nestjs-tunnel-pool:dial:error': DialErrorMessage;
  'nestjs-tunnel-pool:handshake': HandshakeMessage;
  'nestjs-tunnel-pool:hand-off': HandOffMessage;
  'nestjs-tunnel-pool:drop': DropMessage;
  'nestjs-tunnel-pool:refusal': RefusalMessage;
  'nestjs-tunnel-pool:session:open': SessionOpenMessage;
  'nestjs-tunnel-pool:session:close': SessionCloseMessage;
  'nestjs-tunnel-pool:tunnel:connection:open': TunnelConnectionOpenMessage;
  'nestjs-tunnel-pool:tunnel:connection:close': TunnelConnectionCloseMessage;
}

export type ChannelName = keyof ChannelMessages;

/** The names, by short key, for code that publishes or subscribes. */
export const CHANNELS = {
  dialStart: 'nestjs-tunnel-pool:dial:start',
  dialEnd: 'nestjs-tunnel-pool:dial:end',
  dialError: 'nestjs-tunnel-pool:dial:error',
  handshake: 'nestjs-tunnel-pool:handshake',
  handOff: 'nestjs-tunnel-pool:hand-off',
  drop: 'nestjs-tunnel-pool:drop',
  refusal: 'nestjs-tunnel-pool:refusal',
  sessionOpen: 'nestjs-tunnel-pool:session:open',
  sessionClose: 'nestjs-tunnel-pool:session:close',
  tunnelConnectionOpen: 'nestjs-tunnel-pool:tunnel:connection:open',
  tunnelConnectionClose: 'nestjs-tunnel-pool:tunnel:connection:close',
} as const satisfies Record<string, ChannelName>;

// Node keeps channels weakly by name; holding them here keeps their
// subscribers' hasSubscribers fast and the objects stable.
const channels = new Map<ChannelName, Channel>(Object.values(CHANNELS).map((name) => [name, diagnosticsChannel.channel(name)]));

/** The channel object of a name (the same object `diagnostics_channel.channel(name)` returns). */
export function channelOf(name: ChannelName): Channel {
  return channels.get(name)!;
}

/**
 * Publishes on a channel if anyone listens. `message` is a function so the
 * payload is built only for a subscriber: with none, this is one property
 * read and no allocation.
 */
export function publish<N extends ChannelName>(name: N, message: () => ChannelMessages[N]): void {
  const channel = channels.get(name)!;
  if (channel.hasSubscribers) channel.publish(message());
}
