import net from 'node:net';
import type { Duplex } from 'node:stream';
import { canReset, closeWithReset, hasTcpHandle, rereadAtEnd } from '../transports/common/tcp-handle.js';

const noop = (): void => undefined;
const kProbing = Symbol('probing');

type TcpSocket = net.Socket & {
  /** A TLS socket made over an existing socket: that socket. */
  _parent?: unknown;
  [kProbing]?: true;
};

/**
 * Destroys `stream` with `error` so that its peer sees a cut, never a clean
 * end: on a TCP socket (and a TLS socket made over one, as a `tls.Server`
 * makes them) the close is a reset (RST; the peer reads `ECONNRESET`),
 * unless this side already sent its FIN (its writable side ended: the peer
 * has every byte of that direction, and the kernel cannot reset a socket
 * that is shutting down). Other streams get `destroy(error)`, which each
 * transport turns into its own cut (RST_STREAM, a WebSocket close with an
 * error code, a pooled tcp stream's reset). Adds an `'error'` listener so
 * the error cannot go uncaught. Does nothing to a stream already destroyed.
 */
export function cutStream(stream: Duplex, error: Error): void {
  stream.on('error', noop);
  if (stream.destroyed) return;
  const tcp = stream.writableEnded ? undefined : tcpUnder(stream);
  if (tcp) closeWithReset(tcp);
  stream.destroy(error);
}

/** The TCP socket whose handle can reset under `stream`, if there is one. */
function tcpUnder(stream: Duplex): TcpSocket | undefined {
  if (!(stream instanceof net.Socket)) return undefined;
  // A TLS socket's handle is the TLS layer; the socket it was made over holds the TCP handle.
  const parent = (stream as TcpSocket)._parent;
  const socket = canReset(stream) ? stream : parent instanceof net.Socket && canReset(parent) ? parent : undefined;
  return socket && !socket.writableEnded ? socket : undefined;
}

/**
 * Makes a reset that arrives behind unread bytes reach a plain TCP
 * socket's reader as `ECONNRESET`, not as an end: libuv, after a short
 * read, takes the hang-up that comes with an RST for an end of stream.
 * Before the end goes through, the handle reads once more; a reset then
 * errors the socket (Node destroys it with the error), a real FIN ends it.
 * The same probe the pooled tcp streams use (their transport installs its
 * own: a stream with its own `push` is left alone, as are TLS sockets and
 * any other Duplex).
 */
export function watchForReset(stream: Duplex): void {
  if (!(stream instanceof net.Socket) || Object.prototype.hasOwnProperty.call(stream, 'push')) return;
  if (!hasTcpHandle(stream)) return; // not a TCP handle (TLS, a pipe)
  stream.push = pushUnlessReset;
}

function pushUnlessReset(this: TcpSocket, chunk: unknown, encoding?: BufferEncoding): boolean {
  const push = net.Socket.prototype.push;
  if (chunk !== null || this[kProbing] || this.destroyed) return push.call(this, chunk, encoding);
  if (!rereadAtEnd(this)) return push.call(this, null);
  this[kProbing] = true; // the next end is a real one
  return false;
}
