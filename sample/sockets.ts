import type net from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Pipes `a` and `b` into each other. An end on one side ends the other
 * side's writable half once its data is flushed, and only that: with
 * half-open streams (`allowHalfOpen`, as the pooled tcp/TLS and HTTP/2
 * streams are) the other direction carries on, so "request, FIN, reply"
 * works. An error or a close before both halves are done on either side
 * destroys both. `done` runs once: when
 * both directions are flushed, or with the first error. Both streams are
 * destroyed by then. (Two `stream.pipeline` calls would do the same with
 * three times the listeners per socket.)
 */
export function splice(a: Duplex, b: Duplex, done: (error?: unknown) => void = () => undefined): void {
  let settled = false;
  const settle = (error?: unknown): void => {
    if (settled) return;
    settled = true;
    a.destroy();
    b.destroy();
    done(error);
  };
  const premature = (): Error => Object.assign(new Error('a tunnelled stream closed before its data was through'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
  const onFinish = (): void => {
    if (a.writableFinished && b.writableFinished) settle();
  };
  for (const stream of [a, b]) {
    stream.on('error', settle);
    stream.once('finish', onFinish);
    stream.once('close', () => {
      if (!(stream.readableEnded && stream.writableFinished)) settle(premature());
    });
  }
  if (a.destroyed || b.destroyed) {
    settle(premature());
    return;
  }
  a.pipe(b);
  b.pipe(a);
}

/**
 * Calls `onLine` with each newline-terminated line `socket` sends (trimmed,
 * empty lines skipped). More than `maxLine` bytes without a newline is not
 * the control protocol: `onOverflow` runs and reading stops.
 */
export function readLines(socket: Duplex, onLine: (line: string) => void, maxLine: number, onOverflow: (length: number) => void): void {
  let pending = '';
  socket.setEncoding('latin1');
  const onData = (chunk: string): void => {
    pending += chunk;
    let newline: number;
    while ((newline = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, newline).trim();
      pending = pending.slice(newline + 1);
      if (line) onLine(line);
    }
    if (pending.length > maxLine) {
      socket.off('data', onData);
      onOverflow(pending.length);
    }
  };
  socket.on('data', onData);
}

/** Errors a tunnelled connection meets in normal life: the peer went away. */
export function isDisconnect(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ECONNABORTED';
}

/** The message of an error from any realm, with its code when it has one. */
export function describe(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) {
    const code = 'code' in error && error.code ? ` (${String(error.code)})` : '';
    return `${String(error.message)}${code}`;
  }
  return String(error);
}

/** Listens, turning EADDRINUSE and friends into a message that names the variable. */
export function listen(server: net.Server, port: number, host: string, variable: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      const why = error.code === 'EADDRINUSE' ? 'the port is already in use: set another port, or 0 for any free one'
        : error.code === 'EACCES' ? 'not allowed (ports below 1024 need privileges): set a port from 1024 up'
        : error.code === 'EADDRNOTAVAIL' ? 'this machine has no such address: check TUNNEL_HOST'
        : (error.code ?? error.message);
      reject(new Error(`${variable}: cannot listen on ${host}:${port}: ${why}`, { cause: error }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** Stops listening and waits until the listener is closed; `dropConnections` ends what is still open. */
export async function closeServer(server: net.Server, dropConnections: () => void): Promise<void> {
  if (!server.listening) {
    dropConnections();
    return;
  }
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  dropConnections();
  await closed;
}

/** The port a listener is bound to, once listening. */
export function boundPort(server: net.Server): number | undefined {
  const address = server.address();
  return address && typeof address === 'object' ? address.port : undefined;
}
