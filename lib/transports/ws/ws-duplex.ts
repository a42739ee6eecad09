import type { Duplex as RawSocket } from 'node:stream';
import { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import WebSocket, { type RawData } from 'ws';
import { StreamCutError, WsStreamError } from '../../core/errors.js';
import { listen, type Disposer } from '../../core/listeners.js';

/** The stream errors of this transport that are no cut (a class of lib/core/errors.ts, exported with the others). */
export type { WsStreamError };

/** Keep-alive settings of one pooled WebSocket. */
export interface WsKeepAlive {
  /** Ping period in ms. */
  readonly keepAlive: number;
  /** Silence allowed beyond one period: nothing heard for keepAlive + pongTimeout ms drops the connection. */
  readonly pongTimeout: number;
  /** Judge peers that never answered a ping too (default: only once they have answered one). */
  readonly requirePong: boolean;
}

/**
 * Writes larger than this leave as several binary messages (boundaries carry
 * no meaning), so neither end holds more than this much of one message: ws
 * buffers a whole message before it emits it, and masks a copy of it.
 */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Both sides buffer at most this much before backpressure (plus one message in flight). */
const HIGH_WATER_MARK = 64 * 1024;

const SEND_OPTIONS = { binary: true, compress: false, fin: true } as const;

/** Close codes that end a stream cleanly (without the half-close extension): normal, going away, no status. */
const CLEAN_CLOSE_CODES = new Set([1000, 1001, 1005]);

/** Close code of a stream destroyed before it ended (`destroy()` with or without an error, a pool's cut). */
export const CUT_CLOSE_CODE = 1011;

/**
 * The half-close extension (docs/extensions/ws-half-close.md): the client
 * offers it with this request header, the server accepts it by echoing it
 * in its 101. A Go npws server ignores the header and answers without it;
 * a Go npws client never sends it. Either way the extension stays off.
 */
export const HALF_CLOSE_HEADER = 'X-Tunnel-Pool-Half-Close';
/** Version 1 of the extension: an empty binary message is the end of data. */
export const HALF_CLOSE_VERSION = '1';

const END_OF_DATA = Buffer.alloc(0);

const noop = (): void => undefined;

/**
 * A pooled WebSocket as a plain byte stream.
 *
 * Why not `ws.createWebSocketStream`: it is close, but (1) `end()` sends a
 * close frame without a status code (1005) where the Go pools send 1000, and
 * its 'finish' waits for the peer's answer; (2) it takes text messages as
 * data, where the protocol (and Go, with 1003) treats them as an error; (3)
 * its `destroy()` drops the TCP connection with no close frame, so the peer
 * sees 1006; (4) one write is one message of any size, which the receiving
 * ws buffers whole; (5) the ID (first message) and the keep-alive watch would
 * need listeners of their own beside its. What it gets
 * right is kept here: a message that does not fit the readable buffer pauses
 * the socket (`ws.pause()`), `_read` resumes it, and `_write` completes on
 * ws's send callback, so `write()` reports backpressure from what is really
 * still queued (`bufferedAmount` never grows past one write).
 *
 * Idle pooled streams are never read by the pool. The socket keeps flowing
 * while the readable buffer has room, so ws keeps answering pings and close
 * frames of idle streams; only a peer that sends more than the buffer holds
 * makes it pause, and then the bytes wait in TCP, not in memory.
 */
export class WebSocketDuplex extends Duplex {
  /** When a frame of any kind last arrived (or this side last resumed reading). */
  private lastHeard = performance.now();
  /** The peer has shown that it answers pings: from then on a silent peer is dropped. */
  private peerAnswers: boolean;
  private pingTimer?: NodeJS.Timeout;
  /** Half-close extension: our end-of-data message is on its way (our writable side finished). */
  private sentEnd = false;
  /** Half-close extension: the peer's end-of-data message arrived. */
  private receivedEnd = false;
  /** Without the extension: this side's end() sent close 1000 while the peer could still be sending. */
  private closedFirst = false;

  /**
   * Made by the ws transport only. Internal, so the published declarations
   * never name a `ws` type (`ws` ships none and `@types/ws` is not a
   * dependency of this package).
   * @internal
   */
  constructor(
    private readonly ws: WebSocket,
    /** The TCP or TLS socket under `ws`, to end it once the close frame is written. */
    private readonly socket: RawSocket | undefined,
    private readonly keepAlive: WsKeepAlive,
    /** Bytes that arrived with the ID in its message: the stream's first bytes. */
    initial?: Buffer,
    /**
     * Both ends negotiated the half-close extension: `end()` sends an
     * end-of-data message and the stream stays half-open, like tcp. Without
     * it a WebSocket cannot stay half-open (ws answers a close frame with
     * its own at once), so, as a net.Socket with `allowHalfOpen: false`,
     * the writable side ends with the readable one.
     */
    readonly halfClose = false,
  ) {
    super({ allowHalfOpen: halfClose, readableHighWaterMark: HIGH_WATER_MARK, writableHighWaterMark: HIGH_WATER_MARK });
    this.peerAnswers = keepAlive.requirePong;
    this.detach = listen(ws, { message: this.onMessage, ping: this.onPing, pong: this.onPong, close: this.onClose, error: this.onError });
    if (initial && initial.length > 0) this.pushData(initial);
    this.pingTimer = setInterval(() => this.ping(), keepAlive.keepAlive).unref();
  }

  /** Removes the listeners the constructor added to the WebSocket. */
  private readonly detach: Disposer;

  /** The WebSocket is open: no close frame sent or received, the socket alive. */
  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Bytes queued in ws and its socket, not yet handed to the kernel. */
  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  /** Whether the socket is paused because the readable buffer is full. */
  get socketPaused(): boolean {
    return this.ws.isPaused;
  }

  override _read(): void {
    if (!this.ws.isPaused) return;
    // What the peer sent meanwhile waited unread: its silence starts now.
    this.lastHeard = performance.now();
    this.ws.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    this.send(chunks.length === 1 ? chunks[0]!.chunk : Buffer.concat(chunks.map(({ chunk }) => chunk)), callback);
  }

  /**
   * `end()`: with the half-close extension, an end-of-data message after
   * every byte written ('finish' once it is sent; the peer may still send).
   * Without it, a close frame 1000 ('finish' once it is on its way).
   */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback();
      return;
    }
    if (this.halfClose) {
      this.ws.send(END_OF_DATA, SEND_OPTIONS, (error) => {
        if (error) {
          callback(this.ws.readyState === WebSocket.OPEN ? error : notOpen());
          return;
        }
        this.sentEnd = true;
        callback();
        this.closeWhenBothEnded();
      });
      return;
    }
    // The peer cannot half-close: what it still sends after this close may be lost.
    if (!this.readableEnded && !this.receivedClose) this.closedFirst = true;
    this.ws.close(1000);
    // ws writes the close frame to the socket synchronously; an empty write
    // behind it calls back once it (and everything before it) is flushed.
    const socket = this.socket;
    if (socket && !socket.destroyed && socket.writable) socket.write(Buffer.alloc(0), () => callback());
    else callback();
  }

  /**
   * `destroy()`: a close frame and the TCP connection ended once it is
   * flushed, bounded by ws's close timeout. The code is 1000 when this side
   * had finished writing (`end()` and 'finish'): the peer's reader has all
   * of it. Otherwise (with or without an error, or a pool's cut) it is 1011,
   * which the peer reads as an error, not a clean end.
   */
  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.stopKeepAlive();
    this.detach();
    this.ws.on('error', noop);
    closeWebSocket(this.ws, this.socket, error || !this.writableFinished ? CUT_CLOSE_CODE : 1000);
    callback(error);
  }

  private send(data: Buffer, callback: (error?: Error | null) => void): void {
    if (data.length === 0) {
      callback();
      return;
    }
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback(notOpen());
      return;
    }
    const piece = data.length > MAX_MESSAGE_BYTES ? data.subarray(0, MAX_MESSAGE_BYTES) : data;
    this.ws.send(piece, SEND_OPTIONS, (error) => {
      if (error) callback(this.ws.readyState === WebSocket.OPEN ? error : notOpen());
      else if (piece.length < data.length) this.send(data.subarray(piece.length), callback);
      else callback();
    });
  }

  private pushData(data: Buffer): void {
    if (!this.push(data)) this.ws.pause();
  }

  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    this.lastHeard = performance.now();
    if (this.destroyed) return;
    if (!isBinary) {
      // As the Go pools: a text message is a protocol error, answered with 1003.
      closeWebSocket(this.ws, this.socket, 1003);
      this.destroy(new WsStreamError('ERR_WS_TEXT_MESSAGE', 'the peer sent a text message; a pooled stream carries binary messages only'));
      return;
    }
    const bytes = toBuffer(data);
    if (!this.halfClose) {
      this.pushData(bytes);
      return;
    }
    if (this.receivedEnd) {
      closeWebSocket(this.ws, this.socket, 1002);
      this.destroy(new WsStreamError('ERR_WS_DATA_AFTER_END', 'the peer sent data after its end-of-data message (half-close extension)'));
      return;
    }
    if (bytes.length > 0) {
      this.pushData(bytes);
      return;
    }
    // The peer's end of data: our readable side ends, our writable side stays open.
    this.receivedEnd = true;
    this.push(null);
    this.closeWhenBothEnded();
  };

  /** Half-close extension: once both sides sent their end of data, the WebSocket closes with 1000. */
  private closeWhenBothEnded(): void {
    if (this.sentEnd && this.receivedEnd) closeWebSocket(this.ws, this.socket, 1000);
  }

  /** ws's own record that the peer's close frame arrived. */
  private get receivedClose(): boolean {
    return (this.ws as WebSocket & { _closeFrameReceived?: boolean })._closeFrameReceived === true;
  }

  private readonly onPing = (): void => {
    // A peer that pings runs a keep-alive of its own, so it answers ours.
    this.lastHeard = performance.now();
    this.peerAnswers = true;
  };

  private readonly onPong = (): void => {
    this.lastHeard = performance.now();
    this.peerAnswers = true;
  };

  private readonly onClose = (code: number, reason: Buffer): void => {
    this.stopKeepAlive();
    if (this.destroyed) return;
    const why = reason.length > 0 ? `: ${reason.toString()}` : '';
    if (this.halfClose) {
      // The peer's end-of-data message is the only clean end; a close
      // before it (whatever its code) is a cut. After it, the readable side
      // has ended; a write from here fails with EPIPE, as on a tcp socket
      // whose peer closed.
      if (this.receivedEnd) return;
      if (code !== 1006) {
        this.destroy(new StreamCutError('closed', `the peer closed the WebSocket with code ${code}${why} before its end of data: the stream was cut`, { closeCode: code }));
        return;
      }
    } else if (CLEAN_CLOSE_CODES.has(code)) {
      if (this.closedFirst) {
        // Our end() closed the WebSocket while the peer could still send,
        // and this peer cannot half-close: its answer may have been cut short.
        this.destroy(
          new WsStreamError(
            'ERR_WS_HALF_CLOSE_UNSUPPORTED',
            'this side ended the stream while the peer was still sending; the peer does not support the half-close extension, so its close may have cut what it had left to send',
            code,
          ),
        );
        return;
      }
      this.push(null);
      return;
    }
    this.destroy(
      code === 1006
        ? new StreamCutError('connection-lost', 'the WebSocket connection was cut without a close frame (1006)', { closeCode: code })
        : new StreamCutError('closed', `the peer closed the WebSocket with code ${code}${why}`, { closeCode: code }),
    );
  };

  private readonly onError = (error: Error): void => {
    // Protocol errors (bad frames, maxPayload exceeded): ws already closes with the matching code.
    if (!this.destroyed) this.destroy(error);
  };

  /**
   * Every period: judge the peer, then ping it. Both ends ping every period
   * and answer pings at once, so a live peer is never silent for a period
   * plus `pongTimeout`: one that answers sends a pong within a round trip,
   * and one whose reader stalled (its socket paused, our pings unread) still
   * sends pings of its own. A peer is dropped when it has been that silent,
   * has answered a ping before (or `requirePong`), and this side was reading
   * all along (a paused socket has frames waiting unread).
   */
  private ping(): void {
    if (this.ws.readyState !== WebSocket.OPEN) return;
    if (!this.tooSilent()) {
      this.ws.ping();
      return;
    }
    // Timers run before I/O in the event loop: after a long block, frames may
    // be waiting unprocessed. Judge again once pending I/O has been handled.
    setImmediate(() => {
      if (this.destroyed || this.ws.readyState !== WebSocket.OPEN) return;
      if (!this.tooSilent()) {
        this.ws.ping();
        return;
      }
      const { keepAlive, pongTimeout } = this.keepAlive;
      const silent = Math.round(performance.now() - this.lastHeard);
      const error = new StreamCutError('ping-timeout', `nothing arrived from the peer for ${silent} ms (pings every ${keepAlive} ms, pongTimeout ${pongTimeout} ms): it is gone`);
      this.ws.terminate();
      this.destroy(error);
    });
  }

  private tooSilent(): boolean {
    const { keepAlive, pongTimeout } = this.keepAlive;
    return this.peerAnswers && !this.ws.isPaused && performance.now() - this.lastHeard > keepAlive + pongTimeout;
  }

  private stopKeepAlive(): void {
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
  }
}

/**
 * Closes a WebSocket with `code` and ends its socket as soon as the close
 * frame is flushed, without waiting for the peer's answer (ws's close timeout
 * bounds a socket that cannot flush). Idempotent.
 * @internal
 */
export function closeWebSocket(ws: WebSocket, socket: RawSocket | undefined, code: number): void {
  if (ws.readyState === WebSocket.CONNECTING) {
    ws.on('error', noop);
    ws.terminate();
    return;
  }
  if (ws.readyState === WebSocket.OPEN) ws.close(code);
  if (!socket || socket.destroyed) return;
  if (socket.writableFinished) {
    socket.destroy();
    return;
  }
  if (socket.writableEnded) return; // already ending: whoever ended it destroys it (or ws's close timer does)
  socket.end();
  socket.once('finish', () => socket.destroy());
}

function notOpen(): WsStreamError {
  return new WsStreamError('EPIPE', 'the WebSocket is closing or closed: the peer closed it (it cannot take more data)');
}

/** @internal */
export function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
