// What the sample's own listeners share: a listen that names its variable, and a close that waits.
import type net from 'node:net';

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
