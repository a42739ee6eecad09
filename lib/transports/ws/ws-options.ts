import type WebSocket from 'ws';
import type { OptionReader } from '../../core/validate.js';
import { MAX_MESSAGE_BYTES, type WsKeepAlive } from './ws-duplex.js';

/** Options both ends of the ws transport take. */
export interface WsCommonOptions {
  /** Ping period in ms (default 30000); also the TCP keep-alive period. */
  keepAlive?: number;
  /**
   * How late a pong may be, in ms (default: keepAlive): a peer from which
   * nothing at all arrived for keepAlive + pongTimeout is dropped.
   */
  pongTimeout?: number;
  /**
   * Drop silent peers even if they never answered a ping (default false: a
   * peer that has never answered one, like the Go npws pools, whose idle
   * connections read nothing, is left to TCP keep-alive; once a peer has
   * answered a ping it must keep answering).
   */
  requirePong?: boolean;
  /**
   * Largest message accepted, in bytes (default and least 1 MiB, the
   * largest message this library sends; the Go pools send smaller ones). A
   * peer that announces a bigger one is closed with 1009 before its payload
   * is buffered, and counted in the transport's `oversizedMessages`.
   */
  maxPayload?: number;
  /** Bound on the upgrade plus the ID message, in ms (default 10000). */
  handshakeTimeout?: number;
  /** How long a closed stream waits for the peer's close frame before it drops the connection, in ms (default 30000). */
  closeHandshakeTimeout?: number;
  /**
   * Offer (client) or accept (server) the half-close extension (default
   * true): between two ends of this library a pooled stream stays half-open
   * after `end()`, like tcp. Go npws peers never negotiate it.
   * See docs/extensions/ws-half-close.md.
   */
  halfClose?: boolean;
}

export interface ResolvedWsCommon {
  keepAlive: WsKeepAlive;
  maxPayload: number;
  handshakeTimeout: number;
  closeHandshakeTimeout: number;
  halfClose: boolean;
}

export function readWsCommonOptions(read: OptionReader): ResolvedWsCommon {
  const period = read.ms('keepAlive', 30_000);
  return {
    keepAlive: {
      keepAlive: period,
      pongTimeout: read.ms('pongTimeout', period),
      requirePong: read.bool('requirePong', false),
    },
    maxPayload: read.int('maxPayload', MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, 2 ** 31 - 1),
    handshakeTimeout: read.ms('handshakeTimeout', 10_000),
    closeHandshakeTimeout: read.ms('closeHandshakeTimeout', 30_000),
    halfClose: read.bool('halfClose', true),
  };
}

/** ws's error code for a message above maxPayload (it then closes with 1009). */
const OVERSIZED = 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';

/** Calls `count` when `ws` refuses a message above maxPayload. @internal */
export function watchOversized(ws: WebSocket, count: () => void): void {
  ws.on('error', (error: Error & { code?: string }) => {
    if (error.code === OVERSIZED) count();
  });
}
