import net from 'node:net';

/**
 * What the tcp transport and the tunnel's forwarding both need from a TCP
 * socket's handle, written once: whether a close can be a reset (RST), and
 * a second read at what libuv reported as the end of the stream.
 */
export type TcpHandleSocket = net.Socket & {
  _handle?: { reset?: unknown; readStart?: () => number } | null;
  /** Node's own flag behind `resetAndDestroy()` (Node >= 16.17): the socket's close resets instead. */
  resetAndClosing?: boolean;
};

/** The socket's handle is a TCP one (not a pipe, not a TLS layer). */
export function hasTcpHandle(socket: net.Socket): boolean {
  return typeof (socket as TcpHandleSocket)._handle?.reset === 'function';
}

/**
 * The socket holds a TCP handle that can still be reset (not destroyed, not
 * connecting, no shutdown in flight). Once the writable side's `_final` ran
 * (`end()` and every write flushed to libuv) a shutdown is pending until
 * 'finish', and a reset then fails with EINVAL: Node emits "reset EINVAL",
 * marks the handle closing and never closes it, and the process hangs at
 * exit, after its 'exit' event, waiting for that close. Such a socket is
 * closed normally instead (its FIN is on its way anyway).
 */
export function canReset(socket: net.Socket): boolean {
  return !socket.destroyed && !socket.connecting && !shutdownInFlight(socket) && hasTcpHandle(socket);
}

function shutdownInFlight(socket: net.Socket): boolean {
  const state = (socket as net.Socket & { _writableState?: { finalCalled?: boolean } })._writableState;
  return state?.finalCalled === true && !socket.writableFinished;
}

/** The socket's close will be a reset. Not `resetAndDestroy()`, which takes no error and, under a TLS socket with work queued, crashes Node 20. */
export function closeWithReset(socket: net.Socket): void {
  (socket as TcpHandleSocket).resetAndClosing = true;
}

/**
 * libuv reports an RST that arrives behind unread bytes as an end of stream
 * (after a short read it takes the hang-up for EOF). Asks the handle to read
 * once more: a reset then errors the socket (`ECONNRESET`, Node destroys it),
 * a real FIN reports the end again. False when the handle cannot read.
 */
export function rereadAtEnd(socket: net.Socket): boolean {
  const handle = (socket as TcpHandleSocket)._handle;
  return typeof handle?.readStart === 'function' && handle.readStart() === 0;
}
