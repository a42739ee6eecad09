import net from 'node:net';
import type { Duplex } from 'node:stream';

const noop = (): void => undefined;
const kProbing = Symbol('probing');

type TcpSocket = net.Socket & {
  _handle?: { reset?: unknown; readStart?: () => number } | null;
  /** Node's own flag behind `resetAndDestroy()`: the socket's close resets instead. */
  resetAndClosing?: boolean;
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
  if (tcp) tcp.resetAndClosing = true;
  stream.destroy(error);
}

/** The TCP socket whose handle can reset under `stream`, if there is one. */
function tcpUnder(stream: Duplex): TcpSocket | undefined {
  if (!(stream instanceof net.Socket)) return undefined;
  const own = stream as TcpSocket;
  if (typeof own._handle?.reset === 'function') return resettable(own);
  // A TLS socket: its handle is the TLS layer; the socket it was made over holds the TCP handle.
  const parent = own._parent;
  return parent instanceof net.Socket && typeof (parent as TcpSocket)._handle?.reset === 'function' ? resettable(parent as TcpSocket) : undefined;
}

function resettable(socket: TcpSocket): TcpSocket | undefined {
  return socket.destroyed || socket.connecting || socket.writableEnded ? undefined : socket;
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
  const socket = stream as TcpSocket;
  if (typeof socket._handle?.reset !== 'function') return; // not a TCP handle (TLS, a pipe)
  socket.push = pushUnlessReset;
}

function pushUnlessReset(this: TcpSocket, chunk: unknown, encoding?: BufferEncoding): boolean {
  const push = net.Socket.prototype.push;
  if (chunk !== null || this[kProbing] || this.destroyed) return push.call(this, chunk, encoding);
  const handle = this._handle;
  if (typeof handle?.readStart !== 'function' || handle.readStart() !== 0) return push.call(this, null);
  this[kProbing] = true; // the next end is a real one
  return false;
}
